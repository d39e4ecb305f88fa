package evidence

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// maxSignatureBytes bounds manifest.sig.
const maxSignatureBytes = 256

// Report is what a successful verification found.
type Report struct {
	Manifest *Manifest
	// Members is the number of members checked, Bytes their total size.
	Members int
	Bytes   int64
}

// VerifyFile verifies the package at path; see Verify.
func VerifyFile(path string, pub ed25519.PublicKey) (*Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fail("", "%v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fail("", "%v", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fail("", "%s is not a regular file", path)
	}
	return Verify(f, st.Size(), pub)
}

// Verify checks the package of size bytes in r against the exporter's
// public key: its ZIP structure, every member's CRC-32, the signature over
// manifest.json, and each listed member's size and SHA-256; every member
// must be listed and every listed member present. A failure is an *Error
// that names the member concerned.
func Verify(r io.ReaderAt, size int64, pub ed25519.PublicKey) (*Report, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fail("", "no public key")
	}
	members, err := readArchive(r, size)
	if err != nil {
		return nil, err
	}
	byName := map[string]member{}
	for _, m := range members {
		if _, dup := byName[m.name]; dup {
			return nil, fail(m.name, "appears twice in the archive")
		}
		byName[m.name] = m
	}
	mm, ok := byName[ManifestName]
	if !ok {
		return nil, fail(ManifestName, "missing")
	}
	sm, ok := byName[SignatureName]
	if !ok {
		return nil, fail(SignatureName, "missing")
	}
	if mm.size > maxManifestBytes {
		return nil, fail(ManifestName, "larger than %d bytes", maxManifestBytes)
	}
	if sm.size > maxSignatureBytes {
		return nil, fail(SignatureName, "larger than %d bytes", maxSignatureBytes)
	}
	body, err := readMember(r, mm)
	if err != nil {
		return nil, err
	}
	sigText, err := readMember(r, sm)
	if err != nil {
		return nil, err
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(string(bytes.TrimSuffix(sigText, []byte("\n"))))
	if err != nil || len(sig) != ed25519.SignatureSize || !bytes.HasSuffix(sigText, []byte("\n")) {
		return nil, fail(SignatureName, "not an Ed25519 signature in base64 on one line")
	}
	if !ed25519.Verify(pub, body, sig) {
		why := "the signature in " + SignatureName + " does not match: " + ManifestName + " was altered, or it was not signed with this key"
		if m, err := ParseManifest(body); err == nil && m.SigningKey.Fingerprint != Fingerprint(pub) {
			why = fmt.Sprintf("signed by key %s, not by the key given (%s)", m.SigningKey.Fingerprint, Fingerprint(pub))
		}
		return nil, fail(ManifestName, "%s", why)
	}
	man, err := ParseManifest(body)
	if err != nil {
		return nil, fail(ManifestName, "%v", err)
	}
	listed := map[string]File{}
	for _, f := range man.Files {
		listed[f.Name] = f
	}
	rep := &Report{Manifest: man, Members: len(members), Bytes: size}
	for _, m := range members {
		if m.name == ManifestName || m.name == SignatureName {
			continue
		}
		f, ok := listed[m.name]
		if !ok {
			return nil, fail(m.name, "is in the package but not in the manifest")
		}
		if err := checkMember(r, m, f); err != nil {
			return nil, err
		}
		delete(listed, m.name)
	}
	for _, f := range man.Files {
		if _, missing := listed[f.Name]; missing {
			return nil, fail(f.Name, "is in the manifest but missing from the package")
		}
	}
	return rep, nil
}

// readMember reads a small member whole, checking its CRC-32.
func readMember(r io.ReaderAt, m member) ([]byte, error) {
	b := make([]byte, m.size)
	if _, err := r.ReadAt(b, m.dataOff); err != nil {
		return nil, fail(m.name, "reading: %v", err)
	}
	if crc32.ChecksumIEEE(b) != m.crc {
		return nil, fail(m.name, "damaged: its content does not match its CRC-32 in the archive")
	}
	return b, nil
}

// checkMember streams a member through SHA-256 and CRC-32 and compares
// both with what the archive and the manifest say.
func checkMember(r io.ReaderAt, m member, f File) error {
	if m.size != f.Size {
		return fail(m.name, "size %d bytes, the manifest says %d", m.size, f.Size)
	}
	h := sha256.New()
	c := crc32.NewIEEE()
	if _, err := io.Copy(io.MultiWriter(h, c), io.NewSectionReader(r, m.dataOff, m.size)); err != nil {
		return fail(m.name, "reading: %v", err)
	}
	if c.Sum32() != m.crc {
		return fail(m.name, "damaged: its content does not match its CRC-32 in the archive")
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return fail(m.name, "SHA-256 %s, the manifest says %s", got, f.SHA256)
	}
	return nil
}
