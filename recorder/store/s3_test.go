package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kuzet/kuzet/internal/testenv"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// s3Config is the store configuration for a test MinIO: parts of 5 MiB
// above 5 MiB, short timeouts so outages are detected quickly.
func s3Config(m *testenv.MinIO) S3Config {
	return S3Config{
		Endpoint: m.Endpoint, Bucket: m.Bucket,
		AccessKey: m.AccessKey, SecretKey: m.SecretKey,
		MultipartThreshold: 5 << 20,
		RequestTimeout:     5 * time.Second,
		MaxAttempts:        2,
	}
}

func openS3(t *testing.T, cfg S3Config, m *Metrics) *S3 {
	t.Helper()
	s, err := NewS3(cfg, nil, m)
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawClient is a minio-go client with the MinIO root credentials, acting
// as the storage administrator. Its idle connections are closed at cleanup.
func rawClient(t *testing.T, m *testenv.MinIO) *minio.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := minio.New(m.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(m.AccessKey, m.SecretKey, ""),
		Transport: tr,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestS3Conformance(t *testing.T) {
	m := testenv.StartMinIO(t)
	testConformance(t, func(t *testing.T, metrics *Metrics) Store {
		return openS3(t, s3Config(m), metrics)
	})
}

// TestS3Checksums checks that a 12 MiB object above the 5 MiB threshold
// goes up in three parts with SHA-256 checksums the service verified
// (composite checksum "<sha256 of part sums>-3"), and that a failed
// multipart upload leaves no incomplete upload behind.
func TestS3Checksums(t *testing.T) {
	m := testenv.StartMinIO(t)
	s := openS3(t, s3Config(m), nil)
	raw := rawClient(t, m)
	data := randomBytes(t, 12<<20)
	key := "F16/cam/2026/11/21/15/20261121T152200.000Z-1-000001.mp4"
	mustPut(t, s, key, data)

	st, err := raw.StatObject(t.Context(), m.Bucket, key, minio.StatObjectOptions{Checksum: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(st.ChecksumSHA256, "-3") {
		t.Fatalf("stored checksum %q (mode %q), want a composite SHA-256 of 3 parts", st.ChecksumSHA256, st.ChecksumMode)
	}
	var partSums []byte
	for off := 0; off < len(data); off += 5 << 20 {
		ps := sha256.Sum256(data[off:min(off+5<<20, len(data))])
		partSums = append(partSums, ps[:]...)
	}
	composite := sha256.Sum256(partSums)
	if want := fmt.Sprintf("%s-3", b64(composite[:])); st.ChecksumSHA256 != want {
		t.Fatalf("stored checksum %q, want %q", st.ChecksumSHA256, want)
	}
	if st.ContentType != "video/mp4" {
		t.Errorf("content type %q, want video/mp4", st.ContentType)
	}

	// A single-part object carries the whole-object SHA-256.
	small := randomBytes(t, 1000)
	mustPut(t, s, key+".small", small)
	st, err = raw.StatObject(t.Context(), m.Bucket, key+".small", minio.StatObjectOptions{Checksum: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(small); st.ChecksumSHA256 != b64(sum[:]) {
		t.Fatalf("single-part checksum %q, want %q", st.ChecksumSHA256, b64(sum[:]))
	}

	// A wrong SHA-256 on a single-part upload is refused by the service
	// itself (it checks the x-amz-checksum-sha256 header), not only here.
	bad := sha256.Sum256(small)
	bad[0] ^= 1
	_, err = s.Put(t.Context(), key+".small-bad", bytes.NewReader(small), int64(len(small)), bad)
	var resp minio.ErrorResponse
	if !errors.Is(err, ErrIntegrity) || !errors.As(err, &resp) || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("Put with wrong SHA-256: %v (service answer %+v), want ErrIntegrity from a 400", err, resp)
	}
	t.Logf("service refused wrong SHA-256: %s %s", resp.Code, resp.Message)

	// Refused multipart uploads are aborted.
	sum := sha256.Sum256(data)
	sum[0] ^= 1
	if _, err := s.Put(t.Context(), key+".bad", bytes.NewReader(data), int64(len(data)), sum); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("Put: %v, want ErrIntegrity", err)
	}
	for u := range raw.ListIncompleteUploads(t.Context(), m.Bucket, "", true) {
		t.Errorf("incomplete upload left: %+v", u)
	}
}

// TestS3HoldAgainstAdmin: with object lock, a held object version cannot
// be deleted even by the storage administrator's root credentials, and
// Kuzet's Delete does not hide it behind a delete marker.
func TestS3HoldAgainstAdmin(t *testing.T) {
	m := testenv.StartMinIO(t)
	s := openS3(t, s3Config(m), nil)
	raw := rawClient(t, m)
	ctx := t.Context()
	if ok, err := s.LockEnabled(ctx); err != nil || !ok {
		t.Fatalf("LockEnabled = %v, %v", ok, err)
	}
	key := "F27/cam/2026/11/21/15/evidence.mp4"
	data := randomBytes(t, 2048)
	info := mustPut(t, s, key, data)
	if info.Version == "" {
		t.Fatal("Put on a versioned bucket returned no version")
	}
	if err := s.SetHold(ctx, key, true); err != nil {
		t.Fatal(err)
	}
	err := raw.RemoveObject(ctx, m.Bucket, key, minio.RemoveObjectOptions{VersionID: info.Version, GovernanceBypass: true})
	if err == nil {
		t.Fatal("root credentials deleted a held object version")
	}
	t.Logf("administrator delete of held version refused: %v", err)
	if err := s.Delete(ctx, key); !errors.Is(err, ErrHeld) {
		t.Fatalf("Delete: %v, want ErrHeld", err)
	}
	// Nothing changed: the version is still current and readable.
	st, err := s.Stat(ctx, key)
	if err != nil || st.Version != info.Version || st.SHA256 != sha256.Sum256(data) {
		t.Fatalf("Stat after refused deletes = %+v, %v", st, err)
	}
	// A plain delete (no version) by the administrator only puts a delete
	// marker on top: the held version stays, Kuzet still sees the hold and
	// can release it and delete.
	if err := raw.RemoveObject(ctx, m.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
		t.Fatalf("plain delete: %v", err)
	}
	if _, err := raw.StatObject(ctx, m.Bucket, key, minio.StatObjectOptions{VersionID: info.Version}); err != nil {
		t.Fatalf("held version gone after a plain delete: %v", err)
	}
	if _, err := s.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat behind a delete marker: %v, want ErrNotFound", err)
	}
	if held, err := s.Held(ctx, key); err != nil || !held {
		t.Fatalf("Held behind a delete marker = %v, %v", held, err)
	}
	if err := s.Delete(ctx, key); !errors.Is(err, ErrHeld) {
		t.Fatalf("Delete behind a delete marker: %v, want ErrHeld", err)
	}
	if err := s.SetHold(ctx, key, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Fatalf("Delete after release: %v", err)
	}
	// Delete removed the version itself, not just hid it.
	for oi := range raw.ListObjectsIter(ctx, m.Bucket, minio.ListObjectsOptions{Prefix: key, WithVersions: true}) {
		if oi.Err != nil {
			t.Fatal(oi.Err)
		}
		t.Errorf("left after Delete: version %q delete marker %v", oi.VersionID, oi.IsDeleteMarker)
	}
}

// TestS3Outage stops MinIO: every operation must fail with ErrUnavailable
// within a bound, and work again once MinIO is back.
func TestS3Outage(t *testing.T) {
	m := testenv.StartMinIO(t)
	cfg := s3Config(m)
	cfg.RequestTimeout = 2 * time.Second
	s := openS3(t, cfg, nil)
	key := "F16/cam/2026/11/21/15/seg.mp4"
	data := randomBytes(t, 100_000)
	mustPut(t, s, key, data)

	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	const bound = 5 * time.Second
	ops := storeOps(s, key)
	for _, op := range ops {
		start := time.Now()
		err := op.fn(t.Context())
		took := time.Since(start)
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s while MinIO is down: %v, want ErrUnavailable", op.name, err)
		}
		if took > bound {
			t.Errorf("%s took %v while MinIO is down, want under %v", op.name, took, bound)
		}
		t.Logf("%s down: %v in %v", op.name, errors.Is(err, ErrUnavailable), took.Round(time.Millisecond))
	}

	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		if err := op.fn(t.Context()); err != nil {
			t.Errorf("%s after MinIO restarted: %v", op.name, err)
		}
	}
}

type namedOp struct {
	name string
	fn   func(context.Context) error
}

// storeOps is one of each operation on key, which must exist.
func storeOps(s Store, key string) []namedOp {
	data := []byte("0123456789")
	return []namedOp{
		{"Ping", s.Ping},
		{"Put", func(ctx context.Context) error {
			_, err := s.Put(ctx, key+".new", bytes.NewReader(data), int64(len(data)), sha256.Sum256(data))
			return err
		}},
		{"Get", func(ctx context.Context) error {
			rc, _, err := s.Get(ctx, key)
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				rc.Close()
			}
			return err
		}},
		{"GetRange", func(ctx context.Context) error {
			rc, err := s.GetRange(ctx, key, 10, 10)
			if err == nil {
				rc.Close()
			}
			return err
		}},
		{"Stat", func(ctx context.Context) error { _, err := s.Stat(ctx, key); return err }},
		{"List", func(ctx context.Context) error {
			for _, err := range s.List(ctx, "F16/") {
				if err != nil {
					return err
				}
			}
			return nil
		}},
		{"SetHold", func(ctx context.Context) error { return s.SetHold(ctx, key, false) }},
		{"Held", func(ctx context.Context) error { _, err := s.Held(ctx, key); return err }},
		{"Delete", func(ctx context.Context) error { return s.Delete(ctx, key+".new") }},
	}
}

