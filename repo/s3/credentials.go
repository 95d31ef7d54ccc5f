package s3

import (
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
		&credentials.FileAWSCredentials{},
		&credentials.IAM{},
	})
}
