package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"github.com/kuzet/kuzet/internal/camsim"
	"github.com/kuzet/kuzet/internal/testenv"
	"github.com/kuzet/kuzet/recorder/index"
	"github.com/kuzet/kuzet/recorder/store"
	"github.com/kuzet/kuzet/registry"
	"github.com/kuzet/kuzet/viewer/evidence"
)

// mp4Marks reads the camera simulator's marks of every video sample of an
// MP4 made by the viewer (init section, then fragments).
func mp4Marks(t testing.TB, b []byte) (marks []camsim.Mark, keys []bool) {
	t.Helper()
	off := 0
	for range 2 { // ftyp, moov
		if len(b) < off+8 {
			t.Fatal("truncated MP4")
		}
		off += int(binary.BigEndian.Uint32(b[off:]))
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(b[off:]); err != nil {
		t.Fatalf("fragments: %v", err)
	}
	for _, p := range parts {
		for _, tr := range p.Tracks {
			if tr.ID != 1 {
				continue
			}
			for _, s := range tr.Samples {
				au, err := s.GetH264()
				if err != nil {
					t.Fatal(err)
				}
				m, ok := camsim.FindMark(camsim.CodecH264, au)
				if !ok {
					t.Fatal("a sample without a mark")
				}
				marks, keys = append(marks, m), append(keys, !s.IsNonSyncSample)
			}
		}
	}
	return marks, keys
}

// ffprobeFrames decodes every frame of an MP4 with ffprobe and returns
// "codec,width,height,frames".
func ffprobeFrames(t testing.TB, path string) string {
	t.Helper()
	out, err := exec.Command(testenv.FFprobe(t), "-v", "error", "-select_streams", "v", "-count_frames", "-show_entries",
		"stream=codec_name,width,height,nb_read_frames", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestEvidenceExportOfThreeCameras exports 3 cameras × 5 minutes of
// synthetic footage (real H.264 with the simulator's marks, segmented by
// the recorder's segment writer into 60 s segments, stored and indexed;
// camera 2 has a 30 s gap): every MP4 decodes in ffprobe and holds exactly
// the marked frames of its window, the manifest carries the source
// segments' hashes and the gap, `kuzet verify` accepts the package, and a
// byte flipped anywhere in it makes verification fail naming the member.
func TestEvidenceExportOfThreeCameras(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, ix := newTestIndex(t)
	st, err := store.NewFS(store.FSConfig{Dir: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	clip := loadTestClip(t, "h264_640x360.ts")
	epoch := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	cams := []string{"f16-c1", "f16-c2", "f16-c3"}
	var inputs []stackCamera
	for i, id := range cams {
		f := newFootage(ix, st, id, "f16", uint32(i+1), clip, time.Minute, epoch)
		if id == "f16-c2" {
			f.record(t, ctx, 0, 3000)                   // 0 - 2:00
			f.gap(t, ctx, 3000, 3750, "camera_offline") // 2:00 - 2:30
			f.record(t, ctx, 3750, 6*60*footageFPS+250)
		} else {
			f.record(t, ctx, 0, 6*60*footageFPS+250)
		}
		inputs = append(inputs, stackCamera{id: id})
	}
	s := newFootageStack(t, pool, ix, st, stackOpts{cameras: cameraInputs(inputs)})
	from, to := epoch.Add(30*time.Second+500*time.Millisecond), epoch.Add(5*time.Minute+30*time.Second+500*time.Millisecond)

	pkg, job, took := s.exportAndFetch(t, "inv", map[string]any{"cameras": cams, "from": from, "to": to, "reason": "prosecutor request 2026/17"})
	t.Logf("export of 3 cameras × 5 min: %d bytes in %v", job.Size, took.Round(time.Millisecond))

	// kuzet verify accepts it.
	pubFile := s.keyFile + ".pub"
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"verify", pkg, "--pubkey", pubFile}, io.Discard, &errb); code != 0 {
		t.Fatalf("kuzet verify: exit %d\n%s", code, errb.String())
	}
	if err := runVerify(pkg, pubFile, &out); err != nil || !strings.HasPrefix(out.String(), "OK: ") {
		t.Fatalf("verify: %v\n%s", err, out.String())
	}
	t.Logf("kuzet verify:\n%s", out.String())

	b, err := os.ReadFile(pkg)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := evidence.ParsePublicKey(mustRead(t, pubFile))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := evidence.Verify(bytes.NewReader(b), int64(len(b)), pub)
	if err != nil {
		t.Fatal(err)
	}
	m := rep.Manifest
	if m.Reason != "prosecutor request 2026/17" || m.Exporter.Username != "inv" || !m.From.Equal(from) || !m.To.Equal(to) ||
		m.Software.Name != "kuzet" || len(m.Cameras) != 3 {
		t.Fatalf("manifest %+v", m)
	}
	if len(m.Gaps) != 1 || m.Gaps[0].Camera != "f16-c2" || m.Gaps[0].Reason != "camera_offline" ||
		!m.Gaps[0].Start.Equal(frameAt(epoch, 3000)) || !m.Gaps[0].End.Equal(frameAt(epoch, 3750)) {
		t.Errorf("gaps %+v", m.Gaps)
	}
	// The source segments are the index's rows, hashes and chain links.
	for _, c := range m.Cameras {
		rows, err := ix.Segments(ctx, c.ID, from, to)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Segments) != len(rows) {
			t.Fatalf("%s: %d source segments, index has %d", c.ID, len(c.Segments), len(rows))
		}
		for i, sg := range c.Segments {
			r := rows[i]
			if sg.ObjectKey != r.ObjectKey || sg.SHA256 != r.SHA256.String() || sg.Chain != r.Chain.String() || sg.PrevChain != r.PrevChain.String() ||
				index.ChainHash(r.PrevChain, r.SHA256, c.ID, r.Start, r.End) != r.Chain {
				t.Errorf("%s segment %d: manifest %+v, index %s %s", c.ID, i, sg, r.ObjectKey, r.SHA256)
			}
		}
	}
	// Each MP4: ffprobe decodes every frame; the marks run without a lost
	// or repeated frame from the keyframe at or before the window's start
	// to the last frame before its end (camera 2 jumps over its gap).
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range zr.File {
		if !strings.HasSuffix(f.Name, ".mp4") {
			continue
		}
		rc, _ := f.Open()
		data, _ := io.ReadAll(rc)
		rc.Close()
		path := filepath.Join(dir, f.Name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		marks, keys := mp4Marks(t, data)
		probe := ffprobeFrames(t, path)
		if want := fmt.Sprintf("h264,640,360,%d", len(marks)); probe != want {
			t.Errorf("%s: ffprobe %q, want %q", f.Name, probe, want)
		}
		first, last := marks[0], marks[len(marks)-1]
		if !keys[0] || first.Capture.After(from) || !first.Capture.Add(2*time.Second).After(from) {
			t.Errorf("%s starts with frame %d (key %t) at %s; window from %s", f.Name, first.Frame, keys[0], first.Capture, from)
		}
		if !last.Capture.Before(to) || last.Capture.Add(time.Second/footageFPS).Before(to) {
			t.Errorf("%s ends with frame %d at %s; window to %s", f.Name, last.Frame, last.Capture, to)
		}
		for i := 1; i < len(marks); i++ {
			prev, cur := marks[i-1].Frame, marks[i].Frame
			if cur != prev+1 && !(f.Name == "f16-c2.mp4" && prev == 2999 && cur == 3750) {
				t.Fatalf("%s: frame %d follows %d", f.Name, cur, prev)
			}
		}
		var mf *evidence.File
		for i := range m.Files {
			if m.Files[i].Name == f.Name {
				mf = &m.Files[i]
			}
		}
		if mf == nil || mf.Frames != len(marks) || !mf.From.Equal(first.Capture) || !mf.To.Equal(last.Capture.Add(40*time.Millisecond)) {
			t.Errorf("%s: manifest entry %+v, file holds %d frames %s..%s", f.Name, mf, len(marks), first.Capture, last.Capture)
		}
		t.Logf("%s: %d bytes, frames %d..%d, %s", f.Name, len(data), first.Frame, last.Frame, probe)
	}

	// A byte flipped anywhere fails verification; inside a member it names
	// the member. Random positions over the whole package, and in every
	// member.
	type member struct {
		name     string
		off, end int64
	}
	var members []member
	for _, f := range zr.File {
		d, _ := f.DataOffset()
		members = append(members, member{f.Name, d, d + int64(f.CompressedSize64)})
	}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var positions []int64
	const random = 80
	for range random {
		positions = append(positions, r.Int64N(int64(len(b))))
	}
	for _, mb := range members {
		for range 5 {
			positions = append(positions, mb.off+r.Int64N(mb.end-mb.off))
		}
	}
	verifyStart := time.Now()
	for _, pos := range positions {
		b[pos] ^= 0x5a
		_, err := evidence.Verify(bytes.NewReader(b), int64(len(b)), pub)
		b[pos] ^= 0x5a
		var ve *evidence.Error
		if !errors.As(err, &ve) {
			t.Fatalf("flipped byte %d: verify says %v", pos, err)
		}
		for _, mb := range members {
			if pos >= mb.off && pos < mb.end && ve.File != mb.name {
				t.Fatalf("flipped byte %d in %s: error names %q: %v", pos, mb.name, ve.File, err)
			}
		}
	}
	t.Logf("%d flipped bytes (%d in members' content), each refused naming its member; %v per verification",
		len(positions), len(positions)-random, (time.Since(verifyStart) / time.Duration(len(positions))).Round(time.Millisecond))
	// And through the command: exit 1, the file named.
	for _, mb := range members {
		if mb.name == evidence.SignatureName {
			continue
		}
		flipped := filepath.Join(t.TempDir(), "flipped.zip")
		c := bytes.Clone(b)
		c[mb.off+(mb.end-mb.off)/2] ^= 1
		if err := os.WriteFile(flipped, c, 0o644); err != nil {
			t.Fatal(err)
		}
		out.Reset()
		errb.Reset()
		if code := run(ctx, []string{"verify", "--pubkey", pubFile, flipped}, &out, &errb); code != 1 || !strings.Contains(errb.String(), mb.name+": ") {
			t.Errorf("flip in %s: exit %d, %q", mb.name, code, errb.String())
		}
	}
	// Verified against another key: refused.
	other := filepath.Join(t.TempDir(), "other.key")
	if err := makeExportKey(other, io.Discard); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := run(ctx, []string{"verify", pkg, "--pubkey", other + ".pub"}, io.Discard, &errb); code != 1 || !strings.Contains(errb.String(), "signed by key") {
		t.Errorf("another key: exit %d %q", code, errb.String())
	}

	// The same footage as a download: remuxed MP4 with Range support.
	q := url.Values{"from": {from.Format(time.RFC3339Nano)}, "to": {to.Format(time.RFC3339Nano)}, "reason": {"prosecutor request 2026/17"}}
	code, whole := s.do(t, "inv", "GET", "/api/v1/cameras/f16-c1/recording.mp4?"+q.Encode(), nil, nil)
	inPkg, _ := zr.Open("f16-c1.mp4")
	pkgMP4, _ := io.ReadAll(inPkg)
	if code != 200 || !bytes.Equal(whole, pkgMP4) {
		t.Fatalf("download: %d, %d bytes (package holds %d)", code, len(whole), len(pkgMP4))
	}
	req, _ := http.NewRequest("GET", s.base+"/api/v1/cameras/f16-c1/recording.mp4?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+s.tokens["inv"])
	req.Header.Set("Range", "bytes=1000000-1999999")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, whole[1000000:2000000]) {
		t.Fatalf("range: %d, %d bytes", resp.StatusCode, len(part))
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stackCamera is a camera of a test stack.
type stackCamera struct {
	id, url string
}

func cameraInputs(cs []stackCamera) []registry.CameraInput {
	var out []registry.CameraInput
	for _, c := range cs {
		u := c.url
		if u == "" {
			u = "rtsp://127.0.0.1:1/cam/" + c.id
		}
		out = append(out, cameraInput(c.id, "f16", "yard", u))
	}
	return out
}

func TestVerifyCommandUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"verify"}, {"verify", "a.zip"}, {"verify", "a.zip", "b.zip", "--pubkey", "k"}} {
		var errb bytes.Buffer
		if code := run(context.Background(), args, io.Discard, &errb); code != 2 {
			t.Errorf("%v: exit %d %q", args, code, errb.String())
		}
	}
	var errb bytes.Buffer
	if code := run(context.Background(), []string{"verify", "/nonexistent.zip", "--pubkey", "/nonexistent.pem"}, io.Discard, &errb); code != 1 {
		t.Errorf("missing files: exit %d %q", code, errb.String())
	}
	// export-key refuses to overwrite, and prints the public key of a key.
	dir := t.TempDir()
	key := filepath.Join(dir, "k.pem")
	var out bytes.Buffer
	if err := makeExportKey(key, &out); err != nil || !strings.Contains(out.String(), "fingerprint SHA256:") {
		t.Fatalf("export-key: %v %s", err, out.String())
	}
	if st, _ := os.Stat(key); st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", st.Mode().Perm())
	}
	errb.Reset()
	if code := run(context.Background(), []string{"export-key", key}, io.Discard, &errb); code != 1 || !strings.Contains(errb.String(), "never overwritten") {
		t.Errorf("second export-key: %d %q", code, errb.String())
	}
	out.Reset()
	if err := printPublicKey(key, &out); err != nil || !bytes.Contains(out.Bytes(), mustRead(t, key+".pub")) {
		t.Errorf("export-key --public: %v %s", err, out.String())
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadSigningKey(key); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Errorf("world-readable key: %v", err)
	}
}
