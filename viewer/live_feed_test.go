package viewer

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kuzet/kuzet/ingest"
)

func TestLiveFeedPacesCatchUpThenGoesLive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newSynthCam("c1", ingest.CodecH264, ingest.CodecPCMU)
		c.start(time.Now())
		for range 25 { // 1 s of a 2 s GOP, with audio, all in the past
			c.next(time.Now())
		}
		r, err := c.stream.AddReader(ingest.ReaderConfig{Kind: ingest.ReaderLive, Capacity: 128, FromGOP: true})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		feed := newLiveFeed(r, 10, true, time.Now)
		ctx := context.Background()
		out, err := feed.next(ctx)
		if err != nil || out.event == nil || out.event.Tracks == nil {
			t.Fatalf("first item %+v %v, want the tracks event", out, err)
		}
		start := time.Now()
		for i := range 25 {
			out, err := feed.next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if out.unit == nil || !out.unit.Track.Codec.IsVideo() {
				t.Fatalf("item %d: %+v: audio of the past must be skipped", i, out)
			}
			elapsed := time.Since(start)
			if want := time.Duration(i) * 4 * time.Millisecond; elapsed != want || out.ts != int64(i)*360 || !out.catchingUp {
				t.Fatalf("cached unit %d sent at %v with ts %d (catching up %v); want %v, %d", i, elapsed, out.ts, out.catchingUp, want, i*360)
			}
		}
		// Live: sent as soon as read, timestamps at real speed; audio flows.
		time.Sleep(time.Second)
		c.next(time.Now())
		out, _ = feed.next(ctx)
		if out.catchingUp || out.ts != 25*360 {
			t.Fatalf("first live video: ts %d catching up %v, want %d", out.ts, out.catchingUp, 25*360)
		}
		if out, _ = feed.next(ctx); out.unit == nil || out.unit.Track.Codec != ingest.CodecPCMU || out.ts != 0 {
			t.Fatalf("live audio: %+v", out)
		}
		c.next(time.Now())
		if out, _ = feed.next(ctx); out.ts != 25*360+3600 {
			t.Fatalf("second live video ts %d, want %d", out.ts, 25*360+3600)
		}
		if out, _ = feed.next(ctx); out.ts != 320 {
			t.Fatalf("second live audio ts %d, want 320", out.ts)
		}
		// Outage of 3 s: the next timeline continues 3 s later.
		last := int64(25*360 + 3600)
		c.offline(time.Now())
		if out, _ = feed.next(ctx); out.event == nil || out.event.Tracks != nil {
			t.Fatalf("want the offline event, got %+v", out)
		}
		time.Sleep(3 * time.Second)
		c.start(time.Now())
		c.next(time.Now())
		if out, _ = feed.next(ctx); out.event == nil || out.event.Tracks == nil {
			t.Fatalf("want the tracks event, got %+v", out)
		}
		if out, _ = feed.next(ctx); out.unit == nil || !out.unit.Key || out.ts != last+3*90000 || out.catchingUp {
			t.Fatalf("first unit after the outage: ts %d key %v, want %d", out.ts, out.unit != nil && out.unit.Key, last+3*90000)
		}
	})
}

func TestLiveTimeline(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var tl liveTimeline
	steps := []struct {
		name  string
		pts   int64
		speed float64
		at    time.Duration
		brk   bool
		want  int64
	}{
		{"first unit anchors at 0", 9000, 10, 0, false, 0},
		{"compressed", 12600, 10, 4 * time.Millisecond, false, 360},
		{"speed change keeps the old speed for this gap", 16200, 1, 8 * time.Millisecond, false, 720},
		{"real speed", 19800, 1, 48 * time.Millisecond, false, 4320},
		{"B-frame before", 18000, 1, 50 * time.Millisecond, false, 2520},
		{"new timeline after 2 s", 0, 1, 2050 * time.Millisecond, true, 2520 + 2*90000},
		{"continues", 3600, 1, 2090 * time.Millisecond, false, 2520 + 2*90000 + 3600},
	}
	for _, s := range steps {
		if s.brk {
			tl.breakRun()
		}
		if got := tl.next(s.pts, 90000, s.speed, t0.Add(s.at)); got != s.want {
			t.Fatalf("%s: %d, want %d", s.name, got, s.want)
		}
	}
}
