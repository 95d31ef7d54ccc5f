package s3

import (
	"bufio"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"

	"github.com/minio/minio-go/v7/pkg/credentials"
)

// credentialsChain finds credentials where AWS tools look for them, in
// this order: the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN), the shared credentials file (AWS_SHARED_CREDENTIALS_FILE
// or ~/.aws/credentials, profile AWS_PROFILE or "default"), and the
// instance or container role (EC2/ECS metadata). They are never part of
// the repository location, and nothing prints them.
func credentialsChain() *credentials.Credentials {
	return credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{Filename: sharedCredentialsFile()},
		&credentials.IAM{},
	})
}

// sharedCredentialsFile is where the shared credentials file is looked
// for when neither AWS_SHARED_CREDENTIALS_FILE nor HOME says: a systemd
// system service has no HOME, and ~/.aws/credentials is then the account's
// home directory's, from the password database (as for snap's cache). ""
// leaves the choice to the library.
func sharedCredentialsFile() string {
	if os.Getenv("AWS_SHARED_CREDENTIALS_FILE") != "" || os.Getenv("HOME") != "" {
		return ""
	}
	u, err := user.Current()
	if err != nil || u.HomeDir == "" {
		return ""
	}
	return filepath.Join(u.HomeDir, ".aws", "credentials")
}

// credentialsMistake names a mistake in where the credentials come from
// that explains a refused request better than the server's answer does: a
// key without its secret, a shared credentials file that is not there, a
// profile that it lacks. "" when it sees none. getenv is os.Getenv.
func credentialsMistake(getenv func(string) string) string {
	id, secret := getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY")
	switch {
	case id != "" && secret == "":
		return "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"
	case id == "" && secret != "":
		return "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"
	case id != "":
		return "" // the variables win over the file
	}
	file := getenv("AWS_SHARED_CREDENTIALS_FILE")
	if file == "" {
		file = sharedCredentialsFile()
	}
	if file == "" {
		if home := getenv("HOME"); home != "" {
			file = filepath.Join(home, ".aws", "credentials")
		}
	}
	profile := getenv("AWS_PROFILE")
	f, err := os.Open(file)
	if err != nil {
		if getenv("AWS_SHARED_CREDENTIALS_FILE") != "" || profile != "" {
			return fmt.Sprintf("the shared credentials file %s cannot be read (%v)", file, err)
		}
		return ""
	}
	defer f.Close()
	if profile == "" {
		profile = "default"
	}
	sc := bufio.NewScanner(f)
	found, keys := false, map[string]bool{}
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			if found {
				break // the profile's section ended
			}
			found = line == "["+profile+"]"
			continue
		}
		if name, value, ok := strings.Cut(line, "="); found && ok && strings.TrimSpace(value) != "" {
			keys[strings.TrimSpace(name)] = true
		}
	}
	if !found {
		return fmt.Sprintf("the shared credentials file %s has no profile [%s]", file, profile)
	}
	// A profile with half a key pair sends requests without credentials
	// or with a wrong signature; the server's answer does not say which
	// half is missing (found by an exploratory test).
	for _, pair := range [][2]string{{"aws_access_key_id", "aws_secret_access_key"}, {"aws_secret_access_key", "aws_access_key_id"}} {
		if keys[pair[0]] && !keys[pair[1]] {
			return fmt.Sprintf("profile [%s] of the shared credentials file %s sets %s but no %s", profile, file, pair[0], pair[1])
		}
	}
	return ""
}
