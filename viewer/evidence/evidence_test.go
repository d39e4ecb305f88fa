package evidence

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kuzet/kuzet/internal/testenv"
)

var testTime = time.Date(2025, 3, 10, 9, 30, 0, 0, time.UTC)

func testKey(t testing.TB) (ed25519.PrivateKey, ed25519.PublicKey) {
	t.Helper()
	privPEM, pubPEM, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

func testManifest() *Manifest {
	end := testTime.Add(10 * time.Minute)
	h := strings.Repeat("ab", 32)
	return &Manifest{
		ExportID: "exp-1",
		Incident: &Incident{ID: 7, Facility: "f16", Type: "fight", Severity: "serious", Start: testTime, End: &end, Description: "yard"},
		From:     testTime.Add(-5 * time.Minute), To: end.Add(5 * time.Minute),
		Cameras: []Camera{{ID: "f16-c1", Name: "Yard", Facility: "f16", Zone: "yard",
			Segments: []Segment{{ObjectKey: "f16/f16-c1/1.mp4", Start: testTime, End: end, Bytes: 100, SHA256: h, PrevChain: h, Chain: h}}},
			{ID: "f16-c2", Name: "Gate", Facility: "f16", Zone: "yard"}},
		Gaps:       []Gap{{Camera: "f16-c2", Start: testTime, End: end, Reason: "camera_offline"}},
		Exporter:   Exporter{UserID: 3, Username: "inv", Roles: []string{"investigator"}, Client: "10.0.0.1"},
		Reason:     "court request 12/25",
		ExportedAt: testTime.Add(time.Hour),
		Software:   Software{Name: "kuzet", Version: "test"},
	}
}

// buildPackage writes a package with the given members' contents.
func buildPackage(t testing.TB, key ed25519.PrivateKey, files map[string][]byte, order []string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, testTime)
	m := testManifest()
	for _, name := range order {
		f, err := w.Add(name, TypeMP4, func(out io.Writer) error {
			_, err := out.Write(files[name])
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		f.Camera = strings.TrimSuffix(name, ".mp4")
		m.Files = append(m.Files, f)
		for i := range m.Cameras {
			if m.Cameras[i].ID == f.Camera {
				m.Cameras[i].Files = append(m.Cameras[i].Files, name)
			}
		}
	}
	if err := w.Finish(m, key); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func smallPackage(t testing.TB) ([]byte, ed25519.PublicKey) {
	priv, pub := testKey(t)
	files := map[string][]byte{"f16-c1.mp4": randomBytes(1, 700), "f16-c2.mp4": randomBytes(2, 300)}
	return buildPackage(t, priv, files, []string{"f16-c1.mp4", "f16-c2.mp4"}), pub
}

func TestPackageVerifies(t *testing.T) {
	t.Parallel()
	pkg, pub := smallPackage(t)
	rep, err := Verify(bytes.NewReader(pkg), int64(len(pkg)), pub)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Members != 5 || rep.Manifest.Reason != "court request 12/25" || len(rep.Manifest.Files) != 3 {
		t.Fatalf("report %+v", rep)
	}
	// Standard readers open it too.
	zr, err := zip.NewReader(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		rc.Close()
	}
	if got := strings.Join(names, ","); got != "f16-c1.mp4,f16-c2.mp4,README.txt,manifest.json,manifest.sig" {
		t.Fatalf("members %s", got)
	}
}

// memberAt says which member's content holds byte off of the package, or
// "".
func memberAt(t *testing.T, pkg []byte, off int64) string {
	zr, err := zip.NewReader(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		d, err := f.DataOffset()
		if err != nil {
			t.Fatal(err)
		}
		if off >= d && off < d+int64(f.CompressedSize64) {
			return f.Name
		}
	}
	return ""
}

// TestEveryFlippedByteFails flips every byte of a small package, one at a
// time: verification fails every time, and names the member when the byte
// is part of a member's content.
func TestEveryFlippedByteFails(t *testing.T) {
	t.Parallel()
	pkg, pub := smallPackage(t)
	named := 0
	for off := range pkg {
		b := bytes.Clone(pkg)
		b[off] ^= 0x20
		_, err := Verify(bytes.NewReader(b), int64(len(b)), pub)
		if err == nil {
			t.Fatalf("flipping byte %d of %d: verified", off, len(pkg))
		}
		var ve *Error
		if !errors.As(err, &ve) {
			t.Fatalf("byte %d: error %T %v", off, err, err)
		}
		if want := memberAt(t, pkg, int64(off)); want != "" {
			named++
			if ve.File != want {
				t.Fatalf("byte %d (in %s): error names %q: %v", off, want, ve.File, err)
			}
		}
	}
	t.Logf("%d flips, %d inside members, all refused and named", len(pkg), named)
}

func TestVerifyRefusals(t *testing.T) {
	t.Parallel()
	priv, pub := testKey(t)
	_, otherPub := testKey(t)
	files := map[string][]byte{"f16-c1.mp4": []byte("video one"), "f16-c2.mp4": []byte("video two")}
	good := buildPackage(t, priv, files, []string{"f16-c1.mp4", "f16-c2.mp4"})

	// A member that is not listed.
	var extra bytes.Buffer
	w := NewWriter(&extra, testTime)
	m := testManifest()
	for _, n := range []string{"f16-c1.mp4", "f16-c2.mp4"} {
		f, err := w.Add(n, TypeMP4, func(out io.Writer) error { _, err := out.Write(files[n]); return err })
		if err != nil {
			t.Fatal(err)
		}
		m.Files = append(m.Files, f)
	}
	if _, err := w.add("notes.txt", TypeText, func(out io.Writer) error { _, err := io.WriteString(out, "x"); return err }); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(m, priv); err != nil {
		t.Fatal(err)
	}

	// A listed member that is missing: the manifest names a file the
	// archive does not hold, re-signed with the right key.
	missing := resign(t, good, priv, func(m *Manifest) {
		m.Files = append(m.Files, File{Name: "f16-c3.mp4", Type: TypeMP4, Size: 1, SHA256: strings.Repeat("0", 64)})
	})
	// A manifest whose hash of a file is wrong, properly signed.
	wrongHash := resign(t, good, priv, func(m *Manifest) { m.Files[0].SHA256 = strings.Repeat("1", 64) })

	for _, c := range []struct {
		name string
		pkg  []byte
		pub  ed25519.PublicKey
		file string
		msg  string
	}{
		{"another key", good, otherPub, ManifestName, "signed by key"},
		{"member not listed", extra.Bytes(), pub, "notes.txt", "not in the manifest"},
		{"listed member missing", missing, pub, "f16-c3.mp4", "missing from the package"},
		{"hash differs from the manifest", wrongHash, pub, "f16-c1.mp4", "SHA-256"},
		{"empty", nil, pub, "", "too short"},
		{"appended bytes", append(bytes.Clone(good), 0), pub, "", "end record"},
		{"truncated", good[:len(good)-1], pub, "", "end record"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Verify(bytes.NewReader(c.pkg), int64(len(c.pkg)), c.pub)
			var ve *Error
			if !errors.As(err, &ve) || ve.File != c.file || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %v, want one naming %q with %q", err, c.file, c.msg)
			}
		})
	}
}

// resign rewrites a package's manifest with change and signs it again,
// keeping every other member.
func resign(t *testing.T, pkg []byte, key ed25519.PrivateKey, change func(*Manifest)) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		t.Fatal(err)
	}
	var man *Manifest
	contents := map[string][]byte{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		contents[f.Name] = b
	}
	if man, err = ParseManifest(contents[ManifestName]); err != nil {
		t.Fatal(err)
	}
	change(man)
	body, err := man.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	w := NewWriter(&out, testTime)
	for _, f := range zr.File {
		b := contents[f.Name]
		switch f.Name {
		case ManifestName:
			b = body
		case SignatureName:
			b = []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(key, body)) + "\n")
		}
		if _, err := w.add(f.Name, "", func(o io.Writer) error { _, err := o.Write(b); return err }); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestKeysRoundTrip(t *testing.T) {
	t.Parallel()
	priv, pub := testKey(t)
	if !bytes.Equal(priv.Public().(ed25519.PublicKey), pub) {
		t.Fatal("public key does not belong to the private key")
	}
	pemPub, err := PublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParsePrivateKey(pemPub); err == nil {
		t.Fatal("a public key parsed as a private key")
	}
	if _, err := ParsePublicKey([]byte("not pem")); err == nil {
		t.Fatal("garbage parsed as a public key")
	}
	if fp := Fingerprint(pub); !validFingerprint(fp) {
		t.Fatalf("fingerprint %q", fp)
	}
}

