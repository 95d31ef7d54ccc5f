package s3

import (
	"os"
	"os/user"
	"path/filepath"
	"strings"
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

// TestCredentialsMistake: a key without its secret, a shared credentials
// file that is missing, one without the profile asked for, or a profile
// with half a key pair, is named (each was "access denied" or "no
// credentials were found").
func TestCredentialsMistake(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "credentials")
	if err := os.WriteFile(file, []byte("[default]\naws_access_key_id = a\naws_secret_access_key = b\n\n[backup]\naws_access_key_id = c\n[half]\n# a comment\naws_secret_access_key=d\naws_access_key_id =\n[full]\naws_access_key_id=e\naws_secret_access_key=f\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"AWS_ACCESS_KEY_ID": "a"}, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"},
		{map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}, ""},
		{map[string]string{"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "nope")}, "the shared credentials file " + filepath.Join(dir, "nope") + " cannot be read"},
		{map[string]string{"AWS_SHARED_CREDENTIALS_FILE": file, "AWS_PROFILE": "nope"}, "has no profile [nope]"},
		{map[string]string{"AWS_SHARED_CREDENTIALS_FILE": file, "AWS_PROFILE": "backup"}, "profile [backup] of the shared credentials file " + file + " sets aws_access_key_id but no aws_secret_access_key"},
		{map[string]string{"AWS_SHARED_CREDENTIALS_FILE": file, "AWS_PROFILE": "half"}, "sets aws_secret_access_key but no aws_access_key_id"},
		{map[string]string{"AWS_SHARED_CREDENTIALS_FILE": file, "AWS_PROFILE": "full"}, ""},
		{map[string]string{"AWS_SHARED_CREDENTIALS_FILE": file}, ""},
		{map[string]string{"HOME": dir}, ""}, // dir/.aws/credentials: none, and none asked for
	} {
		got := credentialsMistake(func(k string) string { return c.env[k] })
		if c.want == "" && got != "" || !strings.Contains(got, c.want) {
			t.Errorf("%v: %q, want %q", c.env, got, c.want)
		}
	}
}
