package evidence

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// Format is the manifest's format tag.
const Format = "kuzet-evidence/1"

// Member names with a fixed meaning.
const (
	ManifestName  = "manifest.json"
	SignatureName = "manifest.sig"
	ReadmeName    = "README.txt"
)

// Limits on what a manifest may hold.
const (
	maxManifestBytes = 32 << 20
	maxFiles         = 4096
	maxSegments      = 1 << 20
	maxGaps          = 1 << 18
	maxCameras       = 256
	maxText          = 20000
)

// File types in a manifest.
const (
	TypeMP4  = "video/mp4"
	TypeText = "text/plain"
)

// Manifest describes an evidence package. Times are UTC.
type Manifest struct {
	// Format is always Format.
	Format string `json:"format"`
	// ExportID identifies the export in the exporting system's audit log.
	ExportID string `json:"export_id"`
	// Incident is the incident exported, nil for an export of chosen
	// cameras and range.
	Incident *Incident `json:"incident"`
	// From and To are the range asked for.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Cameras are the cameras exported, with their source segments.
	Cameras []Camera `json:"cameras"`
	// Files are the package's members but manifest.json and manifest.sig.
	Files []File `json:"files"`
	// Gaps are the spans of the range without footage, per camera, with
	// the recorder's reason.
	Gaps []Gap `json:"gaps"`
	// Exporter is who exported, Reason why, ExportedAt when.
	Exporter   Exporter  `json:"exporter"`
	Reason     string    `json:"reason"`
	ExportedAt time.Time `json:"exported_at"`
	Software   Software  `json:"software"`
	// SigningKey names the key that signed the manifest.
	SigningKey KeyInfo `json:"signing_key"`
}

// Incident is the incident an export was made for.
type Incident struct {
	ID          int64      `json:"id"`
	Facility    string     `json:"facility"`
	Type        string     `json:"type"`
	Severity    string     `json:"severity"`
	Start       time.Time  `json:"start"`
	End         *time.Time `json:"end"`
	Description string     `json:"description"`
}

// Camera is one exported camera.
type Camera struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Facility string `json:"facility"`
	Zone     string `json:"zone"`
	// Files are the names of the camera's MP4 files, in time order.
	Files []string `json:"files"`
	// Segments are the stored segments the files were made from, as the
	// recorder indexed them when they were ingested.
	Segments []Segment `json:"segments"`
}

// Segment is a stored segment with its ingest-time hashes. SHA256 is the
// hash of the whole stored object; Chain = SHA-256(PrevChain ‖ SHA256 ‖
// len(camera) ‖ camera ‖ start µs ‖ end µs), the recorder's per-camera hash
// chain.
type Segment struct {
	ObjectKey string    `json:"object_key"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Bytes     int64     `json:"bytes"`
	SHA256    string    `json:"sha256"`
	PrevChain string    `json:"prev_chain"`
	Chain     string    `json:"chain"`
}

// File is one member of the package.
type File struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Video files: the camera, the wall-clock span of the frames they hold
	// (from the first frame's capture time to the end of the last), their
	// frame count, codec and picture size.
	Camera string     `json:"camera,omitempty"`
	From   *time.Time `json:"from,omitempty"`
	To     *time.Time `json:"to,omitempty"`
	Frames int        `json:"frames,omitempty"`
	Codec  string     `json:"codec,omitempty"`
	Width  int        `json:"width,omitempty"`
	Height int        `json:"height,omitempty"`
}

// Gap is a span without footage.
type Gap struct {
	Camera string    `json:"camera"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Reason string    `json:"reason"`
	Detail string    `json:"detail"`
}

// Exporter is who made the export.
type Exporter struct {
	UserID   int64    `json:"user_id"`
	Username string   `json:"username"`
	Roles    []string `json:"roles"`
	Client   string   `json:"client"`
}

// Software is what made the export.
type Software struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// KeyInfo names a signing key.
type KeyInfo struct {
	Algorithm string `json:"algorithm"` // "Ed25519"
	// Fingerprint is "SHA256:" and the hex SHA-256 of the raw 32-byte
	// public key.
	Fingerprint string `json:"fingerprint"`
}

