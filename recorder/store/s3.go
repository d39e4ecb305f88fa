package store

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"iter"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// S3Config configures an S3-compatible store.
type S3Config struct {
	// Endpoint is host:port of the S3 service, without a scheme. Required.
	Endpoint string
	// Bucket holds the objects. Required. It should be created with object
	// lock enabled, or legal holds fail (see S3.LockEnabled).
	Bucket string
	// Region of the bucket. Default: us-east-1.
	Region string
	// AccessKey and SecretKey are the credentials. They never appear in
	// errors or logs. Default: none (anonymous).
	AccessKey string
	SecretKey string
	// TLS uses HTTPS. There is no default here: false is plain HTTP (the
	// configuration file's default is true).
	TLS bool
	// MultipartThreshold: objects larger than this many bytes are uploaded
	// in parts of this size. Default: 64 MiB. Minimum: 5 MiB.
	MultipartThreshold int64
	// RequestTimeout bounds connecting, waiting for the response headers of
	// any request, and each operation other than Put, Get bodies and List
	// as a whole. Default: 30s.
	RequestTimeout time.Duration
	// MinUploadRate is the slowest upload, in bytes per second, that Put
	// waits for: a Put of n bytes fails with ErrUnavailable after
	// RequestTimeout + n/MinUploadRate. Default: 1 MiB/s.
	MinUploadRate int64
	// MaxAttempts is how many times one request is tried on a network error
	// or a 5xx answer before ErrUnavailable (uploads from a plain reader are
	// tried once; the caller retries). Default: 3.
	MaxAttempts int
}

const (
	minPartSize = 5 << 20
	maxParts    = 10000
	// metaSHA256 keeps the hex SHA-256 of the whole object, as verified by
	// Put, in the object's user metadata, so that Stat can report it for
	// multipart objects too (whose S3 checksum is of the parts).
	metaSHA256 = "Kuzet-Sha256"
	hdrSHA256  = "X-Amz-Checksum-Sha256"
)

// S3 is an object store in an S3-compatible service (minio-go).
type S3 struct {
	cfg       S3Config
	core      minio.Core
	transport *http.Transport
	log       *slog.Logger
	m         *Metrics
	redact    *strings.Replacer
}

