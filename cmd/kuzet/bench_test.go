package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/kuzet/kuzet/internal/testenv"
)

func TestBenchRefusesBadFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no cameras", []string{"--cameras", "0"}, "--cameras 0"},
		{"unknown store", []string{"--store", "nfs"}, `--store "nfs"`},
		{"short segments", []string{"--segment", "100ms"}, "--segment 100ms"},
		{"no duration", []string{"--duration", "0s"}, "--duration must be positive"},
		{"argument", []string{"extra"}, `unexpected argument "extra"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var errb bytes.Buffer
			if code := run(context.Background(), append([]string{"bench"}, tc.args...), io.Discard, &errb); code != 2 ||
				!strings.Contains(errb.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errb.String(), tc.want)
			}
		})
	}
}

// TestBenchTwoCameras runs kuzet bench in-process (the simulator in a
// child kuzet process) and checks that its report adds up.
func TestBenchTwoCameras(t *testing.T) {
	t.Parallel()
	bin := kuzetBinary(t)
	db := testenv.PostgresURL(t)
	out := filepath.Join(t.TempDir(), "bench.json")
	var errb bytes.Buffer
	code := run(context.Background(), []string{"bench", "--cameras", "2", "--duration", "5s", "--segment", "2s",
		"--database", db, "--camsim-bin", bin, "--json", out}, io.Discard, &errb)
	if code != 0 {
		t.Fatalf("kuzet bench exit %d: %s", code, errb.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r benchReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	t.Logf("report: %s", b)
	// 2 cameras × 25 fps × 5 s = 250 frames; allow for the start and end
	// of the window.
	if r.Cameras != 2 || r.Seconds < 5 || r.Seconds > 8 || r.Video != "H264 1920x1080" {
		t.Errorf("setup: %d cameras, %.1fs, video %q", r.Cameras, r.Seconds, r.Video)
	}
	if r.FramesReceived < 200 || r.FramesReceived > 300 || r.FramesSent != r.FramesReceived || r.FramesMissing != 0 {
		t.Errorf("frames: %d received of %d sent, %d missing", r.FramesReceived, r.FramesSent, r.FramesMissing)
	}
	if r.RecorderDrops != 0 || r.OverloadGaps != 0 || r.CounterDrops != 0 || r.RTPPacketsLost != 0 {
		t.Errorf("drops: recorder %d, overload gaps %d, counter %d, RTP %d", r.RecorderDrops, r.OverloadGaps, r.CounterDrops, r.RTPPacketsLost)
	}
	if r.SegmentsWritten < 2 || r.SegmentsUploaded < 1 || r.SegmentsUploaded > r.SegmentsWritten || r.UploadFailures != 0 {
		t.Errorf("segments: %d written, %d uploaded, %d failures", r.SegmentsWritten, r.SegmentsUploaded, r.UploadFailures)
	}
	if r.CPUPercent <= 0 || r.CPUPercentPerCamera != r.CPUPercent/2 || r.PeakRSSBytes <= 0 || r.PeakHeapBytes == 0 {
		t.Errorf("resources: cpu %.2f%% (%.2f%% per camera), rss %d, heap %d", r.CPUPercent, r.CPUPercentPerCamera, r.PeakRSSBytes, r.PeakHeapBytes)
	}
	if r.BacklogSegments > 2 || r.LagSeconds > 10 {
		t.Errorf("backlog at end: %d segments, lag %.1fs", r.BacklogSegments, r.LagSeconds)
	}
}

// TestBenchS3 runs one camera into MinIO and checks that the run's objects
// are gone afterwards.
func TestBenchS3(t *testing.T) {
	t.Parallel()
	bin := kuzetBinary(t)
	mc := testenv.StartMinIO(t)
	db := testenv.PostgresURL(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "kuzet.yaml")
	cfg := "store:\n  s3:\n    endpoint: " + mc.Endpoint + "\n    bucket: " + mc.Bucket +
		"\n    access_key: " + mc.AccessKey + "\n    secret_key: " + mc.SecretKey + "\n    tls: false\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "bench.json")
	var errb bytes.Buffer
	code := run(context.Background(), []string{"bench", "--cameras", "1", "--duration", "3s", "--segment", "1s",
		"--store", "s3", "--config", cfgPath, "--database", db, "--camsim-bin", bin, "--json", out}, io.Discard, &errb)
	if code != 0 {
		t.Fatalf("kuzet bench exit %d: %s", code, errb.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r benchReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Store != "s3" || r.SegmentsUploaded < 1 || r.UploadFailures != 0 || r.FramesReceived == 0 {
		t.Fatalf("report: %s", b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for obj := range mc.Client(t).ListObjects(ctx, mc.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		t.Errorf("object %s left in the bucket", obj.Key)
	}
}