// Marshal encodes m as written into packages: indented JSON with a final
// newline.
func (m *Manifest) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("evidence: manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// ErrManifest wraps every reason ParseManifest refuses a manifest.
var ErrManifest = errors.New("invalid manifest")

func badManifest(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrManifest, fmt.Sprintf(format, a...))
}

// ParseManifest decodes and checks a manifest from untrusted bytes: exactly
// one JSON object with the known fields, the right format tag, member names
// that are plain file names (no directories), unique, and never
// manifest.json or manifest.sig, hashes of 64 lower-case hex digits,
// non-negative sizes, bounded lists. It never panics.
func ParseManifest(b []byte) (*Manifest, error) {
	if len(b) > maxManifestBytes {
		return nil, badManifest("larger than %d bytes", maxManifestBytes)
	}
	if !utf8.Valid(b) {
		return nil, badManifest("not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, badManifest("%v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, badManifest("data after the JSON object")
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return &m, nil
}

func (m *Manifest) check() error {
	if m.Format != Format {
		return badManifest("format %q, want %q", m.Format, Format)
	}
	if len(m.Files) > maxFiles || len(m.Cameras) > maxCameras || len(m.Gaps) > maxGaps {
		return badManifest("too many files, cameras or gaps")
	}
	if !m.To.After(m.From) {
		return badManifest("range ends before it starts")
	}
	for _, s := range []struct{ what, v string }{{"export_id", m.ExportID}, {"reason", m.Reason},
		{"exporter", m.Exporter.Username}, {"software", m.Software.Name}} {
		if s.v == "" || len(s.v) > maxText {
			return badManifest("%s empty or too long", s.what)
		}
	}
	if m.SigningKey.Algorithm != "Ed25519" || !validFingerprint(m.SigningKey.Fingerprint) {
		return badManifest("signing key %q %q", m.SigningKey.Algorithm, m.SigningKey.Fingerprint)
	}
	names := map[string]bool{}
	for i, f := range m.Files {
		if err := ValidName(f.Name); err != nil {
			return badManifest("file %d: %v", i, err)
		}
		if f.Name == ManifestName || f.Name == SignatureName {
			return badManifest("file %d is %s", i, f.Name)
		}
		if names[f.Name] {
			return badManifest("file %s listed twice", f.Name)
		}
		names[f.Name] = true
		if f.Size < 0 {
			return badManifest("file %s: negative size", f.Name)
		}
		if !validHash(f.SHA256) {
			return badManifest("file %s: sha256 %q is not 64 lower-case hex digits", f.Name, f.SHA256)
		}
		if f.Type != TypeMP4 && f.Type != TypeText {
			return badManifest("file %s: type %q", f.Name, f.Type)
		}
	}
	segs := 0
	for _, c := range m.Cameras {
		segs += len(c.Segments)
		if segs > maxSegments {
			return badManifest("too many segments")
		}
		for _, n := range c.Files {
			if !names[n] {
				return badManifest("camera %s names file %q that is not listed", c.ID, n)
			}
		}
		for _, s := range c.Segments {
			if !validHash(s.SHA256) || !validHash(s.PrevChain) || !validHash(s.Chain) {
				return badManifest("camera %s: segment %s has a malformed hash", c.ID, s.ObjectKey)
			}
		}
	}
	return nil
}

// ValidName reports why name cannot be a member name: it must be 1-128
// bytes of letters, digits, '.', '_' and '-', not starting with '.'.
func ValidName(name string) error {
	if name == "" || len(name) > 128 || name[0] == '.' {
		return fmt.Errorf("name %q: empty, too long or starting with a dot", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("name %q: only letters, digits, '.', '_' and '-' are allowed", name)
		}
	}
	return nil
}

func validHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func validFingerprint(s string) bool {
	const p = "SHA256:"
	return len(s) == len(p)+64 && s[:len(p)] == p && validHash(s[len(p):])
}