// NewS3 validates cfg, fills defaults and creates the client. It does not
// contact the service: an unreachable store at startup is not an error
// (Ping tells). log and m may be nil.
func NewS3(cfg S3Config, log *slog.Logger, m *Metrics) (*S3, error) {
	if cfg.Endpoint == "" {
		return nil, errors.New("store s3: endpoint is required")
	}
	if strings.Contains(cfg.Endpoint, "/") {
		return nil, fmt.Errorf("store s3: endpoint %q must be host:port without a scheme", cfg.Endpoint)
	}
	if cfg.Bucket == "" {
		return nil, errors.New("store s3: bucket is required")
	}
	if err := s3utils.CheckValidBucketName(cfg.Bucket); err != nil {
		return nil, fmt.Errorf("store s3: bucket %q: %w", cfg.Bucket, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.MultipartThreshold == 0 {
		cfg.MultipartThreshold = 64 << 20
	}
	if cfg.MultipartThreshold < minPartSize {
		return nil, fmt.Errorf("store s3: multipart threshold %d below the S3 minimum part size of 5 MiB", cfg.MultipartThreshold)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.MinUploadRate <= 0 {
		cfg.MinUploadRate = 1 << 20
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = newUnregisteredMetrics()
	}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   min(5*time.Second, cfg.RequestTimeout),
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.RequestTimeout,
		ResponseHeaderTimeout: cfg.RequestTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
	var creds *credentials.Credentials
	if cfg.AccessKey != "" || cfg.SecretKey != "" {
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")
	} else {
		creds = credentials.New(&credentials.Static{})
	}
	core, err := minio.NewCore(cfg.Endpoint, &minio.Options{
		Creds:           creds,
		Secure:          cfg.TLS,
		Region:          cfg.Region,
		Transport:       tr,
		TrailingHeaders: true,
		MaxRetries:      cfg.MaxAttempts,
	})
	if err != nil {
		return nil, fmt.Errorf("store s3: endpoint %q: %w", cfg.Endpoint, err)
	}
	var pairs []string
	for _, secret := range []string{cfg.SecretKey, cfg.AccessKey} {
		if len(secret) >= 4 {
			pairs = append(pairs, secret, "[REDACTED]")
		}
	}
	return &S3{
		cfg: cfg, core: *core, transport: tr, log: log, m: m,
		redact: strings.NewReplacer(pairs...),
	}, nil
}

// Close closes idle connections.
func (s *S3) Close() error {
	s.transport.CloseIdleConnections()
	return nil
}

// Put implements Store. Objects up to MultipartThreshold go in one PUT that
// carries the expected SHA-256 (x-amz-checksum-sha256), so the service
// itself refuses content that does not match. Larger objects go in parts,
// each with a SHA-256 trailer the service verifies; the whole-object
// SHA-256 is checked before the upload is completed, and a mismatch aborts
// it. Either way the stored object is then checked with a HEAD: its size,
// and its SHA-256 checksum (whole-object, or of the parts) when the service
// returns one. A Put that fails after the object was created removes that
// object version.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64, sum [sha256.Size]byte) (ObjectInfo, error) {
	start := time.Now()
	info, err := s.put(ctx, key, r, size, sum)
	return info, s.m.observePut(start, size, err)
}

func (s *S3) put(ctx context.Context, key string, r io.Reader, size int64, sum [sha256.Size]byte) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, fmt.Errorf("store s3: put: %w", err)
	}
	if size < 0 {
		return ObjectInfo{}, fmt.Errorf("store s3: put %q: negative size %d", key, size)
	}
	timeout := s.cfg.RequestTimeout + time.Duration(float64(size)/float64(s.cfg.MinUploadRate)*float64(time.Second))
	opctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	v := newVerifier(opctx, r, size)
	var (
		version  string
		checksum string // the S3 checksum the stored object must have
		err      error
	)
	if size <= s.cfg.MultipartThreshold {
		version, checksum, err = s.putSingle(opctx, key, v, size, sum)
	} else {
		version, checksum, err = s.putMultipart(ctx, opctx, key, v, size, sum)
	}
	if err != nil {
		if errors.Is(err, ErrIntegrity) {
			return ObjectInfo{}, s.wrap(ctx, "put", key, err)
		}
		if v.rerr != nil {
			return ObjectInfo{}, fmt.Errorf("store s3: put %q: reading content: %w", key, v.rerr)
		}
		if v.short(size) {
			return ObjectInfo{}, fmt.Errorf("store s3: put %q: %w: content ended after %d of %d bytes", key, ErrIntegrity, v.n, size)
		}
		return ObjectInfo{}, s.wrap(ctx, "put", key, err)
	}

	st, err := s.core.StatObject(opctx, s.cfg.Bucket, key, minio.StatObjectOptions{VersionID: version, Checksum: true})
	if err != nil {
		return ObjectInfo{}, s.wrap(ctx, "put: verify", key, err)
	}
	var bad error
	switch {
	case st.Size != size:
		bad = fmt.Errorf("%w: stored %d bytes, want %d", ErrIntegrity, st.Size, size)
	case st.ChecksumSHA256 != "" && st.ChecksumSHA256 != checksum:
		bad = fmt.Errorf("%w: stored SHA-256 checksum %s, want %s", ErrIntegrity, st.ChecksumSHA256, checksum)
	}
	if bad != nil {
		s.discard(ctx, key, st.VersionID)
		return ObjectInfo{}, s.wrap(ctx, "put: verify", key, bad)
	}
	return ObjectInfo{Key: key, Size: size, SHA256: sum, Modified: st.LastModified, Version: st.VersionID}, nil
}

func (s *S3) putOptions(key string, sum [sha256.Size]byte) minio.PutObjectOptions {
	ct := mime.TypeByExtension(path.Ext(key))
	if ct == "" {
		ct = "application/octet-stream"
	}
	return minio.PutObjectOptions{
		ContentType:          ct,
		UserMetadata:         map[string]string{metaSHA256: hex.EncodeToString(sum[:])},
		DisableContentSha256: true, // integrity comes from the x-amz-checksum-sha256 header or trailers
	}
}

