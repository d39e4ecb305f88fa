package alerts

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// hubRing is how many recent events the hub keeps for clients resuming
// with a Last-Event-ID; older ones are read from the database.
const hubRing = 1024

// hub fans the event feed out to SSE clients. It reads new events from
// the database when told (a local commit, or a NOTIFY from any node) and
// every PollInterval, keeps the latest in a ring, and hands each to the
// subscribers whose filter takes it.
//
// Backpressure: a subscriber has a fixed buffer (SSEBuffer); one that is
// full is cut off (its done channel closes, kuzet_alerts_sse_dropped_total
// counts it) and its client reconnects with its Last-Event-ID, to be
// served from the ring or the database. The hub never blocks on a client.
type hub struct {
	cfg     Config
	pool    *pgxpool.Pool
	st      *store
	metrics *Metrics
	log     *slog.Logger
	wake    chan struct{}

	mu    sync.Mutex
	ready bool
	last  int64
	ring  []Event
	subs  map[*subscriber]struct{}
}

type subscriber struct {
	ch     chan Event
	filter func(Event) bool
	done   chan struct{} // closed when cut off
	cut    bool
}

func newHub(cfg Config, pool *pgxpool.Pool, st *store, m *Metrics, log *slog.Logger) *hub {
	return &hub{cfg: cfg, pool: pool, st: st, metrics: m, log: log, wake: make(chan struct{}, 1), subs: map[*subscriber]struct{}{}}
}

// poke asks the hub to read the feed now.
func (h *hub) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func (h *hub) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { h.listen(ctx) })
	t := time.NewTicker(h.cfg.PollInterval)
	defer t.Stop()
	for {
		h.load(ctx)
		select {
		case <-ctx.Done():
			return
		case <-h.wake:
		case <-t.C:
		}
	}
}

// listen turns NOTIFYs of new events (from any node) into pokes. It holds
// one connection out of the pool while it listens.
func (h *hub) listen(ctx context.Context) {
	for ctx.Err() == nil {
		err := h.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		h.log.Warn("alerts: event notifications interrupted; polling meanwhile", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(h.cfg.PollInterval):
		}
	}
}

func (h *hub) listenOnce(ctx context.Context) error {
	pc, err := h.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	conn := pc.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	h.poke() // events may have come while not listening
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		h.poke()
	}
}

// load reads the events after the last one loaded and fans them out.
func (h *hub) load(ctx context.Context) {
	h.mu.Lock()
	ready, last := h.ready, h.last
	h.mu.Unlock()
	if !ready {
		seq, err := h.st.lastSeq(ctx)
		if err != nil {
			return
		}
		h.mu.Lock()
		h.ready, h.last = true, seq
		h.mu.Unlock()
		return
	}
	for ctx.Err() == nil {
		evs, err := h.st.eventsAfter(ctx, last, 500)
		if err != nil {
			if ctx.Err() == nil {
				h.log.Warn("alerts: reading the event feed", "err", err)
			}
			return
		}
		h.mu.Lock()
		for _, e := range evs {
			h.ring = append(h.ring, e)
			h.fanOut(e)
			h.last = e.Seq
		}
		if n := len(h.ring); n > hubRing {
			h.ring = append(h.ring[:0], h.ring[n-hubRing:]...)
		}
		last = h.last
		h.mu.Unlock()
		if len(evs) < 500 {
			return
		}
	}
}

// transient hands an event that could not be stored to the subscribers.
func (h *hub) transient(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fanOut(e)
}

// fanOut offers e to every subscriber; called with h.mu held.
func (h *hub) fanOut(e Event) {
	for s := range h.subs {
		if s.cut || !s.filter(e) {
			continue
		}
		select {
		case s.ch <- e:
		default:
			s.cut = true
			close(s.done)
			delete(h.subs, s)
			if h.metrics != nil {
				h.metrics.sseDropped.Inc()
			}
		}
	}
}

// subscribe registers a subscriber. It returns the seq of the last event
// loaded: events after it come through the subscriber's channel; those up
// to it are in the ring (backlog) or the database. ready is false while
// the hub has not read the feed yet (last is then unknown).
func (h *hub) subscribe(filter func(Event) bool) (s *subscriber, last int64, ready bool) {
	s = &subscriber{ch: make(chan Event, h.cfg.SSEBuffer), filter: filter, done: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[s] = struct{}{}
	if h.metrics != nil {
		h.metrics.sseClients.Inc()
	}
	return s, h.last, h.ready
}

func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, s)
	if h.metrics != nil {
		h.metrics.sseClients.Dec()
	}
}

// backlog returns the events after `after` up to `upTo` from the ring, or
// ok false when the ring does not reach back that far.
func (h *hub) backlog(after, upTo int64) (evs []Event, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.ring) == 0 || h.ring[0].Seq > after+1 {
		return nil, after >= upTo
	}
	for _, e := range h.ring {
		if e.Seq > after && e.Seq <= upTo {
			evs = append(evs, e)
		}
	}
	return evs, true
}
