// Package s3 stores a repository in a bucket of an S3-compatible object
// store: AWS S3, MinIO, Ceph RGW, Garage, versitygw.
//
// The repository layout is the local one under the bucket's prefix
// (config, keys/, data/xx/, index/, snapshots/, locks/). A complete object
// goes up in one PUT, which S3 makes visible whole or not at all; objects
// larger than the multipart threshold go up in parts and appear only when
// the upload is completed. Loads are ranged GETs. Every body carries its
// MD5 (Content-MD5), so the server rejects a corrupted upload.
//
// The client (minio-go) does not retry on its own: retrying is the job of
// the retry wrapper (repo/retry), which sees every request and repeats
// those this package marks as transient (repo.ErrTransient).
package s3

import (
	"bytes"
	"cmp"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/snap-backup/snap/repo"
)

// maxLoad bounds what one Load may allocate, whatever the server says.
const maxLoad = repo.MaxFileSize

// Backend is a repository in an S3 bucket.
type Backend struct {
	cfg    Config
	client *minio.Client
	core   minio.Core
	tr     *http.Transport
	clock  *clockWatch
	creds  *credentials.Credentials

	condOnce sync.Once
	cond     bool // the server honours If-None-Match on PUT
	condErr  error
}

var _ repo.Backend = (*Backend)(nil)

// Open returns the backend for the location. It makes no request: a
// missing bucket or repository shows on first use (the key listing of
// repo.Open), as an error wrapping repo.ErrNoRepository.
func Open(cfg Config) (*Backend, error) {
	if cfg.MultipartThreshold == 0 {
		cfg.MultipartThreshold = DefaultMultipartThreshold
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartSize < minPartSize {
		return nil, fmt.Errorf("S3 part size %d is below the minimum of %d", cfg.PartSize, minPartSize)
	}
	tr, err := minio.DefaultTransport(cfg.Secure)
	if err != nil {
		return nil, err
	}
	tr.MaxIdleConnsPerHost = 64
	withIdleTimeout(tr, cmp.Or(cfg.IdleTimeout, idleTimeout))
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	creds := credentialsChain()
	clock := &clockWatch{next: tr}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        creds,
		Secure:       cfg.Secure,
		Transport:    clock,
		Region:       cfg.Region,
		BucketLookup: lookup,
		MaxRetries:   1, // retries belong to repo/retry
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %v", cfg.Location(), err)
	}
	return &Backend{cfg: cfg, client: client, core: minio.Core{Client: client}, tr: tr, clock: clock, creds: creds}, nil
}

// Create prepares the location for a new repository: it creates the
// bucket when it does not exist and refuses a prefix that already holds
// objects (repo.ErrExists).
func Create(ctx context.Context, cfg Config) (*Backend, error) {
	b, err := Open(cfg)
	if err != nil {
		return nil, err
	}
	exists, err := b.client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, b.fail("check bucket", cfg.Bucket, err)
	}
	if !exists {
		err := b.client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region})
		var er minio.ErrorResponse
		if errors.As(err, &er) && er.Code == "BucketAlreadyOwnedByYou" {
			err = nil // created by a concurrent init
		}
		if err != nil {
			return nil, b.fail("create bucket", cfg.Bucket, err)
		}
	}
	first, err := b.FirstObject(ctx)
	if err != nil {
		return nil, err
	}
	if first != "" {
		if strings.Contains("/"+first, "/keys/") && b.stoppedInit(ctx) {
			// As a directory that an init left says (the advice to
			// choose another prefix was no help; found by an
			// exploratory test).
			return nil, fmt.Errorf("%s: %w: it holds key files and nothing else, no config: what a 'snap init' that was stopped left; remove its keys/ and run 'snap init' again", cfg.Location(), repo.ErrExists)
		}
		return nil, fmt.Errorf("%s: %w (it holds %s); choose an empty bucket or another prefix", cfg.Location(), repo.ErrExists, first)
	}
	return b, nil
}

// stoppedInit reports whether the location holds what an init that was
// stopped leaves: key files, no config, no data, index or snapshots (the
// caller has seen that the first object is a key file).
func (b *Backend) stoppedInit(ctx context.Context) bool {
	if _, err := b.Stat(ctx, repo.Handle{Type: repo.ConfigFile}); !errors.Is(err, repo.ErrNotFound) {
		return false
	}
	found := errors.New("found")
	if err := b.List(ctx, repo.KeyFile, func(string, int64) error { return found }); !errors.Is(err, found) {
		return false
	}
	return !repo.HoldsData(ctx, b)
}

