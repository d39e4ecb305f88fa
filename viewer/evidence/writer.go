package evidence

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
)

// Member attributes Writer gives every member and Verify insists on.
const (
	creatorVersion = 3<<8 | 20              // made on Unix, ZIP 2.0
	externalAttrs  = uint32(0o100444) << 16 // regular file, r--r--r--
	dataDescFlag   = 0x0008                 // sizes and CRC follow the data
	zipVersion20   = 20                     // version needed: stored, ZIP 2.0
	zipVersion45   = 45                     // version needed: ZIP64
	uint32max      = uint64(1<<32 - 1)      // ZIP's "see ZIP64" value
	uint16max      = 1<<16 - 1              // likewise for counts
)

// Writer writes an evidence package member by member, never holding a
// member in memory.
type Writer struct {
	zw       *zip.Writer
	modified time.Time
	added    []File
	names    map[string]bool
	done     bool
}

// NewWriter starts a package on w; modified is the time stamped on every
// member (the export time).
func NewWriter(w io.Writer, modified time.Time) *Writer {
	return &Writer{zw: zip.NewWriter(w), modified: modified.UTC().Truncate(time.Second), names: map[string]bool{}}
}

// Add writes a member: fill writes its bytes, which are hashed on the way.
// It returns the member's File with Name, Type, Size and SHA256 set; the
// caller fills the rest and lists it in the manifest given to Finish.
func (w *Writer) Add(name, typ string, fill func(io.Writer) error) (File, error) {
	if w.done {
		return File{}, errors.New("evidence: package already finished")
	}
	if err := ValidName(name); err != nil {
		return File{}, fmt.Errorf("evidence: %w", err)
	}
	if name == ManifestName || name == SignatureName || name == ReadmeName || w.names[name] {
		return File{}, fmt.Errorf("evidence: member name %q is reserved or taken", name)
	}
	f, err := w.add(name, typ, fill)
	if err != nil {
		return File{}, err
	}
	w.added = append(w.added, f)
	return f, nil
}

func (w *Writer) add(name, typ string, fill func(io.Writer) error) (File, error) {
	fw, err := w.zw.CreateHeader(&zip.FileHeader{
		Name: name, Method: zip.Store, Modified: w.modified,
		CreatorVersion: creatorVersion &^ 0xff, ExternalAttrs: externalAttrs,
	})
	if err != nil {
		return File{}, fmt.Errorf("evidence: %s: %w", name, err)
	}
	hw := &hashingWriter{w: fw, h: sha256.New()}
	if err := fill(hw); err != nil {
		return File{}, fmt.Errorf("evidence: %s: %w", name, err)
	}
	w.names[name] = true
	return File{Name: name, Type: typ, Size: hw.n, SHA256: hex.EncodeToString(hw.h.Sum(nil))}, nil
}

// Finish writes README.txt, manifest.json (m, with README.txt appended to
// its files and the signing key named) and manifest.sig, and ends the
// archive. m.Files must list every member added, with the size and hash
// Add returned.
func (w *Writer) Finish(m *Manifest, key ed25519.PrivateKey) error {
	if w.done {
		return errors.New("evidence: package already finished")
	}
	w.done = true
	if len(key) != ed25519.PrivateKeySize {
		return errors.New("evidence: no signing key")
	}
	listed := map[string]File{}
	for _, f := range m.Files {
		listed[f.Name] = f
	}
	if len(listed) != len(w.added) || len(m.Files) != len(w.added) {
		return fmt.Errorf("evidence: the manifest lists %d files, %d were added", len(m.Files), len(w.added))
	}
	for _, a := range w.added {
		f, ok := listed[a.Name]
		if !ok || f.Size != a.Size || f.SHA256 != a.SHA256 || f.Type != a.Type {
			return fmt.Errorf("evidence: the manifest's entry for %s does not match what was written", a.Name)
		}
	}
	m.Format = Format
	m.SigningKey = KeyInfo{Algorithm: "Ed25519", Fingerprint: Fingerprint(key.Public().(ed25519.PublicKey))}
	readme := Readme(m)
	rf, err := w.add(ReadmeName, TypeText, func(out io.Writer) error {
		_, err := out.Write(readme)
		return err
	})
	if err != nil {
		return err
	}
	m.Files = append(m.Files, rf)
	if err := m.check(); err != nil {
		return fmt.Errorf("evidence: the manifest would not verify: %w", err)
	}
	body, err := m.Marshal()
	if err != nil {
		return err
	}
	if _, err := w.add(ManifestName, "", func(out io.Writer) error {
		_, err := out.Write(body)
		return err
	}); err != nil {
		return err
	}
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(key, body)) + "\n"
	if _, err := w.add(SignatureName, "", func(out io.Writer) error {
		_, err := io.WriteString(out, sig)
		return err
	}); err != nil {
		return err
	}
	if err := w.zw.Close(); err != nil {
		return fmt.Errorf("evidence: finish archive: %w", err)
	}
	return nil
}

type hashingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (hw *hashingWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	return n, err
}

// Readme is the README.txt of a package with manifest m: what it holds and
// how to check it, with and without Kuzet.
func Readme(m *Manifest) []byte {
	var b bytes.Buffer
	ts := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }
	fmt.Fprintf(&b, "KUZET EVIDENCE PACKAGE %s\r\n\r\n", m.ExportID)
	if m.Incident != nil {
		fmt.Fprintf(&b, "Incident %d (%s, %s) at facility %s, from %s.\r\n", m.Incident.ID, m.Incident.Type, m.Incident.Severity,
			m.Incident.Facility, ts(m.Incident.Start))
	}
	fmt.Fprintf(&b, "Footage from %s to %s of %d camera(s), exported %s by %s.\r\n",
		ts(m.From), ts(m.To), len(m.Cameras), ts(m.ExportedAt), m.Exporter.Username)
	fmt.Fprintf(&b, "Signing key: %s %s\r\n\r\n", m.SigningKey.Algorithm, m.SigningKey.Fingerprint)
	b.WriteString(`WHAT IS IN IT

- one MP4 file per camera: the recorded video exactly as the camera sent it
  (remuxed into MP4, never re-encoded); playable with VLC, ffplay or a
  browser. Periods without footage are listed in manifest.json under "gaps",
  each with its reason.
- manifest.json: the incident, cameras, UTC time ranges, the SHA-256 and size
  of every file, the recorded segments the files were made from with the
  SHA-256 and hash-chain values computed when they were recorded, who
  exported the package, why and when.
- manifest.sig: the Ed25519 signature of manifest.json (base64).

HOW TO VERIFY IT

Get the exporting organisation's public key (a PEM file) through a channel
other than this package, and check that its fingerprint is the one above.
Keep the ZIP file exactly as received.

With Kuzet:

    kuzet verify PACKAGE.zip --pubkey PUBLIC_KEY.pem

It prints OK and exits with status 0 when the signature, every file's size and
SHA-256 and the archive's structure are intact; otherwise it names the file
that does not match and exits with status 1. It needs no network access.

Without Kuzet (OpenSSL 3 and coreutils), after unzipping:

    base64 -d manifest.sig > manifest.sig.bin
    openssl pkeyutl -verify -pubin -inkey PUBLIC_KEY.pem -rawin \
        -in manifest.json -sigfile manifest.sig.bin
    sha256sum FILE     (compare with "sha256" of FILE in manifest.json)

The signature covers manifest.json only; manifest.json covers every other
file through its SHA-256. A file whose hash differs, a file that is not
listed, or a listed file that is missing means the package was altered.
`)
	b.WriteString("\r\nFILES\r\n\r\n")
	for _, f := range m.Files {
		fmt.Fprintf(&b, "%s  %d bytes  sha256 %s\r\n", f.Name, f.Size, f.SHA256)
	}
	return bytes.ReplaceAll(bytes.ReplaceAll(b.Bytes(), []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
}
