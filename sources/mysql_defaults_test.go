package sources

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Found by a review: option-file spellings that mariadb-dump honours (loose- prefix, a
// unique prefix of the name) pass mysqlDumpDefaults; a value with blanks
// is split into words, and a word of it starting with -- is taken for an
// option.
func TestMySQLDumpDefaultsSpellings(t *testing.T) {
	if _, err := lookTool("mariadb-dump", "mysqldump"); err != nil {
		t.Skip("no client")
	}
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		cnf     string
		refused bool
	}{
		"loose-ignore-table": {"[mysqldump]\nloose-ignore-table = rv1_opt.t1\n", true},
		"client loose-where": {"[client]\nloose-where = 1=0\n", true},
		"prefix wher":        {"[mysqldump]\nwher = 1=0\n", true},
		"plain where":        {"[mysqldump]\nwhere = 1=0\n", true},
		"upper case":         {"[mysqldump]\nWHERE = 1=0\n", true},
		"one letter":         {"[mysqldump]\nw = 1=0\n", true},
		"client loose-upper": {"[client]\nloose-WHERE = 1=0\n", true},
		"mixed case":         {"[mysqldump]\nIgnore_Table = rv1_opt.t1\n", true},
		"databases":          {"[mysqldump]\nDatabases\n", true},
		"pw-value":           {"[client]\npassword = \"s3cret --tab x\"\n", false},
		"normal":             {"[mysqldump]\nquick\nmax_allowed_packet = 16M\n[client]\npassword = \"a b c\"\n", false},
	} {
		p := filepath.Join(dir, fmt.Sprintf("c%d.cnf", len(name)))
		if err := os.WriteFile(p, []byte(tc.cnf), 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := ParseDatabase("mysql://root@127.0.0.1:3306/rv1_opt?defaults-extra-file=" + p)
		if err != nil {
			t.Fatal(err)
		}
		tool, _ := lookTool("mariadb-dump", "mysqldump")
		err = d.mysqlDumpDefaults(context.Background(), tool)
		if (err != nil) != tc.refused {
			t.Errorf("%s: refused=%v, want %v (%v)", name, err != nil, tc.refused, err)
		}
	}
}
