package s3

import (
	"os/user"
	"path/filepath"
	"testing"
)

// TestSharedCredentialsWithoutHome: a systemd system service has no HOME;
// the shared credentials file is then looked for in the account's home
// directory from the password database, as AWS tools would with HOME set.
func TestSharedCredentialsWithoutHome(t *testing.T) {
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "")
	t.Setenv("HOME", "/somewhere")
	if got := sharedCredentialsFile(); got != "" {
		t.Errorf("with HOME set: %q, want the library's choice", got)
	}
	t.Setenv("HOME", "")
	u, err := user.Current()
	if err != nil || u.HomeDir == "" {
		t.Skipf("no home directory in the password database: %v", err)
	}
	if got, want := sharedCredentialsFile(), filepath.Join(u.HomeDir, ".aws", "credentials"); got != want {
		t.Errorf("without HOME: %q, want %q", got, want)
	}
}
