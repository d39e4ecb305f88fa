package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/kuzet/kuzet/internal/migrate"
	"github.com/kuzet/kuzet/internal/testenv"
	"github.com/kuzet/kuzet/recorder"
	"github.com/kuzet/kuzet/recorder/store"
	"github.com/kuzet/kuzet/registry"
)

// TestSeriousIncidentHoldsFootageInTheRecorder wires the registry to the
// real recorder as serve does: opening a serious incident places legal
// holds in the recorder's index on exactly the incident's cameras, for its
// time widened by the configured hold margins; releasing the incident's
// hold releases them.
func TestSeriousIncidentHoldsFootageInTheRecorder(t *testing.T) {
	ctx := context.Background()
	pool := testenv.Postgres(t)
	if _, err := migrate.Apply(ctx, pool, migrationSets()...); err != nil {
		t.Fatal(err)
	}
	objects, err := store.NewFS(store.FSConfig{Dir: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := recorder.New(recorder.Config{SpoolDir: t.TempDir()}, recorder.Deps{Pool: pool, Store: objects})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(registry.Config{
		Password:   registry.PasswordParams{Time: 1, MemoryKiB: 8, Threads: 1},
		HoldBefore: 2 * time.Hour, HoldAfter: 2 * time.Hour,
	}, pool, holdPlacer{rec}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	act := registry.System("test")
	str := func(s string) *string { return &s }
	if _, err := reg.CreateFacility(ctx, act, registry.FacilityInput{ID: "f16", Name: str("Facility 16")}); err != nil {
		t.Fatal(err)
	}
	for _, z := range []string{"block-a", "yard"} {
		if _, err := reg.CreateZone(ctx, act, "f16", registry.ZoneInput{ID: z, Name: str(z), Kind: str("cell_block")}); err != nil {
			t.Fatal(err)
		}
	}
	for id, zone := range map[string]string{"f16-c01": "block-a", "f16-c02": "block-a", "f16-c03": "yard"} {
		if _, err := reg.CreateCamera(ctx, act, registry.CameraInput{ID: id, Facility: str("f16"), Zone: str(zone),
			Name: str(id), URL: str("rtsp://10.16.0.1/" + id)}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Date(2026, 11, 20, 23, 10, 0, 0, time.UTC)
	end := start.Add(20 * time.Minute)
	inc, err := reg.CreateIncident(ctx, act, registry.IncidentInput{
		Facility: str("f16"), Type: str("assault"), Severity: str("serious"), Status: str("open"),
		Start: &start, End: &end, Description: str("test"), Zones: &[]string{"block-a"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ix := rec.Index()
	for _, cam := range []string{"f16-c01", "f16-c02"} {
		holds, err := ix.Holds(ctx, cam, start, end)
		if err != nil {
			t.Fatal(err)
		}
		if len(holds) != 1 || holds[0].IncidentID != inc.ID ||
			!holds[0].Start.Equal(start.Add(-2*time.Hour)) || !holds[0].End.Equal(end.Add(2*time.Hour)) {
			t.Fatalf("%s: holds %+v, want one for incident %d over %s..%s", cam, holds, inc.ID, start.Add(-2*time.Hour), end.Add(2*time.Hour))
		}
	}
	if holds, err := ix.Holds(ctx, "f16-c03", start, end); err != nil || len(holds) != 0 {
		t.Fatalf("camera outside the incident's zones held: %+v %v", holds, err)
	}
	if _, err := reg.ReleaseHold(ctx, act, inc.ID, "released by the investigating officer"); err != nil {
		t.Fatal(err)
	}
	for _, cam := range []string{"f16-c01", "f16-c02"} {
		holds, err := ix.Holds(ctx, cam, start, end) // active holds only
		if err != nil {
			t.Fatal(err)
		}
		if len(holds) != 0 {
			t.Errorf("%s: holds still active after release: %+v", cam, holds)
		}
	}
}
