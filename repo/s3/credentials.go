package s3

import (
	"os"
	"os/user"
	"path/filepath"

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