// putSingle uploads in one PUT, with the expected checksum as a header.
func (s *S3) putSingle(ctx context.Context, key string, v *verifier, size int64, sum [sha256.Size]byte) (version, checksum string, err error) {
	checksum = base64.StdEncoding.EncodeToString(sum[:])
	opts := s.putOptions(key, sum)
	opts.UserMetadata[hdrSHA256] = checksum
	opts.DisableMultipart = true
	up, err := s.core.Client.PutObject(ctx, s.cfg.Bucket, key, v, size, opts)
	if err != nil {
		return "", "", err
	}
	if err := v.check(size, sum); err != nil {
		// The service accepted content whose checksum it was told; it
		// cannot differ from what we read, but do not trust it.
		s.discard(ctx, key, up.VersionID)
		return "", "", err
	}
	return up.VersionID, checksum, nil
}

// putMultipart uploads in parts of MultipartThreshold bytes. ctx is the
// caller's context (for cleanup after opctx expired).
func (s *S3) putMultipart(ctx, opctx context.Context, key string, v *verifier, size int64, sum [sha256.Size]byte) (version, checksum string, err error) {
	partSize := s.cfg.MultipartThreshold
	if (size+partSize-1)/partSize > maxParts {
		partSize = (size + maxParts - 1) / maxParts
	}
	opts := s.putOptions(key, sum)
	opts.UserMetadata["X-Amz-Checksum-Algorithm"] = "SHA256"
	uploadID, err := s.core.NewMultipartUpload(opctx, s.cfg.Bucket, key, opts)
	if err != nil {
		return "", "", err
	}
	defer func() {
		if err != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RequestTimeout)
			defer cancel()
			if aerr := s.core.AbortMultipartUpload(actx, s.cfg.Bucket, key, uploadID); aerr != nil {
				s.log.Warn("store s3: aborting multipart upload", "key", key, "err", s.redactErr(aerr))
			}
		}
	}()
	var (
		parts    []minio.CompletePart
		partSums []byte
	)
	for n, off := 1, int64(0); off < size; n, off = n+1, off+partSize {
		length := min(partSize, size-off)
		ph := newPartHasher(io.LimitReader(v, length))
		p, err := s.core.PutObjectPart(opctx, s.cfg.Bucket, key, uploadID, n, ph, length,
			minio.PutObjectPartOptions{Trailer: ph.trailer, DisableContentSha256: true})
		if err != nil {
			return "", "", err
		}
		if ph.n != length {
			return "", "", fmt.Errorf("%w: part %d: read %d bytes, want %d", ErrIntegrity, n, ph.n, length)
		}
		psum := ph.h.Sum(nil)
		want := base64.StdEncoding.EncodeToString(psum)
		if p.ChecksumSHA256 != "" && p.ChecksumSHA256 != want {
			return "", "", fmt.Errorf("%w: part %d stored with SHA-256 %s, want %s", ErrIntegrity, n, p.ChecksumSHA256, want)
		}
		parts = append(parts, minio.CompletePart{PartNumber: n, ETag: p.ETag, ChecksumSHA256: want})
		partSums = append(partSums, psum...)
	}
	if err := v.check(size, sum); err != nil {
		return "", "", err
	}
	up, err := s.core.CompleteMultipartUpload(opctx, s.cfg.Bucket, key, uploadID, parts, minio.PutObjectOptions{})
	if err != nil {
		return "", "", err
	}
	composite := sha256.Sum256(partSums)
	checksum = base64.StdEncoding.EncodeToString(composite[:]) + "-" + strconv.Itoa(len(parts))
	return up.VersionID, checksum, nil
}

// partHasher hashes one part as it is sent and puts the SHA-256 into the
// request trailer when the part ends, for the service to verify.
type partHasher struct {
	r       io.Reader
	h       hash.Hash
	n       int64
	trailer http.Header
}

func newPartHasher(r io.Reader) *partHasher {
	h := sha256.New()
	tr := http.Header{}
	tr.Set(hdrSHA256, base64.StdEncoding.EncodeToString(h.Sum(nil)))
	return &partHasher{r: r, h: h, trailer: tr}
}

func (p *partHasher) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.h.Write(b[:n])
		p.n += int64(n)
	}
	if err == io.EOF {
		p.trailer.Set(hdrSHA256, base64.StdEncoding.EncodeToString(p.h.Sum(nil)))
	}
	return n, err
}

