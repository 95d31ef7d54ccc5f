package sources

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestDatabasePropertiesCheck: recorded properties are run by a restore as
// the role it connects as (a superuser), so only what pg_dump writes about
// the database itself passes: statements of other kinds, several
// statements in one, psql backslash commands and options that span lines or
// statements are refused (a database owner smuggled "ALTER ROLE … SUPERUSER"
// in through a locale with a line break; found by a review).
func TestDatabasePropertiesCheck(t *testing.T) {
	good := DatabaseProperties{
		CreateWith: "TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C.UTF-8';",
		Statements: []string{
			"ALTER DATABASE app OWNER TO alice;",
			"COMMENT ON DATABASE app IS 'it''s; -- not a comment\nALTER ROLE x SUPERUSER;';",
			"REVOKE CONNECT,TEMPORARY ON DATABASE app FROM PUBLIC;",
			"GRANT CONNECT ON DATABASE app TO bob;",
			"ALTER ROLE alice IN DATABASE app SET statement_timeout TO '5s';",
			"ALTER DATABASE app SET search_path TO \"$user\", public;",
			// pg_dump writes a value with a backslash as an E'' string.
			"ALTER ROLE alice IN DATABASE app SET default_tablespace TO E'\u0101\\\\''; ALTER ROLE x SUPERUSER; --';",
		},
	}
	if err := good.check("app"); err != nil {
		t.Fatalf("pg_dump's own statements refused: %v", err)
	}
	quoted := DatabaseProperties{CreateWith: good.CreateWith, Statements: []string{`ALTER DATABASE "My ""App""" OWNER TO a;`, `GRANT CONNECT ON DATABASE "My ""App""" TO b;`}}
	if err := quoted.check(`My "App"`); err != nil {
		t.Errorf("a quoted database name refused: %v", err)
	}
	// "Prod" unquoted names prod, another database.
	if err := (DatabaseProperties{CreateWith: good.CreateWith, Statements: []string{"ALTER DATABASE Prod OWNER TO m;"}}).check("Prod"); err == nil {
		t.Error("an unquoted name that folds to another database accepted")
	}
	// A grant by another grantor: kept, the session authorization dropped.
	if got, err := pgDatabaseStatements("SET SESSION AUTHORIZATION bob;\nGRANT CONNECT ON DATABASE app TO carol;\nRESET SESSION AUTHORIZATION;\n", "app"); err != nil || len(got) != 1 {
		t.Errorf("a grant by another grantor: %q, %v", got, err)
	}
	for name, p := range map[string]DatabaseProperties{
		"another kind of statement":     {CreateWith: good.CreateWith, Statements: []string{"ALTER ROLE mallory SUPERUSER;"}},
		"two statements in one":         {CreateWith: good.CreateWith, Statements: []string{"ALTER DATABASE app OWNER TO a; ALTER ROLE m SUPERUSER;"}},
		"a comment hiding the rest":     {CreateWith: good.CreateWith, Statements: []string{"ALTER ROLE m SUPERUSER; -- IN DATABASE app"}},
		"a backslash command":           {CreateWith: good.CreateWith, Statements: []string{"ALTER DATABASE app OWNER TO a \\! id"}},
		"a literal left open":           {CreateWith: good.CreateWith, Statements: []string{"COMMENT ON DATABASE app IS 'x;"}},
		"a block comment":               {CreateWith: good.CreateWith, Statements: []string{"ALTER DATABASE app /* x */ OWNER TO a;"}},
		"options spanning lines":        {CreateWith: "TEMPLATE = template0 ICU_LOCALE = 'und\nx';"},
		"options of two statements":     {CreateWith: "TEMPLATE = template0; ALTER ROLE m SUPERUSER;"},
		"a grant on something else":     {CreateWith: good.CreateWith, Statements: []string{"GRANT pg_read_server_files TO mallory;"}},
		"a role setting outside the db": {CreateWith: good.CreateWith, Statements: []string{"ALTER ROLE mallory SET role = 'postgres';"}},
		"another database":              {CreateWith: good.CreateWith, Statements: []string{"ALTER DATABASE template1 OWNER TO mallory;"}},
		"a grant to a role named alike": {CreateWith: good.CreateWith, Statements: []string{`GRANT pg_execute_server_program TO " ON DATABASE app";`}},
		"a prefix of the name":          {CreateWith: good.CreateWith, Statements: []string{"ALTER DATABASE application OWNER TO mallory;"}},
		"a grant on two databases":      {CreateWith: good.CreateWith, Statements: []string{"GRANT ALL ON DATABASE app, postgres TO mallory;"}},
		"not UTF-8":                     {CreateWith: good.CreateWith, Statements: []string{"COMMENT ON DATABASE app IS '\x81\\'';"}},
		// Where a literal ends, psql and the check would disagree: a
		// \! after them ran a shell command (an exploratory test).
		"a dollar-quoted string":   {CreateWith: good.CreateWith, Statements: []string{"COMMENT ON DATABASE app IS $q$'$q$ \\! id #';"}},
		"an E'' string":            {CreateWith: good.CreateWith, Statements: []string{"COMMENT ON DATABASE app IS E'\\' ' \\! id; echo #';"}},
		"dollar quotes in options": {CreateWith: "TEMPLATE = template0 ENCODING = $q$'$q$ \\! id #';"},
		"an e'' string in options": {CreateWith: "TEMPLATE = template0 LOCALE = e'\\' ' \\! id #';"},
	} {
		if err := p.check("app"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestPgOneTransaction: pg_dump's BEGIN and COMMIT around the data of
// large objects are dropped, whatever the reads' sizes, and nothing else:
// not such lines in COPY data, in a function's body, or elsewhere.
func TestPgOneTransaction(t *testing.T) {
	long := strings.Repeat("x", 200<<10)
	blobs := "--\n-- Data for Name: BLOBS; Type: BLOBS; Schema: -; Owner: -\n--\n\n%s\nSELECT pg_catalog.lo_open('1', 131072);\nSELECT pg_catalog.lowrite(0, '\\x00');\n\n%s\n"
	before := "SET x = 1;\n" +
		"--\n-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: o\n--\n\n" +
		// COPY rows of every shape the filter looks for.
		"COPY public.t (s) FROM stdin;\nBEGIN;\nCOMMIT;\n" + fmt.Sprintf(blobs, "BEGIN;\n", "COMMIT;\n") + long + "\n\\.\n" +
		"CREATE PROCEDURE p() LANGUAGE plpgsql AS $$\nBEGIN\nCOMMIT;\nEND $$;\n"
	after := "ALTER TABLE ONLY public.t ADD CONSTRAINT t_pkey PRIMARY KEY (s);\nBEGIN;\nCOMMIT;\n" +
		// Such lines in a comment's text (a re-test): not pg_dump's.
		"COMMENT ON TABLE public.c IS E'comment\n-- Data for Name: evil; Type: BLOB\nBEGIN;\nstill comment\nCOMMIT;\nend';\n" +
		"COMMENT ON TABLE public.d IS E'x\n--\n-- Data for Name: evil; Type: BLOBS\n--\n\nBEGIN;\n\nnot a call\nCOMMIT;\n';\n"
	in := before + fmt.Sprintf(blobs, "BEGIN;\n", "COMMIT;\n") + after
	want := before + fmt.Sprintf(blobs, "", "") + after
	for _, size := range []int{1, 7, 4096, 1 << 20} {
		out, err := io.ReadAll(pgOneTransaction(iotest.HalfReader(&chunkReader{s: in, n: size})))
		if err != nil || string(out) != want {
			t.Errorf("reads of %d: %v\n%q", size, err, cutBytes(string(out), 2000))
		}
	}
}

// FuzzPgOneTransaction: the filter of a dump (repository bytes, so
// hostile) never panics, only drops whole lines "BEGIN;" and "COMMIT;",
// and passes any input without such lines unchanged.
func FuzzPgOneTransaction(f *testing.F) {
	f.Add("COPY t (s) FROM stdin;\nBEGIN;\n\\.\n-- Data for Name: BLOBS; Type: BLOBS;\n\nBEGIN;\nSELECT 1;\nCOMMIT;\n", 3)
	f.Add("-- Data for Name: x; Type: BLOB\r\nBEGIN;\r\nCOMMIT;\r\n", 1)
	f.Fuzz(func(t *testing.T, in string, size int) {
		size = max(1, size%(1<<16))
		out, err := io.ReadAll(pgOneTransaction(&chunkReader{s: in, n: size}))
		if err != nil {
			t.Fatal(err)
		}
		kept := strings.NewReplacer("BEGIN;\r\n", "", "BEGIN;\n", "", "COMMIT;\r\n", "", "COMMIT;\n", "").Replace(in)
		if !strings.Contains(in, "BEGIN;") && string(out) != in || len(out) < len(kept) || len(out) > len(in) {
			t.Fatalf("%q became %q", in, out)
		}
	})
}