// TestS3HungServer: a service that accepts connections and never answers
// turns into ErrUnavailable after RequestTimeout, not a hang.
func TestS3HungServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never read or answered
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	s := openS3(t, S3Config{
		Endpoint: ln.Addr().String(), Bucket: "bucket", AccessKey: "kuzet", SecretKey: "hung-secret",
		RequestTimeout: 300 * time.Millisecond, MaxAttempts: 1,
	}, nil)
	for _, op := range storeOps(s, "a/b") {
		start := time.Now()
		err := op.fn(t.Context())
		took := time.Since(start)
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s against a hung server: %v, want ErrUnavailable", op.name, err)
		}
		if took > 3*time.Second {
			t.Errorf("%s against a hung server took %v", op.name, took)
		}
	}
}

// TestS3Credentials: credentials never show in errors.
func TestS3Credentials(t *testing.T) {
	m := testenv.StartMinIO(t)
	cfg := s3Config(m)
	cfg.AccessKey, cfg.SecretKey = "kuzet-wrong-access", "kuzet-wrong-secret-0123"
	s := openS3(t, cfg, nil)
	data := []byte("x")
	_, perr := s.Put(t.Context(), "a/b", bytes.NewReader(data), 1, sha256.Sum256(data))
	_, serr := s.Stat(t.Context(), "a/b")
	for _, err := range []error{perr, serr, s.Ping(t.Context())} {
		if err == nil {
			t.Fatal("operation with wrong credentials succeeded")
		}
		if msg := err.Error(); strings.Contains(msg, cfg.SecretKey) || strings.Contains(msg, cfg.AccessKey) {
			t.Errorf("error shows credentials: %s", msg)
		}
	}

	// An error whose text carries a credential is redacted but keeps its
	// sentinel.
	err := s.wrap(t.Context(), "put", "k", fmt.Errorf("dial %s:%s@host: %w", cfg.AccessKey, cfg.SecretKey, syscall.ECONNREFUSED))
	if msg := err.Error(); strings.Contains(msg, cfg.SecretKey) || strings.Contains(msg, cfg.AccessKey) || !strings.Contains(msg, "[REDACTED]") {
		t.Errorf("not redacted: %s", msg)
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("redacted error lost its sentinel: %v", err)
	}
}

func TestNewS3Config(t *testing.T) {
	tests := []struct {
		name string
		cfg  S3Config
	}{
		{"no endpoint", S3Config{Bucket: "bucket"}},
		{"scheme in endpoint", S3Config{Endpoint: "http://h:9000", Bucket: "bucket"}},
		{"no bucket", S3Config{Endpoint: "h:9000"}},
		{"bad bucket name", S3Config{Endpoint: "h:9000", Bucket: "b"}},
		{"threshold below 5 MiB", S3Config{Endpoint: "h:9000", Bucket: "bucket", MultipartThreshold: 1 << 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := NewS3(tt.cfg, nil, nil); err == nil {
				s.Close()
				t.Fatalf("NewS3(%+v) succeeded", tt.cfg)
			}
		})
	}
	s, err := NewS3(S3Config{Endpoint: "h:9000", Bucket: "bucket"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.cfg.MultipartThreshold != 64<<20 || s.cfg.Region != "us-east-1" || s.cfg.RequestTimeout != 30*time.Second ||
		s.cfg.MinUploadRate != 1<<20 || s.cfg.MaxAttempts != 3 {
		t.Fatalf("defaults not filled: %+v", s.cfg)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