// discard removes an object version written by a failed Put.
func (s *S3) discard(ctx context.Context, key, version string) {
	if version == "" {
		// An unversioned bucket: the failed Put replaced whatever was
		// there, so removing it loses nothing more.
		s.log.Warn("store s3: removing unverified object", "key", key)
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RequestTimeout)
	defer cancel()
	if err := s.core.RemoveObject(dctx, s.cfg.Bucket, key, minio.RemoveObjectOptions{VersionID: version}); err != nil {
		s.log.Error("store s3: removing unverified object", "key", key, "version", version, "err", s.redactErr(err))
	}
}

// Get implements Store. The reader streams the body; a stalled body is
// bounded by ctx only, so the caller's context must end.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return nil, ObjectInfo{}, s.m.observe("get", fmt.Errorf("store s3: get: %w", err))
	}
	body, oi, _, err := s.core.GetObject(ctx, s.cfg.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, ObjectInfo{}, s.m.observe("get", s.wrap(ctx, "get", key, err))
	}
	return body, s.info(key, oi), nil
}

// GetRange implements Store.
func (s *S3) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, s.m.observe("get_range", fmt.Errorf("store s3: get: %w", err))
	}
	if offset < 0 || length <= 0 {
		return nil, s.m.observe("get_range", fmt.Errorf("store s3: get %q: %w: offset %d length %d", key, ErrInvalidRange, offset, length))
	}
	var opts minio.GetObjectOptions
	if err := opts.SetRange(offset, offset+length-1); err != nil {
		return nil, s.m.observe("get_range", fmt.Errorf("store s3: get %q: %w: %v", key, ErrInvalidRange, err))
	}
	body, _, _, err := s.core.GetObject(ctx, s.cfg.Bucket, key, opts)
	if err != nil {
		return nil, s.m.observe("get_range", s.wrap(ctx, "get", key, err))
	}
	return body, nil
}

// Stat implements Store; SHA256 comes from the metadata Put stored, or
// from a whole-object S3 checksum.
func (s *S3) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, s.m.observe("stat", fmt.Errorf("store s3: stat: %w", err))
	}
	ctx2, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	oi, err := s.core.StatObject(ctx2, s.cfg.Bucket, key, minio.StatObjectOptions{Checksum: true})
	if err != nil {
		return ObjectInfo{}, s.m.observe("stat", s.wrap(ctx, "stat", key, err))
	}
	return s.info(key, oi), nil
}

func (s *S3) info(key string, oi minio.ObjectInfo) ObjectInfo {
	info := ObjectInfo{Key: key, Size: oi.Size, Modified: oi.LastModified, Version: oi.VersionID}
	if h := oi.UserMetadata[metaSHA256]; h != "" {
		if b, err := hex.DecodeString(h); err == nil && len(b) == sha256.Size {
			copy(info.SHA256[:], b)
			return info
		}
	}
	if c := oi.ChecksumSHA256; c != "" && !strings.Contains(c, "-") {
		if b, err := base64.StdEncoding.DecodeString(c); err == nil && len(b) == sha256.Size {
			copy(info.SHA256[:], b)
		}
	}
	return info
}

// Delete implements Store. It removes every version of the key (a retried
// Put can leave more than one), after checking that none is under legal
// hold; the service refuses anyway (object lock), which is also reported
// as ErrHeld.
func (s *S3) Delete(ctx context.Context, key string) error {
	return s.m.observe("delete", s.delete(ctx, key))
}

func (s *S3) delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("store s3: delete: %w", err)
	}
	ctx2, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	versions, err := s.versions(ctx2, key)
	if err != nil {
		return s.wrap(ctx, "delete", key, err)
	}
	live := 0
	for _, v := range versions {
		if v.IsDeleteMarker {
			continue
		}
		live++
		held, err := s.heldVersion(ctx2, key, v.VersionID)
		if err != nil {
			return s.wrap(ctx, "delete", key, err)
		}
		if held {
			return fmt.Errorf("store s3: delete %q: %w", key, ErrHeld)
		}
	}
	if live == 0 {
		return fmt.Errorf("store s3: delete %q: %w", key, ErrNotFound)
	}
	for _, v := range versions {
		err := s.core.RemoveObject(ctx2, s.cfg.Bucket, key, minio.RemoveObjectOptions{VersionID: v.VersionID})
		if err == nil {
			continue
		}
		if !v.IsDeleteMarker {
			if held, herr := s.heldVersion(ctx2, key, v.VersionID); herr == nil && held {
				return fmt.Errorf("store s3: delete %q: %w", key, ErrHeld)
			}
		}
		return s.wrap(ctx, "delete", key, err)
	}
	return nil
}

