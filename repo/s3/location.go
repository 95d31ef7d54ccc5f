package s3

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// awsEndpoint serves the short form s3:bucket/prefix.
const awsEndpoint = "s3.amazonaws.com"

// Config says where the repository lives. It holds no credentials: those
// come from the environment (see credentials.go).
type Config struct {
	Endpoint string // host[:port]
	Secure   bool   // https
	Bucket   string
	Prefix   string // "" for the bucket's root; no leading or trailing slash
	Region   string // "" lets the client ask the server
	// PathStyle addresses the bucket in the URL path (host/bucket/key)
	// rather than in the host name; MinIO, Ceph, Garage and versitygw
	// need it unless their DNS is set up for buckets.
	PathStyle bool
	// short records that the location was given as s3:bucket/prefix.
	short bool

	// MultipartThreshold: objects larger than this are uploaded in parts
	// of PartSize bytes; smaller ones in one PUT. 0 means the defaults.
	MultipartThreshold int64
	PartSize           int64
	// IdleTimeout is how long a request's connection may move no byte
	// before it is given up (see idleTimeout, the default when 0).
	IdleTimeout time.Duration
}

// Default upload sizes. Packs (16 MiB by default) go in one PUT; the
// limits of S3 are 5 MiB for a part (except the last) and 5 GiB for a PUT.
const (
	DefaultMultipartThreshold = 64 << 20
	DefaultPartSize           = 16 << 20
	minPartSize               = 5 << 20
)

// ParseLocation reads a repository location:
//
//	s3:http[s]://host[:port]/bucket[/prefix]   any S3-compatible server (path-style)
//	s3:bucket[/prefix]                          AWS S3
//
// The region comes from AWS_REGION or AWS_DEFAULT_REGION (read through
// getenv). Credentials in the location are refused, so that they can
// never end up in logs, shell history or snapshot metadata.
func ParseLocation(loc string, getenv func(string) string) (Config, error) {
	rest, ok := strings.CutPrefix(loc, "s3:")
	if !ok {
		return Config{}, fmt.Errorf("S3 location must start with s3:")
	}
	cfg := Config{Region: getenv("AWS_REGION")}
	if cfg.Region == "" {
		cfg.Region = getenv("AWS_DEFAULT_REGION")
	}
	var bucketPath string
	// A URL's scheme is case-insensitive (s3:HTTP://… was refused as a
	// scheme snap does not speak).
	if scheme, after, ok := strings.Cut(rest, "://"); ok && (strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https")) {
		rest = strings.ToLower(scheme) + "://" + after
	}
	if strings.HasPrefix(rest, "http://") || strings.HasPrefix(rest, "https://") {
		u, err := url.Parse(rest)
		if err != nil {
			return Config{}, fmt.Errorf("S3 location: cannot parse the URL (%v); use s3:http[s]://host:port/bucket[/prefix]", redactURLError(err))
		}
		if u.User != nil {
			return Config{}, fmt.Errorf("S3 location: credentials do not belong in the repository location; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or use ~/.aws/credentials) and give s3:%s://%s%s", u.Scheme, u.Host, u.Path)
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return Config{}, fmt.Errorf("S3 location %s: query strings and fragments are not supported", loc)
		}
		if u.Host == "" {
			return Config{}, fmt.Errorf("S3 location %s: no host; use s3:http[s]://host:port/bucket[/prefix]", loc)
		}
		if strings.HasSuffix(u.Host, ":") {
			return Config{}, fmt.Errorf("S3 location %s: no port after the colon; give host:port, or the host alone for the scheme's port", loc)
		}
		if p := u.Port(); p != "" {
			// Refused here: the dial's error for port 0 or 99999 was
			// retried for a minute (found by an exploratory test).
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return Config{}, fmt.Errorf("S3 location %s: port %s: give a port from 1 to 65535", loc, p)
			}
		}
		cfg.Endpoint, cfg.Secure, cfg.PathStyle = u.Host, u.Scheme == "https", true
		bucketPath = u.Path
		if cfg.Region == "" {
			// Servers other than AWS rarely care, and naming a region
			// saves a location lookup on every run.
			cfg.Region = "us-east-1"
		}
	} else {
		if hostPath, ok := strings.CutPrefix(rest, "//"); ok {
			// restic's s3://host:port/bucket, or s3://bucket as other tools
			// write AWS locations.
			if first, _, _ := strings.Cut(hostPath, "/"); strings.ContainsAny(first, ":.") {
				return Config{}, fmt.Errorf("S3 location %s: not snap's form; use s3:https://%s (or s3:http://%s for a server without TLS)", loc, hostPath, hostPath)
			}
			return Config{}, fmt.Errorf("S3 location %s: not snap's form; use s3:%s for a bucket on AWS, or s3:https://host:port/%s for another server", loc, hostPath, hostPath)
		}
		if scheme, after, ok := strings.Cut(rest, "://"); ok && !strings.Contains(scheme, "/") {
			// s3:ftp://host/b read as a bucket named "ftp:".
			return Config{}, fmt.Errorf("S3 location %s: %s:// is not a scheme snap speaks; use s3:https://%s (or s3:http://%s for a server without TLS)", loc, scheme, after, after)
		}
		cfg.Endpoint, cfg.Secure, cfg.short = awsEndpoint, true, true
		bucketPath = rest
	}
	bucketPath = strings.Trim(bucketPath, "/")
	bucket, prefix, _ := strings.Cut(bucketPath, "/")
	if bucket == "" {
		return Config{}, fmt.Errorf("S3 location %s: no bucket; use s3:http[s]://host:port/bucket[/prefix] or s3:bucket[/prefix]", loc)
	}
	if err := s3utils.CheckValidBucketNameStrict(bucket); err != nil {
		return Config{}, fmt.Errorf("S3 location %s: bucket name %q: %v", loc, bucket, err)
	}
	for _, seg := range strings.Split(prefix, "/") {
		if prefix != "" && (seg == "" || seg == "." || seg == "..") {
			return Config{}, fmt.Errorf("S3 location %s: prefix %q has an empty, '.' or '..' element", loc, prefix)
		}
	}
	cfg.Bucket, cfg.Prefix = bucket, prefix
	return cfg, nil
}

// Location is the canonical form of the location, without credentials.
func (c Config) Location() string {
	p := c.Bucket
	if c.Prefix != "" {
		p += "/" + c.Prefix
	}
	if c.short {
		return "s3:" + p
	}
	scheme := "http"
	if c.Secure {
		scheme = "https"
	}
	return fmt.Sprintf("s3:%s://%s/%s", scheme, c.Endpoint, p)
}

// redactURLError drops the URL (which may hold a password) from a parse
// error.
func redactURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
