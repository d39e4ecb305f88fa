package ingest

import (
	"context"
	"net"
	"testing"
	"testing/synctest"
	"time"
)

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    float64 // the jitter draw
		want []time.Duration
	}{
		{"no jitter", 0.999999, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
			16 * time.Second, 30 * time.Second, 30 * time.Second}},
		{"most jitter", 0, []time.Duration{time.Second, time.Second, 2 * time.Second, 4 * time.Second,
			8 * time.Second, 15 * time.Second, 15 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackoff(time.Second, 30*time.Second)
			b.rand = func() float64 { return tc.r }
			for i, want := range tc.want {
				got := b.next().Round(time.Millisecond)
				if got != want {
					t.Fatalf("delay %d = %v, want %v", i, got, want)
				}
			}
			b.reset()
			if got := b.next().Round(time.Millisecond); got != time.Second {
				t.Fatalf("after reset %v", got)
			}
		})
	}
	// Many attempts never overflow or leave the bounds.
	b := newBackoff(time.Second, 30*time.Second)
	for i := 0; i < 1000; i++ {
		if d := b.next(); d < time.Second || d > 30*time.Second {
			t.Fatalf("attempt %d: %v", i, d)
		}
	}
}

func TestRetryDelayResetsAfterStableSession(t *testing.T) {
	b := newBackoff(time.Second, 30*time.Second)
	b.rand = func() float64 { return 0.999999 }
	for _, tc := range []struct {
		online time.Duration
		want   time.Duration
	}{
		{0, time.Second},                   // never online
		{5 * time.Second, 2 * time.Second}, // flapping: grows
		{0, 4 * time.Second},
		{30 * time.Second, time.Second}, // stable: starts over
		{time.Second, 2 * time.Second},
	} {
		if got := retryDelay(b, tc.online, 30*time.Second).Round(time.Millisecond); got != tc.want {
			t.Fatalf("after a session online %v: %v, want %v", tc.online, got, tc.want)
		}
	}
}

// The source retries forever with the backoff: in fake time, a camera that
// refuses for ten minutes sees about one attempt per 15-30 s once the
// backoff has grown, never a tight loop.
func TestSourceRetrySchedule(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	synctest.Test(t, func(t *testing.T) {
		st := NewStream(StreamConfig{Camera: "c"}, nil, nil)
		src, err := NewSource(SourceConfig{Camera: "c", URL: "rtsp://" + addr + "/x"}, st, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = src.Run(ctx)
		}()
		defer func() {
			cancel()
			<-done
		}()
		var at []time.Duration
		start := time.Now()
		last := uint64(0)
		for time.Since(start) < 10*time.Minute {
			time.Sleep(100 * time.Millisecond)
			if h := src.Health(); h.Reconnects != last {
				last = h.Reconnects
				at = append(at, time.Since(start))
			}
		}
		if h := src.Health(); h.Reason != OfflineRefused {
			t.Fatalf("reason %q", h.Reason)
		}
		// Delays 1, [1,2], [2,4], [4,8], [8,16], [15,30]... : at most 6 +
		// 600/15 attempts, at least 3 + 570/30.
		if n := len(at); n < 20 || n > 47 {
			t.Fatalf("%d attempts in 10 minutes: %v", n, at)
		}
		for i := 1; i < len(at); i++ {
			if d := at[i] - at[i-1]; d > 30*time.Second+200*time.Millisecond || d < 900*time.Millisecond {
				t.Fatalf("attempt %d came %v after the one before", i, d)
			}
		}
		t.Logf("%d attempts in 10 minutes, first at %v, last gap %v", len(at), at[0], at[len(at)-1]-at[len(at)-2])
	})
}
