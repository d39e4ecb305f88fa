package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration file. Every field documents its default;
// deploy/kuzet.example.yaml lists the same keys and a test keeps the two in step.
type Config struct {
	Log      Log      `yaml:"log"`
	HTTP     HTTP     `yaml:"http"`
	Database Database `yaml:"database"`
	Store    Store    `yaml:"store"`
	Ingest   Ingest   `yaml:"ingest"`
	Recorder Recorder `yaml:"recorder"`
	WebRTC   WebRTC   `yaml:"webrtc"`
	Alerts   Alerts   `yaml:"alerts"`
	Playback Playback `yaml:"playback"`
	Export   Export   `yaml:"export"`
	Auth     Auth     `yaml:"auth"`
	Incident Incident `yaml:"incident"`
	// SecretKeyFile is a file holding the 32-byte key (hex or base64) that
	// encrypts camera credentials at rest. KUZET_SECRET_KEY, when set, is the
	// key itself and wins. Default: none (cameras with credentials refused).
	SecretKeyFile string `yaml:"secret_key_file"`
	// Cameras are cameras configured statically, in addition to the registry.
	// Default: none.
	Cameras []Camera `yaml:"cameras"`
}

// Log configures the structured log.
type Log struct {
	// Level is debug, info, warn or error. Default: info.
	Level string `yaml:"level"`
	// Format is text or json. Default: text.
	Format string `yaml:"format"`
}

