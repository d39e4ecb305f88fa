package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/recorder/index"
	"github.com/kuzet/kuzet/recorder/store"
	"github.com/kuzet/kuzet/registry"
	"github.com/kuzet/kuzet/viewer"
)

// footageStack is the HTTP service as serve wires it for recorded footage:
// registry, API with playback and export (through newRecordedFootage),
// optionally live WebRTC and the UI, over a recorder index and a store.
type footageStack struct {
	base    string
	reg     *registry.Registry
	pool    *pgxpool.Pool
	ix      *index.Index
	st      store.Store
	keyFile string
	tokens  map[string]string
	users   map[string]registry.User
	pb      *viewer.Playback
	ex      *viewer.Exporter
}

const stackPassword = "correct horse battery staple"

type stackOpts struct {
	cameras []registry.CameraInput
	// mgr, when set, gives live viewing over its streams, and WebRTC to
	// playback; ui mounts the web UI.
	mgr  *ingest.Manager
	ui   bool
	mark viewer.FrameMarkFunc
}

// newFootageStack builds the stack on pool (migrated) and st, with facility
// f16, zone yard, the cameras, and users inv, involved (investigators), op
// (operator) and it, each with a password and a token.
func newFootageStack(t testing.TB, pool *pgxpool.Pool, ix *index.Index, st store.Store, o stackOpts) *footageStack {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("KUZET_TEST_LOG") == "1" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	reg, err := registry.New(registry.Config{Password: registry.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1}, LoginClientRate: 1000},
		pool, noHolds{}, log)
	if err != nil {
		t.Fatal(err)
	}
	sys := registry.System("test")
	str := func(s string) *string { return &s }
	if _, err := reg.CreateFacility(ctx, sys, registry.FacilityInput{ID: "f16", Name: str("Facility 16"), Timezone: str("UTC")}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateZone(ctx, sys, "f16", registry.ZoneInput{ID: "yard", Name: str("Yard"), Kind: str("yard")}); err != nil {
		t.Fatal(err)
	}
	for _, c := range o.cameras {
		if _, err := reg.CreateCamera(ctx, sys, c); err != nil {
			t.Fatal(err)
		}
	}
	s := &footageStack{reg: reg, pool: pool, ix: ix, st: st, tokens: map[string]string{}, users: map[string]registry.User{}}
	for name, role := range map[string]registry.Role{"inv": registry.RoleInvestigator, "involved": registry.RoleInvestigator,
		"op": registry.RoleOperator, "it": registry.RoleIT} {
		roles := []registry.Role{role}
		u, err := reg.CreateUser(ctx, sys, registry.UserInput{Username: name, Password: str(stackPassword), Roles: &roles, Facilities: &[]string{"f16"}})
		if err != nil {
			t.Fatal(err)
		}
		tok, _, err := reg.CreateToken(ctx, sys, u.ID, registry.TokenInput{Name: "test"})
		if err != nil {
			t.Fatal(err)
		}
		s.users[name], s.tokens[name] = u, tok
	}
	s.keyFile = filepath.Join(t.TempDir(), "export.key")
	if err := makeExportKey(s.keyFile, io.Discard); err != nil {
		t.Fatal(err)
	}
	metrics := prometheus.NewRegistry()
	s.pb, s.ex, err = newRecordedFootage(recordedSettings{ExportDir: filepath.Join(t.TempDir(), "exports"), SigningKeyFile: s.keyFile},
		ix, st, nil, reg.Audit(), o.mark, metrics, log)
	if err != nil {
		t.Fatal(err)
	}
	api, err := viewer.NewAPI(viewer.APIConfig{}, viewer.APIDeps{Registry: reg, Footage: footageIndex{ix}, Playback: s.pb, Exports: s.ex, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	mounts := []viewer.Mounter{api}
	runs := []func(context.Context) error{s.pb.Run, s.ex.Run}
	if o.mgr != nil {
		dir, err := viewer.NewLiveDirectory(reg, o.mgr)
		if err != nil {
			t.Fatal(err)
		}
		live, err := viewer.NewLive(viewer.LiveConfig{ICEUDPListen: "127.0.0.1:0", ICETCPListen: "127.0.0.1:0", IncludeLoopback: true},
			viewer.LiveDeps{Streams: o.mgr, Cameras: dir, Auth: api, Audit: reg.Audit(), Log: log})
		if err != nil {
			t.Fatal(err)
		}
		s.pb.UseLive(live)
		mounts = append(mounts, live)
		runs = append(runs, live.Run)
	}
	if o.ui {
		ui, err := viewer.NewUI()
		if err != nil {
			t.Fatal(err)
		}
		mounts = append(mounts, ui)
	}
	srv, err := viewer.New(viewer.Config{Listen: "127.0.0.1:0", ShutdownTimeout: 2 * time.Second}, log, metrics, nil, mounts...)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	s.base = "http://" + addr.String()
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, run := range append(runs, srv.Run) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = run(runCtx)
		}()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return s
}

// do sends a request with user's token and decodes a JSON answer into out
// (when not nil); it returns the status and the raw body.
func (s *footageStack) do(t testing.TB, user, method, path string, body, out any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+s.tokens[user])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode, b
}

// exportJob is the API's view of an export.
type exportJob struct {
	ID         string  `json:"id"`
	State      string  `json:"state"`
	Error      string  `json:"error"`
	Progress   float64 `json:"progress"`
	BytesTotal int64   `json:"bytes_total"`
	Size       int64   `json:"size"`
	SHA256     string  `json:"sha256"`
}

// exportAndFetch runs an export as user and downloads its package to a
// file; it returns the path and how long the export took.
func (s *footageStack) exportAndFetch(t testing.TB, user string, body any) (string, exportJob, time.Duration) {
	t.Helper()
	start := time.Now()
	var j exportJob
	if code, b := s.do(t, user, "POST", "/api/v1/exports", body, &j); code != http.StatusAccepted {
		t.Fatalf("export: %d %s", code, b)
	}
	deadline := time.Now().Add(10 * time.Minute)
	for j.State == "queued" || j.State == "running" {
		if time.Now().After(deadline) {
			t.Fatalf("export still %s", j.State)
		}
		time.Sleep(50 * time.Millisecond)
		s.do(t, user, "GET", "/api/v1/exports/"+j.ID, nil, &j)
	}
	took := time.Since(start)
	if j.State != "done" {
		t.Fatalf("export %+v", j)
	}
	req, _ := http.NewRequest("GET", s.base+"/api/v1/exports/"+j.ID+"/package", nil)
	req.Header.Set("Authorization", "Bearer "+s.tokens[user])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("package: %d %s", resp.StatusCode, b)
	}
	path := filepath.Join(t.TempDir(), j.ID+".zip")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(f, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if n != j.Size {
		t.Fatalf("package of %d bytes, export says %d", n, j.Size)
	}
	return path, j, took
}

func cameraInput(id, facility, zone, url string) registry.CameraInput {
	return registry.CameraInput{ID: id, Facility: &facility, Zone: &zone, Name: ptr(fmt.Sprintf("Camera %s", id)), URL: &url}
}

func ptr[T any](v T) *T { return &v }
