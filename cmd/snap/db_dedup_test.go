package main

import (
	"testing"
)

// Dedup of dumps: after 1 % new rows are appended to insert-mostly tables
// (orders, logs), the second dump adds at most 3 % of the dump's size to
// the repository (counted before compression, so compression cannot hide
// a miss). The dumps are about 30 MB: big enough to mean something, small
// enough for CI.

const pgDedupData = `
CREATE TABLE customers (id serial PRIMARY KEY, name text, email text);
INSERT INTO customers (name, email) SELECT 'Customer ' || g || ' Ünïcødé', 'c' || g || '@example.com' FROM generate_series(1, 40000) g;
CREATE TABLE orders (id bigserial PRIMARY KEY, customer int, amount numeric(10,2), status text, created timestamptz);
INSERT INTO orders (customer, amount, status, created) SELECT g % 40000 + 1, (g % 1000) / 3.0, CASE WHEN g % 3 = 0 THEN 'paid' ELSE 'open' END,
  '2026-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 160000) g;
CREATE TABLE logs (id bigserial PRIMARY KEY, at timestamptz, level text, message text);
INSERT INTO logs (at, level, message) SELECT '2026-01-01'::timestamptz + g * interval '10 second', 'info',
  'request ' || md5(g::text) || ' handled in ' || g % 500 || ' ms' FROM generate_series(1, 200000) g;
`

const pgDedupAppend = `
INSERT INTO orders (customer, amount, status, created) SELECT g % 40000 + 1, g % 700, 'open', '2026-06-01'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 1600) g;
INSERT INTO logs (at, level, message) SELECT '2026-06-01'::timestamptz + g * interval '10 second', 'warn', 'request ' || md5((g + 1000000)::text) || ' slow'
  FROM generate_series(1, 2000) g;
`

const mysqlDedupData = `
CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100), email VARCHAR(100)) DEFAULT CHARSET=utf8mb4;
INSERT INTO customers (name, email) SELECT CONCAT('Customer ', seq, ' Ünïcødé'), CONCAT('c', seq, '@example.com') FROM seq_1_to_40000;
CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, customer INT, amount DECIMAL(10,2), status VARCHAR(10), created DATETIME);
INSERT INTO orders (customer, amount, status, created) SELECT seq % 40000 + 1, (seq % 1000) / 3, IF(seq % 3 = 0, 'paid', 'open'),
  '2026-01-01' + INTERVAL seq MINUTE FROM seq_1_to_160000;
CREATE TABLE logs (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DATETIME, level VARCHAR(10), message TEXT);
INSERT INTO logs (at, level, message) SELECT '2026-01-01' + INTERVAL (seq * 10) SECOND, 'info',
  CONCAT('request ', MD5(seq), ' handled in ', seq % 500, ' ms') FROM seq_1_to_200000;
`

const mysqlDedupAppend = `
INSERT INTO orders (customer, amount, status, created) SELECT seq % 40000 + 1, seq % 700, 'open', '2026-06-01' + INTERVAL seq MINUTE FROM seq_1_to_1600;
INSERT INTO logs (at, level, message) SELECT '2026-06-01' + INTERVAL (seq * 10) SECOND, 'warn', CONCAT('request ', MD5(seq + 1000000), ' slow') FROM seq_1_to_2000;
`

func TestDumpDedupPostgres(t *testing.T) {
	pg := testPostgres(t)
	db := pg.newDatabase()
	pg.mustQuery(db, pgDedupData)
	checkDumpDedup(t, pg.url(db), func() { pg.mustQuery(db, pgDedupAppend) })
}

func TestDumpDedupMariaDB(t *testing.T) {
	my := testMySQL(t)
	db := my.newDatabase()
	my.mustQuery(db, mysqlDedupData)
	checkDumpDedup(t, my.url(db), func() { my.mustQuery(db, mysqlDedupAppend) })
}

func checkDumpDedup(t *testing.T, dbURL string, appendRows func()) {
	tr := newTestRepo(t)
	first, res := tr.createJSON(nil, nil, "--db", dbURL)
	if first == nil {
		t.Fatalf("create: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	appendRows()
	second, res := tr.createJSON(nil, nil, "--db", dbURL)
	if second == nil {
		t.Fatalf("create: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	size1, size2 := first["bytes"].(float64), second["bytes"].(float64)
	added := second["added_raw_bytes"].(float64)
	growth := (size2 - size1) / size1
	t.Logf("dump %.1f MB → %.1f MB (+%.2f %%); second create added %.0f KB before compression (%.2f %% of the dump), %.0f KB stored",
		size1/1e6, size2/1e6, 100*growth, added/1e3, 100*added/size2, second["added_bytes"].(float64)/1e3)
	if size1 < 20e6 || growth < 0.005 || growth > 0.02 {
		t.Fatalf("test data is off: a %.1f MB dump that grew %.2f %%", size1/1e6, 100*growth)
	}
	if added > 0.03*size2 {
		t.Fatalf("second dump added %.0f bytes, more than 3 %% of its %.0f bytes", added, size2)
	}
}