// versions lists all versions and delete markers of exactly key, newest
// first.
func (s *S3) versions(ctx context.Context, key string) ([]minio.ObjectInfo, error) {
	var out []minio.ObjectInfo
	for oi := range s.core.ListObjectsIter(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: key, Recursive: true, WithVersions: true}) {
		if oi.Err != nil {
			return nil, oi.Err
		}
		if oi.Key == key {
			out = append(out, oi)
		} else if oi.Key > key {
			break
		}
	}
	return out, nil
}

func (s *S3) heldVersion(ctx context.Context, key, version string) (bool, error) {
	st, err := s.core.GetObjectLegalHold(ctx, s.cfg.Bucket, key, minio.GetObjectLegalHoldOptions{VersionID: version})
	if err != nil {
		if r := minio.ToErrorResponse(err); r.Code == "NoSuchObjectLockConfiguration" || r.Code == "InvalidRequest" {
			return false, nil // no object lock on the bucket: nothing can be held
		}
		return false, err
	}
	return st != nil && *st == minio.LegalHoldEnabled, nil
}

// List implements Store. Each page request is bounded by RequestTimeout
// (for its response headers); the listing as a whole by ctx.
func (s *S3) List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error] {
	return func(yield func(ObjectInfo, error) bool) {
		if err := validatePrefix(prefix); err != nil {
			yield(ObjectInfo{}, s.m.observe("list", fmt.Errorf("store s3: list: %w", err)))
			return
		}
		fail := func(err error) { yield(ObjectInfo{}, s.m.observe("list", s.wrap(ctx, "list", prefix, err))) }
		if err := ctx.Err(); err != nil {
			fail(err)
			return
		}
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		for oi := range s.core.ListObjectsIter(lctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if oi.Err != nil {
				fail(oi.Err)
				return
			}
			if !yield(ObjectInfo{Key: oi.Key, Size: oi.Size, Modified: oi.LastModified, Version: oi.VersionID}, nil) {
				return
			}
		}
		// The listing may end quietly when ctx ends; do not pass that off
		// as complete.
		if err := ctx.Err(); err != nil {
			fail(err)
		}
	}
}

// SetHold implements Store with S3 object lock legal hold, set on (or
// released from) every version of the key: while it is on, the service
// refuses to delete a held version to anyone, the storage administrator
// included. Versions hidden behind a delete marker are held too.
func (s *S3) SetHold(ctx context.Context, key string, on bool) error {
	return s.m.observe("set_hold", s.setHold(ctx, key, on))
}

func (s *S3) setHold(ctx context.Context, key string, on bool) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("store s3: hold: %w", err)
	}
	status := minio.LegalHoldDisabled
	if on {
		status = minio.LegalHoldEnabled
	}
	ctx2, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	versions, err := s.liveVersions(ctx2, key)
	if err != nil {
		return s.wrap(ctx, "hold", key, err)
	}
	for _, v := range versions {
		err := s.core.PutObjectLegalHold(ctx2, s.cfg.Bucket, key, minio.PutObjectLegalHoldOptions{VersionID: v, Status: &status})
		if err != nil {
			return s.wrap(ctx, "hold", key, err)
		}
	}
	return nil
}

// Held implements Store: whether any version of the key is held.
func (s *S3) Held(ctx context.Context, key string) (bool, error) {
	held, err := s.heldAny(ctx, key)
	return held, s.m.observe("held", err)
}

func (s *S3) heldAny(ctx context.Context, key string) (bool, error) {
	if err := ValidateKey(key); err != nil {
		return false, fmt.Errorf("store s3: held: %w", err)
	}
	ctx2, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	versions, err := s.liveVersions(ctx2, key)
	if err != nil {
		return false, s.wrap(ctx, "held", key, err)
	}
	for _, v := range versions {
		held, err := s.heldVersion(ctx2, key, v)
		if err != nil {
			return false, s.wrap(ctx, "held", key, err)
		}
		if held {
			return true, nil
		}
	}
	return false, nil
}

