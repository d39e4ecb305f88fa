package index

import (
	"context"
	"testing"
	"time"
)

func TestSpans(t *testing.T) {
	ix := newIndex(t)
	ctx := context.Background()
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	s := time.Second
	// cam1: 0-10 s, 10-20 s (back to back), 21-30 s (1 s hole: joined),
	// 40-50 s (10 s hole: a new span), 51.000001-60 s (just over 1 s:
	// a new span), 60-70 s being deleted; cam2: 0-70 s.
	var ids []int64
	for i, r := range []struct {
		cam        string
		start, end time.Duration
		bytes      int64
	}{
		{"cam1", 0, 10 * s, 100}, {"cam1", 10 * s, 20 * s, 200}, {"cam1", 21 * s, 30 * s, 400},
		{"cam1", 40 * s, 50 * s, 800}, {"cam1", 51*s + time.Microsecond, 60 * s, 1600}, {"cam1", 60 * s, 70 * s, 3200},
		{"cam2", 0, 70 * s, 6400},
	} {
		sg := seg(r.cam, i, at(r.start), at(r.end))
		sg.Bytes = r.bytes
		if _, err := ix.InsertSegment(ctx, &sg); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sg.ID)
	}
	if err := ix.MarkDeleting(ctx, ids[5]); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name     string
		camera   string
		from, to time.Duration
		want     []Span
	}{
		{"everything", "cam1", -time.Hour, time.Hour, []Span{
			{Start: at(0), End: at(30 * s), Segments: 3, Bytes: 700},
			{Start: at(40 * s), End: at(50 * s), Segments: 1, Bytes: 800},
			{Start: at(51*s + time.Microsecond), End: at(60 * s), Segments: 1, Bytes: 1600},
		}},
		{"overlapping segments only, whole", "cam1", 15 * s, 45 * s, []Span{
			{Start: at(10 * s), End: at(30 * s), Segments: 2, Bytes: 600},
			{Start: at(40 * s), End: at(50 * s), Segments: 1, Bytes: 800},
		}},
		{"end is exclusive", "cam1", 30 * s, 40 * s, nil},
		{"a deleting segment is not recorded footage", "cam1", 60 * s, 70 * s, nil},
		{"another camera", "cam2", 15 * s, 45 * s, []Span{{Start: at(0), End: at(70 * s), Segments: 1, Bytes: 6400}}},
		{"unknown camera", "cam3", -time.Hour, time.Hour, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ix.Spans(ctx, tc.camera, at(tc.from), at(tc.to))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("spans %+v, want %+v", got, tc.want)
			}
			for i := range got {
				g, w := got[i], tc.want[i]
				if !g.Start.Equal(w.Start) || !g.End.Equal(w.End) || g.Segments != w.Segments || g.Bytes != w.Bytes ||
					g.Start.Location() != time.UTC || g.End.Location() != time.UTC {
					t.Errorf("span %d: %+v, want %+v", i, g, w)
				}
			}
		})
	}
}