// FirstObject returns the key of an object under the location's prefix,
// or "" when there is none (repo.Occupied).
func (b *Backend) FirstObject(ctx context.Context) (string, error) {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for obj := range b.client.ListObjects(lctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: b.dirPrefix(""), Recursive: true, MaxKeys: 1}) {
		if obj.Err != nil {
			return "", b.fail("list", b.dirPrefix(""), obj.Err)
		}
		return obj.Key, nil
	}
	return "", nil
}

// NearbyRepositories returns the locations of repositories (a prefix that
// holds a config object) beside this one: under the same parent prefix of
// the bucket, the first maxNeighbours of them. A misspelt prefix holds
// nothing, and snap said to run 'snap init', which would split the
// history between two repositories (found by an exploratory test).
func (b *Backend) NearbyRepositories(ctx context.Context) ([]string, error) {
	if b.cfg.Prefix == "" {
		return nil, nil // the bucket's root: its repositories are below, which FirstObject tells
	}
	parent := path.Dir(b.cfg.Prefix)
	if parent == "." {
		parent = ""
	} else {
		parent += "/"
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var dirs []string
	for obj := range b.client.ListObjects(lctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: parent, Recursive: false}) {
		if obj.Err != nil {
			return nil, b.fail("list", parent, obj.Err)
		}
		if strings.HasSuffix(obj.Key, "/") && obj.Key != b.dirPrefix("") {
			dirs = append(dirs, obj.Key)
		}
		if len(dirs) >= maxNeighbourDirs {
			break
		}
	}
	var found []string
	for _, d := range dirs {
		if _, err := b.client.StatObject(ctx, b.cfg.Bucket, d+"config", minio.StatObjectOptions{}); err != nil {
			continue
		}
		c := b.cfg
		c.Prefix = strings.TrimSuffix(d, "/")
		if found = append(found, c.Location()); len(found) >= maxNeighbours {
			break
		}
	}
	return found, nil
}

// maxNeighbourDirs bounds the prefixes NearbyRepositories looks into (a
// request each), and maxNeighbours the repositories it names.
const (
	maxNeighbourDirs = 50
	maxNeighbours    = 5
)

// Location returns the location without credentials.
func (b *Backend) Location() string { return b.cfg.Location() }

// dirPrefix is the key prefix of a directory of the layout ("" for the
// repository's root), ending in a slash when not empty.
func (b *Backend) dirPrefix(dir string) string {
	p := path.Join(b.cfg.Prefix, dir)
	if p == "" || p == "." {
		return ""
	}
	return p + "/"
}

func (b *Backend) key(h repo.Handle) (string, error) {
	if h.Type != repo.ConfigFile && !repo.ValidName(h.Name) {
		return "", fmt.Errorf("invalid file name %q", h.Name)
	}
	return path.Join(b.cfg.Prefix, h.String()), nil
}

// Save uploads data in one PUT, or in parts when it is larger than the
// multipart threshold. The config file is written only if it does not
// exist (see saveConfig); every other name is the hash of its content, so
// writing it again stores the same bytes.
func (b *Backend) Save(ctx context.Context, h repo.Handle, data []byte) error {
	key, err := b.key(h)
	if err != nil {
		return err
	}
	if h.Type == repo.ConfigFile {
		return b.saveConfig(ctx, h, key, data)
	}
	if int64(len(data)) > b.cfg.MultipartThreshold {
		return b.saveMultipart(ctx, h, key, data)
	}
	return b.fail("save", h.String(), b.put(ctx, key, data, false))
}

func (b *Backend) put(ctx context.Context, key string, data []byte, ifAbsent bool) error {
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", DisableContentSha256: true}
	if ifAbsent {
		opts.SetMatchETagExcept("*")
	}
	_, err := b.core.PutObject(ctx, b.cfg.Bucket, key, bytes.NewReader(data), int64(len(data)), md5Base64(data), "", opts)
	return err
}