// HTTP configures the API, UI, signalling and operational endpoints.
type HTTP struct {
	// Listen is the host:port to listen on. Default: 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// TLSCert and TLSKey are PEM files; both set turns on HTTPS. Default: none.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// ShutdownTimeout bounds the graceful shutdown. Default: 10s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// Database configures PostgreSQL.
type Database struct {
	// URL is the PostgreSQL connection URL (postgres://user@host:port/db).
	// Required by serve; KUZET_DATABASE_URL overrides it.
	URL URL `yaml:"url"`
	// MaxConns is the size of the connection pool. Default: 16.
	MaxConns int `yaml:"max_conns"`
	// ConnectTimeout bounds the first connection at start. Default: 5s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
}

// Store configures the object store for segments.
type Store struct {
	// Kind is fs (a local directory) or s3. Default: fs.
	Kind string `yaml:"kind"`
	FS   FS     `yaml:"fs"`
	S3   S3     `yaml:"s3"`
}

// FS is the local-directory object store.
type FS struct {
	// Dir is the directory that holds the objects. Default: ./var/store.
	Dir string `yaml:"dir"`
}

// S3 is an S3-compatible object store.
type S3 struct {
	// Endpoint is host:port of the S3 service. Required for kind s3.
	Endpoint string `yaml:"endpoint"`
	// Bucket holds the segments. Required for kind s3.
	Bucket string `yaml:"bucket"`
	// Region of the bucket. Default: us-east-1.
	Region string `yaml:"region"`
	// AccessKey and SecretKey are the credentials; KUZET_STORE_S3_SECRET_KEY
	// is the usual way to pass the secret. Default: none.
	AccessKey string `yaml:"access_key"`
	SecretKey string `yaml:"secret_key"`
	// TLS uses HTTPS to the endpoint. Default: true.
	TLS bool `yaml:"tls"`
	// MultipartThreshold is the object size above which uploads are
	// multipart. Default: 64MiB.
	MultipartThreshold Bytes `yaml:"multipart_threshold"`
}

// Ingest configures how cameras are pulled.
type Ingest struct {
	// Transport is tcp, udp or auto. Default: tcp.
	Transport string `yaml:"transport"`
	// ReadTimeout marks a camera offline when no data arrives for this long.
	// Default: 10s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// BackoffMin and BackoffMax bound the jittered reconnect backoff.
	// Defaults: 1s and 30s.
	BackoffMin time.Duration `yaml:"backoff_min"`
	BackoffMax time.Duration `yaml:"backoff_max"`
	// MaxAccessUnit is the largest access unit accepted from a camera; a
	// larger one is dropped and counted. Default: 4MiB.
	MaxAccessUnit Bytes `yaml:"max_access_unit"`
	// GOPCache bounds the per-camera cache of the latest GOP. Default: 8MiB.
	GOPCache Bytes `yaml:"gop_cache"`
	// LiveQueue and RecorderQueue are the per-reader queue capacities in
	// access units. Defaults: 128 and 1024.
	LiveQueue     int `yaml:"live_queue"`
	RecorderQueue int `yaml:"recorder_queue"`
}

// Recorder configures segmenting, the spool and retention.
type Recorder struct {
	// Enabled turns recording on. Default: true.
	Enabled bool `yaml:"enabled"`
	// SpoolDir is the local spool directory. Default: ./var/spool.
	SpoolDir string `yaml:"spool_dir"`
	// SpoolQuota is the most the spool may hold. Default: 10GiB.
	SpoolQuota Bytes `yaml:"spool_quota"`
	// SegmentDuration is the target segment length; segments are cut on the
	// first keyframe after it. Default: 60s.
	SegmentDuration time.Duration `yaml:"segment_duration"`
	// FragmentDuration is the longest fMP4 fragment. Default: 1s.
	FragmentDuration time.Duration `yaml:"fragment_duration"`
	// SyncInterval is the longest time between fdatasyncs. Default: 2s.
	SyncInterval time.Duration `yaml:"sync_interval"`
	// RetentionDays is the default retention per camera. Default: 31.
	RetentionDays int `yaml:"retention_days"`
}

// WebRTC configures live viewing.
type WebRTC struct {
	// UDPListen is the one UDP address all WebRTC sessions share (UDP mux).
	// Default: :8189.
	UDPListen string `yaml:"udp_listen"`
	// TCPListen is the ICE-TCP address, for networks that block UDP.
	// Default: :8189. Empty with disable_tcp turns ICE-TCP off.
	TCPListen  string `yaml:"tcp_listen"`
	DisableTCP bool   `yaml:"disable_tcp"`
	// PublicIPs are the addresses of a 1:1 NAT in front of the server,
	// advertised instead of the local ones. Default: none.
	PublicIPs []string `yaml:"public_ips"`
	// IncludeLoopback advertises loopback candidates (a browser on the
	// server itself). Default: false.
	IncludeLoopback bool `yaml:"include_loopback"`
	// ICEServers are STUN/TURN servers. Default: none.
	ICEServers []ICEServer `yaml:"ice_servers"`
	// MaxSessions bounds live sessions of this process. Default: 256.
	MaxSessions int `yaml:"max_sessions"`
	// ConnectTimeout closes a session not connected this long after the
	// offer. Default: 15s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
}

// Alerts configures detectors, escalation and notifications.
type Alerts struct {
	// Node names this process in system alerts (spool, store, database);
	// it must differ between nodes. Default: local.
	Node string `yaml:"node"`
	// OfflineAfter raises camera_offline after this long without media.
	// Default: 10s.
	OfflineAfter time.Duration `yaml:"offline_after"`
	// LowFPSFor raises low_fps when fps stays below half its nominal rate
	// this long. Default: 30s.
	LowFPSFor time.Duration `yaml:"low_fps_for"`
	// ClockOffsetMax raises clock_offset above this camera clock error.
	// Default: 2s.
	ClockOffsetMax time.Duration `yaml:"clock_offset_max"`
	// RecordingLagMax raises recording_lag above this upload backlog age.
	// Default: 2m.
	RecordingLagMax time.Duration `yaml:"recording_lag_max"`
	// EscalateAfter escalates an alert not acknowledged this long. Default: 5m.
	EscalateAfter time.Duration `yaml:"escalate_after"`
	// EventRetention keeps resolved alerts and their events this long.
	// Default: 720h (30 days).
	EventRetention time.Duration `yaml:"event_retention"`
	// WebhooksFile is a YAML list of webhooks (url, secret, facilities,
	// min_severity); it holds HMAC secrets, keep it mode 0600. Default: none.
	WebhooksFile string `yaml:"webhooks_file"`
}

// Playback configures recorded playback.
type Playback struct {
	// MaxSessions bounds recorded playback sessions of this process.
	// Default: 32.
	MaxSessions int `yaml:"max_sessions"`
}

// Export configures signed evidence export.
type Export struct {
	// SigningKeyFile is the Ed25519 private key (PKCS #8 PEM, mode 0600,
	// made by kuzet export-key) that signs evidence packages. Default:
	// none, export is off.
	SigningKeyFile string `yaml:"signing_key_file"`
	// Dir holds finished packages until they expire. Default: ./var/exports.
	Dir string `yaml:"dir"`
	// MaxRunning exports run at once; MaxJobs are kept (queued, running or
	// finished). Defaults: 2 and 64.
	MaxRunning int `yaml:"max_running"`
	MaxJobs    int `yaml:"max_jobs"`
	// Keep is how long a finished package stays downloadable. Default: 24h.
	Keep time.Duration `yaml:"keep"`
}

// ICEServer is a STUN or TURN server.
type ICEServer struct {
	// URLs like stun:stun.example.org:3478 or turn:turn.example.org:3478?transport=tcp.
	URLs []string `yaml:"urls"`
	// Username and Credential authenticate to a TURN server.
	Username   string `yaml:"username"`
	Credential string `yaml:"credential"`
}

// Auth configures sessions and logins.
type Auth struct {
	// SessionIdle ends a session unused for this long. Default: 15m.
	SessionIdle time.Duration `yaml:"session_idle"`
	// SessionMax ends a session this long after login. Default: 12h.
	SessionMax time.Duration `yaml:"session_max"`
	// LoginMaxFailures failed logins of one user within LoginLockout lock
	// that user for LoginLockout. Default: 5.
	LoginMaxFailures int `yaml:"login_max_failures"`
	// LoginLockout is the failure window and the lockout. Default: 15m.
	LoginLockout time.Duration `yaml:"login_lockout"`
	// SecureCookies marks session cookies Secure even over plain HTTP
	// (behind a TLS-terminating proxy). Default: false (Secure under TLS).
	SecureCookies bool `yaml:"secure_cookies"`
	// TrustedProxies are CIDR prefixes of reverse proxies whose
	// X-Forwarded-For is believed. Default: none.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// Incident configures the footage tied to incidents.
type Incident struct {
	// FootageBefore and FootageAfter widen an incident's time into the
	// default footage window. Defaults: 15m and 15m.
	FootageBefore time.Duration `yaml:"footage_before"`
	FootageAfter  time.Duration `yaml:"footage_after"`
	// HoldBefore and HoldAfter widen a serious incident's time into the
	// legal hold placed on its cameras. Defaults: 2h and 2h.
	HoldBefore time.Duration `yaml:"hold_before"`
	HoldAfter  time.Duration `yaml:"hold_after"`
}

// Camera is a statically configured camera.
type Camera struct {
	// ID identifies the camera (letters, digits, - and _). Required.
	ID string `yaml:"id"`
	// Facility is the facility code the camera belongs to. Required.
	Facility string `yaml:"facility"`
	// Name is shown to people. Default: the ID.
	Name string `yaml:"name"`
	// URL is the rtsp:// or rtsps:// URL, without credentials. Required.
	URL URL `yaml:"url"`
	// Username and Password authenticate to the camera. Default: none.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Enabled pulls the camera. Default: true.
	Enabled bool `yaml:"enabled"`
}

func (c *Camera) setDefaults() { c.Enabled = true }

// Default returns the configuration with every default filled in.
func Default() Config {
	return Config{
		Log:      Log{Level: "info", Format: "text"},
		HTTP:     HTTP{Listen: "127.0.0.1:8080", ShutdownTimeout: 10 * time.Second},
		Database: Database{MaxConns: 16, ConnectTimeout: 5 * time.Second},
		Store: Store{
			Kind: "fs",
			FS:   FS{Dir: "./var/store"},
			S3:   S3{Region: "us-east-1", TLS: true, MultipartThreshold: 64 << 20},
		},
		Ingest: Ingest{
			Transport: "tcp", ReadTimeout: 10 * time.Second,
			BackoffMin: time.Second, BackoffMax: 30 * time.Second,
			MaxAccessUnit: 4 << 20, GOPCache: 8 << 20,
			LiveQueue: 128, RecorderQueue: 1024,
		},
		Recorder: Recorder{
			Enabled: true, SpoolDir: "./var/spool", SpoolQuota: 10 << 30,
			SegmentDuration: 60 * time.Second, FragmentDuration: time.Second,
			SyncInterval: 2 * time.Second, RetentionDays: 31,
		},
		WebRTC: WebRTC{UDPListen: ":8189", TCPListen: ":8189", MaxSessions: 256, ConnectTimeout: 15 * time.Second},
		Alerts: Alerts{
			Node: "local", OfflineAfter: 10 * time.Second, LowFPSFor: 30 * time.Second,
			ClockOffsetMax: 2 * time.Second, RecordingLagMax: 2 * time.Minute,
			EscalateAfter: 5 * time.Minute, EventRetention: 720 * time.Hour,
		},
		Playback: Playback{MaxSessions: 32},
		Export:   Export{Dir: "./var/exports", MaxRunning: 2, MaxJobs: 64, Keep: 24 * time.Hour},
		Auth: Auth{
			SessionIdle: 15 * time.Minute, SessionMax: 12 * time.Hour,
			LoginMaxFailures: 5, LoginLockout: 15 * time.Minute,
		},
		Incident: Incident{
			FootageBefore: 15 * time.Minute, FootageAfter: 15 * time.Minute,
			HoldBefore: 2 * time.Hour, HoldAfter: 2 * time.Hour,
		},
	}
}

// Load reads the YAML file at path (none when path is ""), applies the
// KUZET_* variables of environ over it, and validates the result.
func Load(path string, environ []string) (Config, error) {
	c := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
		if err := Parse(b, &c); err != nil {
			return c, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := ApplyEnv(&c, environ); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// Parse decodes YAML into c over the values already there.
func Parse(b []byte, c *Config) error {
	var n yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&n); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("not valid YAML: %w", err)
	}
	return decodeNode(&n, reflect.ValueOf(c).Elem(), "")
}

// EnvName returns the environment variable that overrides a dotted key:
// "database.url" → KUZET_DATABASE_URL.
func EnvName(key string) string {
	return "KUZET_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// envSkip are KUZET_ variables that are not configuration keys.
var envSkip = []string{"KUZET_SECRET_KEY", "KUZET_CONFIG"}

// ApplyEnv sets every scalar key whose KUZET_* variable is present in
// environ. A KUZET_ variable that names no key is refused, like an unknown
// key in the file.
func ApplyEnv(c *Config, environ []string) error {
	keys := map[string]envKey{}
	collectKeys(reflect.ValueOf(c).Elem(), "", keys)
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "KUZET_") || slices.Contains(envSkip, name) ||
			strings.HasPrefix(name, "KUZET_TEST_") || strings.HasPrefix(name, "KUZET_DEMO_") {
			continue
		}
		k, ok := keys[name]
		if !ok {
			return &FieldError{Key: strings.ToLower(strings.TrimPrefix(name, "KUZET_")), Source: name, Msg: "no such configuration key"}
		}
		if err := setScalar(k.v, val, k.path, 0, name); err != nil {
			return err
		}
	}
	return nil
}

// envKey is a scalar configuration key reachable from the environment.
type envKey struct {
	path string
	v    reflect.Value
}

func collectKeys(v reflect.Value, path string, out map[string]envKey) {
	t := v.Type()
	if t.Kind() != reflect.Struct || t == urlType {
		if t.Kind() != reflect.Slice || t.Elem().Kind() == reflect.String {
			out[EnvName(path)] = envKey{path, v}
		}
		return
	}
	for name, i := range yamlFields(t) {
		collectKeys(v.Field(i), join(path, name), out)
	}
}

// Validate checks values that parse but make no sense.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, &FieldError{Key: key, Msg: fmt.Sprintf(format, a...)})
	}
	oneOf := func(key, v string, allowed ...string) {
		if !slices.Contains(allowed, v) {
			bad(key, "%q is not one of %s", v, strings.Join(allowed, ", "))
		}
	}
	oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf("log.format", c.Log.Format, "text", "json")
	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		bad("http.listen", "%q is not host:port", c.HTTP.Listen)
	}
	if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
		bad("http.tls_cert", "tls_cert and tls_key must be set together")
	}
	if c.HTTP.ShutdownTimeout <= 0 {
		bad("http.shutdown_timeout", "must be positive")
	}
	if u := c.Database.URL; !u.IsZero() && u.Scheme != "postgres" && u.Scheme != "postgresql" {
		bad("database.url", "scheme must be postgres:// or postgresql://, got %q", u.Scheme)
	}
	if c.Database.MaxConns < 1 {
		bad("database.max_conns", "must be at least 1")
	}
	oneOf("store.kind", c.Store.Kind, "fs", "s3")
	switch c.Store.Kind {
	case "fs":
		if c.Store.FS.Dir == "" {
			bad("store.fs.dir", "required when store.kind is fs")
		}
	case "s3":
		if c.Store.S3.Endpoint == "" {
			bad("store.s3.endpoint", "required when store.kind is s3")
		} else if strings.Contains(c.Store.S3.Endpoint, "/") {
			bad("store.s3.endpoint", "%q must be host:port, without a scheme (set store.s3.tls)", c.Store.S3.Endpoint)
		}
		if c.Store.S3.Bucket == "" {
			bad("store.s3.bucket", "required when store.kind is s3")
		}
		if c.Store.S3.MultipartThreshold < 5<<20 {
			bad("store.s3.multipart_threshold", "must be at least 5MiB (the S3 minimum part size)")
		}
	}
	oneOf("ingest.transport", c.Ingest.Transport, "tcp", "udp", "auto")
	if c.Ingest.ReadTimeout < time.Second {
		bad("ingest.read_timeout", "must be at least 1s")
	}
	if c.Ingest.BackoffMin <= 0 || c.Ingest.BackoffMax < c.Ingest.BackoffMin {
		bad("ingest.backoff_max", "backoff_min must be positive and backoff_max at least backoff_min")
	}
	if c.Ingest.MaxAccessUnit < 64<<10 {
		bad("ingest.max_access_unit", "must be at least 64KiB")
	}
	if c.Ingest.LiveQueue < 8 || c.Ingest.RecorderQueue < 8 {
		bad("ingest.live_queue", "queues must hold at least 8 access units")
	}
	if c.Recorder.SegmentDuration < time.Second || c.Recorder.SegmentDuration > time.Hour {
		bad("recorder.segment_duration", "must be between 1s and 1h")
	}
	if c.Recorder.FragmentDuration <= 0 || c.Recorder.FragmentDuration > c.Recorder.SegmentDuration {
		bad("recorder.fragment_duration", "must be positive and at most segment_duration")
	}
	if c.Recorder.SyncInterval <= 0 || c.Recorder.SyncInterval > 2*time.Second {
		bad("recorder.sync_interval", "must be positive and at most 2s")
	}
	if c.Recorder.RetentionDays < 1 {
		bad("recorder.retention_days", "must be at least 1")
	}
	if c.Recorder.Enabled && c.Recorder.SpoolDir == "" {
		bad("recorder.spool_dir", "required when recording is enabled")
	}
	for _, k := range []struct{ key, v string }{{"webrtc.udp_listen", c.WebRTC.UDPListen}, {"webrtc.tcp_listen", c.WebRTC.TCPListen}} {
		if _, _, err := net.SplitHostPort(k.v); err != nil && !(k.key == "webrtc.tcp_listen" && c.WebRTC.DisableTCP) {
			bad(k.key, "%q is not host:port (the host may be empty)", k.v)
		}
	}
	for i, ip := range c.WebRTC.PublicIPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			bad(fmt.Sprintf("webrtc.public_ips[%d]", i), "%q is not an IP address", ip)
		}
	}
	for i, s := range c.WebRTC.ICEServers {
		for j, u := range s.URLs {
			if !strings.HasPrefix(u, "stun:") && !strings.HasPrefix(u, "stuns:") && !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
				bad(fmt.Sprintf("webrtc.ice_servers[%d].urls[%d]", i, j), "%q must start with stun:, stuns:, turn: or turns:", u)
			}
		}
	}
	if c.WebRTC.MaxSessions < 1 {
		bad("webrtc.max_sessions", "must be at least 1")
	}
	if c.Playback.MaxSessions < 1 {
		bad("playback.max_sessions", "must be at least 1")
	}
	if c.Export.MaxRunning < 1 || c.Export.MaxJobs < c.Export.MaxRunning {
		bad("export.max_jobs", "max_running must be at least 1 and max_jobs at least max_running")
	}
	if c.Export.Keep < time.Minute {
		bad("export.keep", "must be at least 1m")
	}
	if c.Export.SigningKeyFile != "" && c.Export.Dir == "" {
		bad("export.dir", "required when export.signing_key_file is set")
	}
	if !validID(c.Alerts.Node) {
		bad("alerts.node", "%q must be 1-64 letters, digits, - or _", c.Alerts.Node)
	}
	if c.Auth.SessionIdle < time.Minute || c.Auth.SessionMax < c.Auth.SessionIdle {
		bad("auth.session_idle", "must be at least 1m and at most session_max")
	}
	if c.Auth.LoginMaxFailures < 1 || c.Auth.LoginLockout <= 0 {
		bad("auth.login_max_failures", "login_max_failures and login_lockout must be positive")
	}
	for i, p := range c.Auth.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			bad(fmt.Sprintf("auth.trusted_proxies[%d]", i), "%q is not a CIDR prefix (e.g. 10.0.0.0/8)", p)
		}
	}
	seen := map[string]bool{}
	for i, cam := range c.Cameras {
		key := fmt.Sprintf("cameras[%d]", i)
		if !validID(cam.ID) {
			bad(key+".id", "%q must be 1-64 letters, digits, - or _", cam.ID)
		} else if seen[cam.ID] {
			bad(key+".id", "duplicate camera id %q", cam.ID)
		}
		seen[cam.ID] = true
		if !validID(cam.Facility) {
			bad(key+".facility", "%q must be 1-64 letters, digits, - or _", cam.Facility)
		}
		switch {
		case cam.URL.IsZero():
			bad(key+".url", "required")
		case cam.URL.Scheme != "rtsp" && cam.URL.Scheme != "rtsps":
			bad(key+".url", "scheme must be rtsp:// or rtsps://, got %q", cam.URL.Scheme)
		case cam.URL.User != nil:
			bad(key+".url", "put credentials in username and password, not in the URL")
		}
	}
	return errors.Join(errs...)
}

func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