// TestOpenSSLVerifiesTheSignature follows the README's manual procedure
// with the openssl command, when it is installed.
func TestOpenSSLVerifiesTheSignature(t *testing.T) {
	t.Parallel()
	exe, err := exec.LookPath("openssl")
	if err != nil {
		testenv.Missing(t, "openssl", "apt-get install openssl (checks the README.txt manual procedure)")
	}
	privPEM, pubPEM, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := ParsePrivateKey(privPEM)
	pkg := buildPackage(t, priv, map[string][]byte{"a.mp4": []byte("x")}, []string{"a.mp4"})
	zr, _ := zip.NewReader(bytes.NewReader(pkg), int64(len(pkg)))
	dir := t.TempDir()
	for _, f := range zr.File {
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		if f.Name == SignatureName {
			b, _ = base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
			f.Name += ".bin"
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "pub.pem"), pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", ManifestName, "-sigfile", SignatureName+".bin")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Signature Verified Successfully") {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
}

func TestManifestParsing(t *testing.T) {
	t.Parallel()
	good, err := func() ([]byte, error) {
		m := testManifest()
		m.Format = Format
		m.SigningKey = KeyInfo{Algorithm: "Ed25519", Fingerprint: "SHA256:" + strings.Repeat("0", 64)}
		m.Files = []File{{Name: "f16-c1.mp4", Type: TypeMP4, Size: 1, SHA256: strings.Repeat("a", 64)},
			{Name: "f16-c2.mp4", Type: TypeMP4, Size: 1, SHA256: strings.Repeat("b", 64)}}
		m.Cameras[0].Files, m.Cameras[1].Files = []string{"f16-c1.mp4"}, []string{"f16-c2.mp4"}
		return m.Marshal()
	}()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseManifest(good); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, from, to string }{
		{"unknown field", `"reason":`, `"surprise": 1, "reason":`},
		{"wrong format", Format, "kuzet-evidence/9"},
		{"directory in a name", `"name": "f16-c1.mp4"`, `"name": "../f16-c1.mp4"`},
		{"manifest listed", `"name": "f16-c1.mp4"`, `"name": "manifest.json"`},
		{"duplicate", `"name": "f16-c2.mp4"`, `"name": "f16-c1.mp4"`},
		{"short hash", strings.Repeat("a", 64), "aa"},
		{"upper-case hash", strings.Repeat("a", 64), strings.Repeat("A", 64)},
		{"negative size", `"size": 1`, `"size": -1`},
		{"camera names an unknown file", `"f16-c2.mp4"
      ]`, `"f16-c9.mp4"
      ]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Replace(good, []byte(c.from), []byte(c.to), 1)
			if bytes.Equal(b, good) {
				t.Fatalf("case does not change the manifest")
			}
			if _, err := ParseManifest(b); !errors.Is(err, ErrManifest) {
				t.Fatalf("accepted or wrong error: %v", err)
			}
		})
	}
	if _, err := ParseManifest(append(bytes.Clone(good), "{}"...)); err == nil {
		t.Fatal("trailing data accepted")
	}
}

func FuzzParseManifest(f *testing.F) {
	m := testManifest()
	m.Format = Format
	m.SigningKey = KeyInfo{Algorithm: "Ed25519", Fingerprint: "SHA256:" + strings.Repeat("0", 64)}
	m.Files = []File{{Name: "f16-c1.mp4", Type: TypeMP4, Size: 1, SHA256: strings.Repeat("a", 64)},
		{Name: "f16-c2.mp4", Type: TypeMP4, Size: 1, SHA256: strings.Repeat("b", 64)}}
	b, err := m.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"format":"kuzet-evidence/1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			if !errors.Is(err, ErrManifest) {
				t.Fatalf("error %v does not wrap ErrManifest", err)
			}
			return
		}
		again, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseManifest(again); err != nil {
			t.Fatalf("accepted manifest refused after a round trip: %v", err)
		}
	})
}

// FuzzVerify feeds arbitrary bytes to Verify: it must never panic, and
// anything it accepts must hold a manifest signed by the key.
func FuzzVerify(f *testing.F) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	pub := priv.Public().(ed25519.PublicKey)
	pkg := buildPackage(f, priv, map[string][]byte{"a.mp4": []byte("frame")}, []string{"a.mp4"})
	f.Add(pkg)
	f.Add(pkg[len(pkg)-100:])
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := Verify(bytes.NewReader(b), int64(len(b)), pub)
		if err == nil && rep.Manifest.SigningKey.Fingerprint != Fingerprint(pub) {
			t.Fatalf("accepted a package naming key %s", rep.Manifest.SigningKey.Fingerprint)
		}
		var ve *Error
		if err != nil && !errors.As(err, &ve) {
			t.Fatalf("error %T: %v", err, err)
		}
	})
}

func ExampleVerify() {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	var buf bytes.Buffer
	w := NewWriter(&buf, testTime)
	m := testManifest()
	f, _ := w.Add("f16-c1.mp4", TypeMP4, func(out io.Writer) error { _, err := io.WriteString(out, "video"); return err })
	m.Files = append(m.Files, f)
	if err := w.Finish(m, priv); err != nil {
		fmt.Println(err)
		return
	}
	rep, err := Verify(bytes.NewReader(buf.Bytes()), int64(buf.Len()), priv.Public().(ed25519.PublicKey))
	fmt.Println(rep.Members, err)
	// Output: 4 <nil>
}

// sparseFile records what is written to it except while skipping, where
// only zeros are written; reads return the recorded bytes and zeros
// elsewhere. It stands for a package too large to keep in a test.
type sparseFile struct {
	n        int64
	skipping bool
	pieces   []sparsePiece
}

type sparsePiece struct {
	off int64
	b   []byte
}

func (s *sparseFile) Write(p []byte) (int, error) {
	// The ZIP writer buffers: headers may arrive with the first zeros.
	if !s.skipping || len(p) < 64<<10 || !allZero(p) {
		if k := len(s.pieces); k > 0 && s.pieces[k-1].off+int64(len(s.pieces[k-1].b)) == s.n {
			s.pieces[k-1].b = append(s.pieces[k-1].b, p...)
		} else {
			s.pieces = append(s.pieces, sparsePiece{off: s.n, b: bytes.Clone(p)})
		}
	}
	s.n += int64(len(p))
	return len(p), nil
}

var zeroChunk = make([]byte, 64<<10)

func allZero(p []byte) bool {
	for len(p) > 0 {
		n := min(len(p), len(zeroChunk))
		if !bytes.Equal(p[:n], zeroChunk[:n]) {
			return false
		}
		p = p[n:]
	}
	return true
}

func (s *sparseFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= s.n {
		return 0, io.EOF
	}
	clear(p)
	for _, pc := range s.pieces {
		lo, hi := max(off, pc.off), min(off+int64(len(p)), pc.off+int64(len(pc.b)))
		if lo < hi {
			copy(p[lo-off:hi-off], pc.b[lo-pc.off:hi-pc.off])
		}
	}
	if off+int64(len(p)) > s.n {
		return int(s.n - off), io.EOF
	}
	return len(p), nil
}

// TestZIP64Structure writes a member of more than 4 GiB (zeros, not kept)
// and a member after it, so that sizes, offsets and the end records take
// their ZIP64 forms, and checks that the strict reader accepts exactly
// that structure.
func TestZIP64Structure(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 4 GiB through the ZIP writer")
	}
	t.Parallel()
	s := &sparseFile{}
	w := NewWriter(s, testTime)
	const big = 1<<32 + 5
	zeros := make([]byte, 1<<20)
	if _, err := w.add("big.mp4", TypeMP4, func(out io.Writer) error {
		s.skipping = true
		defer func() { s.skipping = false }()
		for left := int64(big); left > 0; {
			n := min(left, int64(len(zeros)))
			if _, err := out.Write(zeros[:n]); err != nil {
				return err
			}
			left -= n
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.add("small.mp4", TypeMP4, func(out io.Writer) error { _, err := io.WriteString(out, "tail"); return err }); err != nil {
		t.Fatal(err)
	}
	if err := w.zw.Close(); err != nil {
		t.Fatal(err)
	}
	ms, err := readArchive(s, s.n)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].size != big || ms[1].size != 4 || ms[1].dataOff < 1<<32 {
		t.Fatalf("members %+v", ms)
	}
	b := make([]byte, 4)
	if _, err := s.ReadAt(b, ms[1].dataOff); err != nil || string(b) != "tail" {
		t.Fatalf("second member reads %q, %v", b, err)
	}
	// Every byte after the big member matters too.
	tail := s.pieces[len(s.pieces)-1]
	for i := range tail.b {
		tail.b[i] ^= 0x01
		pos := tail.off + int64(i)
		inData := pos < ms[0].dataOff+ms[0].size || pos >= ms[1].dataOff && pos < ms[1].dataOff+4
		if _, err := readArchive(s, s.n); err == nil && !inData {
			t.Fatalf("flipping byte %d of the ZIP64 tail went unnoticed", tail.off+int64(i))
		}
		tail.b[i] ^= 0x01
	}
}