// liveVersions returns the version IDs of key that are not delete markers,
// newest first, or ErrNotFound if there is none.
func (s *S3) liveVersions(ctx context.Context, key string) ([]string, error) {
	all, err := s.versions(ctx, key)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range all {
		if !v.IsDeleteMarker {
			out = append(out, v.VersionID)
		}
	}
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	return out, nil
}

// Ping implements Store: the bucket answers a HEAD.
func (s *S3) Ping(ctx context.Context) error {
	ctx2, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	ok, err := s.core.BucketExists(ctx2, s.cfg.Bucket)
	if err != nil {
		return s.m.observe("ping", s.wrap(ctx, "ping", "", err))
	}
	if !ok {
		return s.m.observe("ping", fmt.Errorf("store s3: ping: bucket %q does not exist", s.cfg.Bucket))
	}
	return nil
}

// LockEnabled reports whether the bucket has object lock enabled, without
// which SetHold fails. Check it at startup and warn.
func (s *S3) LockEnabled(ctx context.Context) (bool, error) {
	ctx2, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	status, _, _, _, err := s.core.GetObjectLockConfig(ctx2, s.cfg.Bucket)
	if err != nil {
		if r := minio.ToErrorResponse(err); r.Code == "ObjectLockConfigurationNotFoundError" || r.Code == "NoSuchObjectLockConfiguration" {
			return false, nil
		}
		return false, s.wrap(ctx, "object lock", "", err)
	}
	return status == "Enabled", nil
}

// wrap adds context to an error from the service, maps it to a sentinel
// and removes credentials from its text. ctx is the caller's context: if it
// ended, that is the cause, not the store.
func (s *S3) wrap(ctx context.Context, op, key string, err error) error {
	var sentinel error
	switch {
	case errors.Is(err, ErrIntegrity), errors.Is(err, ErrNotFound), errors.Is(err, ErrHeld),
		errors.Is(err, ErrInvalidKey), errors.Is(err, ErrInvalidRange):
		// already classified
	case ctx.Err() != nil:
		err = ctx.Err()
	default:
		sentinel = classify(err)
	}
	var out error
	if sentinel != nil {
		out = fmt.Errorf("store s3: %s %q: %w: %w", op, key, sentinel, err)
	} else {
		out = fmt.Errorf("store s3: %s %q: %w", op, key, err)
	}
	return s.redactErr(out)
}

// classify maps a minio-go error to a sentinel, or nil.
func classify(err error) error {
	if r := minio.ToErrorResponse(err); r.Code != "" || r.StatusCode != 0 {
		switch r.Code {
		case "NoSuchKey", "NoSuchVersion":
			return ErrNotFound
		case "InvalidRange":
			return ErrInvalidRange
		case "BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch", "InvalidChecksum":
			return ErrIntegrity
		case "SlowDown", "SlowDownRead", "SlowDownWrite", "ServiceUnavailable", "InternalError",
			"RequestTimeout", "XMinioServerNotInitialized", "XMinioStorageFull":
			return ErrUnavailable
		}
		if r.StatusCode == http.StatusNotFound && r.Code != "NoSuchBucket" && r.Code != "NoSuchUpload" {
			return ErrNotFound
		}
		if r.StatusCode >= 500 {
			return ErrUnavailable
		}
		if r.Code != "" {
			return nil
		}
	}
	var netErr net.Error
	var urlErr *url.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr), errors.As(err, &urlErr),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return ErrUnavailable
	}
	return nil
}

// redactErr replaces any credential in err's text. The result keeps the
// sentinels err wraps but not the rest of its chain.
func (s *S3) redactErr(err error) error {
	msg := err.Error()
	clean := s.redact.Replace(msg)
	if clean == msg {
		return err
	}
	r := &redactedError{msg: clean}
	for _, sentinel := range []error{ErrNotFound, ErrHeld, ErrUnavailable, ErrIntegrity, ErrInvalidKey, ErrInvalidRange, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, sentinel) {
			r.sentinels = append(r.sentinels, sentinel)
		}
	}
	return r
}

type redactedError struct {
	msg       string
	sentinels []error
}

func (e *redactedError) Error() string   { return e.msg }
func (e *redactedError) Unwrap() []error { return e.sentinels }
