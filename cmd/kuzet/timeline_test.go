package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kuzet/kuzet/recorder/index"
	"github.com/kuzet/kuzet/recorder/segment"
	"github.com/kuzet/kuzet/recorder/store"
	"github.com/kuzet/kuzet/registry"
)

// seedDay fills the index with a day of 60 s segments for each camera,
// with a 3-minute camera_offline gap every 6 hours, by COPY (the rows are
// what the recorder writes; the chain is computed as it would be).
func seedDay(t testing.TB, pool *pgxpool.Pool, cameras []string, day time.Time) (segments, gaps int) {
	t.Helper()
	ctx := context.Background()
	frags := segment.EncodeIndex([]segment.Fragment{{Offset: 1000, Time: 0, Key: true}, {Offset: 60000, Time: 30 * 90000, Key: true}})
	var rows [][]any
	var gapRows [][]any
	for _, cam := range cameras {
		var prev index.Hash
		seq := 0
		for m := 0; m < 24*60; m++ {
			start := day.Add(time.Duration(m) * time.Minute)
			if m%360 == 100 {
				gapRows = append(gapRows, []any{cam, start, start.Add(3 * time.Minute), index.ReasonCameraOffline, "seeded"})
			}
			if m%360 >= 100 && m%360 < 103 {
				continue
			}
			sum := index.Hash(sha256.Sum256([]byte(fmt.Sprint(cam, m))))
			chain := index.ChainHash(prev, sum, cam, start, start.Add(time.Minute))
			rows = append(rows, []any{cam, "f16", int64(1 + m/360), int64(seq), start, start.Add(time.Minute), int64(0), int64(60 * 90000),
				int64(60_000_000), int64(120000), 1500, "H264", 640, 360, "", 900, frags,
				fmt.Sprintf("f16/%s/%s.mp4", cam, start.Format("20060102T150405")), sum[:], prev[:], chain[:]})
			prev = chain
			seq++
		}
	}
	cols := []string{"camera", "facility", "run", "seq", "start_at", "end_at", "media_start", "media_duration", "wall_duration_us",
		"bytes", "frames", "codec", "width", "height", "audio_codec", "init_size", "fragments", "object_key", "sha256", "prev_chain", "chain"}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"recorder_segments"}, cols, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"recorder_gaps"}, []string{"camera", "start_at", "end_at", "reason", "detail"},
		pgx.CopyFromRows(gapRows)); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "ANALYZE recorder_segments; ANALYZE recorder_gaps"); err != nil {
		t.Fatal(err)
	}
	return len(rows), len(gapRows)
}

// TestTimelineOfADayOf16Cameras asks the API for the timeline of 16
// cameras over 24 hours of 60 s segments (an indexed query per camera for
// segments, gaps and events, and one for incident markers) and prints how
// long it takes; it must answer well under 100 ms.
func TestTimelineOfADayOf16Cameras(t *testing.T) {
	pool, ix := newTestIndex(t)
	day := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	var cams []stackCamera
	var ids []string
	for i := range 16 {
		id := fmt.Sprintf("f16-t%02d", i+1)
		cams, ids = append(cams, stackCamera{id: id}), append(ids, id)
	}
	nseg, ngap := seedDay(t, pool, ids, day)
	st, err := store.NewFS(store.FSConfig{Dir: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := newFootageStack(t, pool, ix, st, stackOpts{cameras: cameraInputs(cams)})
	ctx := context.Background()
	typ, sev, desc, fac := "fight", "moderate", "seeded", "f16"
	start, end := day.Add(14*time.Hour), day.Add(14*time.Hour+20*time.Minute)
	var inc registry.Incident
	inc, err = s.reg.CreateIncident(ctx, registry.System("test"), registry.IncidentInput{Facility: &fac, Type: &typ, Severity: &sev,
		Start: &start, End: &end, Description: &desc, Zones: &[]string{"yard"}})
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"cameras": {strings.Join(ids, ",")}, "from": {day.Format(time.RFC3339)}, "to": {day.Add(24 * time.Hour).Format(time.RFC3339)}}
	var took []time.Duration
	var tl struct {
		Cameras []struct {
			Recordings []struct{ Segments int }  `json:"recordings"`
			Gaps       []struct{ Reason string } `json:"gaps"`
		} `json:"cameras"`
		Incidents []struct{ ID int64 } `json:"incidents"`
	}
	for range 7 {
		t0 := time.Now()
		if code, b := s.do(t, "inv", "GET", "/api/v1/timeline?"+q.Encode(), nil, &tl); code != 200 {
			t.Fatalf("timeline: %d %s", code, b)
		}
		took = append(took, time.Since(t0))
	}
	slices.Sort(took)
	segs, gaps := 0, 0
	for _, c := range tl.Cameras {
		for _, r := range c.Recordings {
			segs += r.Segments
		}
		gaps += len(c.Gaps)
	}
	if len(tl.Cameras) != 16 || segs != nseg || gaps != ngap || len(tl.Incidents) != 1 || tl.Incidents[0].ID != inc.ID {
		t.Fatalf("timeline: %d cameras, %d segments of %d, %d gaps of %d, %d incidents", len(tl.Cameras), segs, nseg, gaps, ngap, len(tl.Incidents))
	}
	median := took[len(took)/2]
	t.Logf("timeline of 16 cameras × 24 h (%d segments, %d gaps): median %v, best %v, worst %v over %d requests (HTTP, audit row included)",
		nseg, ngap, median.Round(100*time.Microsecond), took[0].Round(100*time.Microsecond), took[len(took)-1].Round(100*time.Microsecond), len(took))
	if median > 100*time.Millisecond {
		t.Errorf("the timeline took %v (median), want well under 100 ms", median)
	}
}
