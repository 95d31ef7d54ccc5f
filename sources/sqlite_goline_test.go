package sources

import (
	"context"
	"strings"
	"testing"
)

// TestSQLiteSchemaGoLineAdvice: a schema with a line of / alone (a view
// "SELECT a\n/\nb") is refused by the restore's screen on purpose; the
// create's warning said it was a false alarm to report, and gave no way
// out (found by an exploratory test).
func TestSQLiteSchemaGoLineAdvice(t *testing.T) {
	msg := sqliteSchemaProblem(context.Background(), []byte("CREATE TABLE t(a,b);\nCREATE VIEW ratio AS SELECT a\n/\nb AS r FROM t;\n"))
	if !strings.Contains(msg, "reads GO or / alone") || !strings.Contains(msg, "put the / or GO on the line before") || strings.Contains(msg, "false alarm") {
		t.Errorf("warning: %q", msg)
	}
	if msg := sqliteSchemaProblem(context.Background(), []byte("CREATE TABLE t(a,b);\nCREATE VIEW ratio AS SELECT a /\nb AS r FROM t;\n")); msg != "" {
		t.Errorf("the same view with the / on the line before: %q", msg)
	}
}