func md5Base64(data []byte) string {
	sum := md5.Sum(data)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// saveMultipart uploads data in parts. The object appears only when the
// upload is completed; a failed upload is aborted so that its parts do not
// linger (a crash can still leave some: a bucket lifecycle rule that
// aborts incomplete multipart uploads after a day cleans those up).
func (b *Backend) saveMultipart(ctx context.Context, h repo.Handle, key string, data []byte) (err error) {
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream"}
	id, err := b.core.NewMultipartUpload(ctx, b.cfg.Bucket, key, opts)
	if err != nil {
		return b.fail("save", h.String(), err)
	}
	defer func() {
		if err != nil {
			actx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = b.core.AbortMultipartUpload(actx, b.cfg.Bucket, key, id)
		}
	}()
	var parts []minio.CompletePart
	for off, n := int64(0), 1; off < int64(len(data)); off, n = off+b.cfg.PartSize, n+1 {
		part := data[off:min(off+b.cfg.PartSize, int64(len(data)))]
		p, err := b.core.PutObjectPart(ctx, b.cfg.Bucket, key, id, n, bytes.NewReader(part), int64(len(part)),
			minio.PutObjectPartOptions{Md5Base64: md5Base64(part), DisableContentSha256: true})
		if err != nil {
			return b.fail("save", fmt.Sprintf("%s (part %d)", h, n), err)
		}
		parts = append(parts, minio.CompletePart{PartNumber: n, ETag: p.ETag})
	}
	if _, err := b.core.CompleteMultipartUpload(ctx, b.cfg.Bucket, key, id, parts, opts); err != nil {
		return b.fail("save", h.String(), err)
	}
	return nil
}

// saveConfig writes the config only if there is none, so that two inits
// racing for one location cannot overwrite each other's config. Where the
// server honours If-None-Match (checked once, see conditional), the PUT
// itself is conditional; elsewhere a Stat before the PUT narrows the
// window, and repo.Init reads the config back to catch the rest.
func (b *Backend) saveConfig(ctx context.Context, h repo.Handle, key string, data []byte) error {
	cond, err := b.conditional(ctx)
	if err != nil {
		return err
	}
	if !cond {
		if _, err := b.Stat(ctx, h); err == nil {
			return nil
		} else if !errors.Is(err, repo.ErrNotFound) {
			return err
		}
	}
	err = b.put(ctx, key, data, cond)
	if isPreconditionFailed(err) {
		return nil // it exists: left alone, as the Backend contract says
	}
	return b.fail("save", h.String(), err)
}

// ConditionalWrites reports whether the server honours If-None-Match on
// PUT (asking it once, on first use).
func (b *Backend) ConditionalWrites(ctx context.Context) (bool, error) { return b.conditional(ctx) }

// conditional finds out, once, whether the server honours If-None-Match:
// * on PUT, by writing a probe object twice. Some servers ignore the
// header, and relying on it there would silently overwrite.
func (b *Backend) conditional(ctx context.Context) (bool, error) {
	b.condOnce.Do(func() {
		var rnd [8]byte
		_, _ = rand.Read(rnd[:])
		key := b.dirPrefix("") + ".snap-probe-" + hex.EncodeToString(rnd[:])
		if err := b.put(ctx, key, []byte("probe"), true); err != nil {
			b.condErr = b.fail("save", key, err)
			return
		}
		err := b.put(ctx, key, []byte("probe"), true)
		b.cond = isPreconditionFailed(err)
		if rerr := b.client.RemoveObject(ctx, b.cfg.Bucket, key, minio.RemoveObjectOptions{}); rerr != nil && b.condErr == nil {
			b.condErr = b.fail("remove", key, rerr)
		}
	})
	return b.cond, b.condErr
}

func isPreconditionFailed(err error) bool {
	var er minio.ErrorResponse
	return errors.As(err, &er) && (er.StatusCode == 412 || er.Code == "PreconditionFailed")
}

// Load reads length bytes from offset (to the end when length is 0) with
// one ranged GET.
func (b *Backend) Load(ctx context.Context, h repo.Handle, offset, length int64) ([]byte, error) {
	key, err := b.key(h)
	if err != nil {
		return nil, err
	}
	if offset < 0 || length < 0 || length > maxLoad {
		return nil, fmt.Errorf("load %s: invalid range %d+%d", h, offset, length)
	}
	var opts minio.GetObjectOptions
	switch {
	case length > 0:
		err = opts.SetRange(offset, offset+length-1)
	case offset > 0:
		err = opts.SetRange(offset, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", h, err)
	}
	body, info, _, err := b.core.GetObject(ctx, b.cfg.Bucket, key, opts)
	if err != nil {
		var er minio.ErrorResponse
		if errors.As(err, &er) && er.Code == "InvalidRange" {
			return nil, fmt.Errorf("load %s at %d+%d: beyond the end of the file: %w", h, offset, length, io.ErrUnexpectedEOF)
		}
		return nil, b.fail("load", h.String(), err)
	}
	defer body.Close()
	n := info.Size // the length of this response's body
	switch {
	case n < 0 || n > maxLoad:
		return nil, fmt.Errorf("load %s: the server announced %d bytes", h, n)
	case length > 0 && n < length:
		return nil, fmt.Errorf("load %s at %d+%d: the file ends after %d bytes: %w", h, offset, length, offset+n, io.ErrUnexpectedEOF)
	case length > 0 && n > length:
		return nil, fmt.Errorf("load %s at %d+%d: the server sent %d bytes; it does not support ranged reads", h, offset, length, n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(body, buf); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			// Cancelled while the body came: the caller's cancellation,
			// as errors.Is sees it, not a failure to retry.
			return nil, fmt.Errorf("load %s: %w", h, cerr)
		}
		// The connection broke off before the announced length: a
		// network failure (%v, so that it does not read as a truncated
		// file).
		return nil, repo.Transient(fmt.Errorf("load %s: the response broke off: %v", h, err))
	}
	return buf, nil
}

// Stat returns the object's size (a HEAD request).
func (b *Backend) Stat(ctx context.Context, h repo.Handle) (int64, error) {
	key, err := b.key(h)
	if err != nil {
		return 0, err
	}
	info, err := b.client.StatObject(ctx, b.cfg.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return 0, b.fail("stat", h.String(), err)
	}
	return info.Size, nil
}

// List lists the objects of one directory of the layout (with data/'s 256
// subdirectories), one page of up to 1000 per request. Incomplete
// multipart uploads are never listed by S3.
func (b *Backend) List(ctx context.Context, t repo.FileType, fn func(name string, size int64) error) error {
	if t == repo.ConfigFile {
		size, err := b.Stat(ctx, repo.Handle{Type: t})
		if errors.Is(err, repo.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn("", size)
	}
	prefix := b.dirPrefix(string(t))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine when fn fails
	for obj := range b.client.ListObjects(ctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return b.fail("list", strings.TrimSuffix(prefix, "/"), obj.Err)
		}
		rel := strings.TrimPrefix(obj.Key, prefix)
		name := path.Base(rel)
		if !repo.ValidName(name) {
			continue
		}
		if t == repo.PackFile && rel != name[:2]+"/"+name {
			if dir, ok := strings.CutSuffix(rel, "/"+name); ok && len(dir) == 2 && strings.Trim(dir, "0123456789abcdef") == "" {
				return b.misplacedPack(ctx, obj.Key, name)
			}
			continue // not where snap puts it
		}
		if t != repo.PackFile && rel != name {
			continue // not where snap puts it
		}
		if err := fn(name, obj.Size); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// misplacedPack is the error for a pack object under a data/xx/ prefix
// other than its name's, where no read looks for it: left out of the
// listing, 'repair index --from-packs' dropped its blobs from the index
// (found by an exploratory test). The listing fails, naming the object
// and where it belongs, as the local backend does.
func (b *Backend) misplacedPack(ctx context.Context, key, name string) error {
	want, err := b.key(repo.Handle{Type: repo.PackFile, Name: name})
	if err != nil {
		return err
	}
	if _, err := b.Stat(ctx, repo.Handle{Type: repo.PackFile, Name: name}); err == nil {
		return fmt.Errorf("object %s in bucket %s is a second copy of %s, in the wrong place: compare them and remove it", key, b.cfg.Bucket, want)
	}
	return fmt.Errorf("pack %s is the object %s in bucket %s, not %s where snap reads it: move it there (for example 'aws s3 mv s3://%s/%s s3://%s/%s')", name[:8], key, b.cfg.Bucket, want, b.cfg.Bucket, key, b.cfg.Bucket, want)
}

// Remove deletes the object. S3 reports success for a missing object, so
// a Stat first gives the contract's ErrNotFound.
func (b *Backend) Remove(ctx context.Context, h repo.Handle) error {
	key, err := b.key(h)
	if err != nil {
		return err
	}
	if _, err := b.Stat(ctx, h); err != nil {
		return err
	}
	if err := b.client.RemoveObject(ctx, b.cfg.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return b.fail("remove", h.String(), err)
	}
	return nil
}

// Close releases idle connections.
func (b *Backend) Close() error {
	b.tr.CloseIdleConnections()
	return nil
}
