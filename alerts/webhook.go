package alerts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Webhook request headers.
const (
	// HeaderTimestamp is the Unix time (seconds) the delivery was signed.
	HeaderTimestamp = "X-Kuzet-Timestamp"
	// HeaderSignature is "v1=" and the hex HMAC-SHA256, keyed with the
	// webhook's secret, of the timestamp, a ".", and the body.
	HeaderSignature = "X-Kuzet-Signature"
	// HeaderEvent is the event's seq: receivers drop a seq they have
	// seen (a retry after a lost answer delivers it again).
	HeaderEvent = "X-Kuzet-Event"
)

// Sign returns the HeaderSignature value for body sent at ts.
func Sign(secret []byte, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	mac.Write([]byte("."))
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a delivery's timestamp and signature headers against body,
// refusing timestamps further than tolerance from now (replays).
func Verify(secret []byte, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook: bad timestamp")
	}
	ts := time.Unix(sec, 0)
	if d := now.Sub(ts); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook: timestamp %s outside the tolerance", ts.UTC().Format(time.RFC3339))
	}
	if !hmac.Equal([]byte(Sign(secret, ts, body)), []byte(signature)) {
		return fmt.Errorf("webhook: bad signature")
	}
	return nil
}

// webhooks delivers events to the configured receivers: one goroutine and
// one bounded queue per webhook, so a slow or failing receiver delays only
// its own deliveries. Events are delivered in order; each is retried with
// jittered, capped exponential backoff until a 2xx answer or
// WebhookMaxAttempts. A full queue drops the new event (counted).
type webhooks struct {
	cfg     Config
	client  *http.Client
	metrics *Metrics
	log     *slog.Logger
	targets []*target
}

type target struct {
	w     WebhookConfig
	queue chan Event
}

func newWebhooks(cfg Config, client *http.Client, m *Metrics, log *slog.Logger) *webhooks {
	ws := &webhooks{cfg: cfg, client: client, metrics: m, log: log}
	for _, w := range cfg.Webhooks {
		ws.targets = append(ws.targets, &target{w: w, queue: make(chan Event, cfg.WebhookQueue)})
	}
	return ws
}

// enqueue offers e to every webhook that wants it; it never blocks.
func (ws *webhooks) enqueue(e Event) {
	for _, t := range ws.targets {
		if !t.w.wants(e) {
			continue
		}
		select {
		case t.queue <- e:
			if ws.metrics != nil {
				ws.metrics.queue.WithLabelValues(t.w.Name).Set(float64(len(t.queue)))
			}
		default:
			if ws.metrics != nil {
				ws.metrics.dropped.WithLabelValues(t.w.Name).Inc()
			}
			ws.log.Warn("alerts: webhook queue full; event dropped", "webhook", t.w.Name, "event", e.Seq, "alert", e.Alert.ID)
		}
	}
}

func (ws *webhooks) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, t := range ws.targets {
		wg.Go(func() { ws.deliverLoop(ctx, t) })
	}
	wg.Wait()
}

func (ws *webhooks) deliverLoop(ctx context.Context, t *target) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-t.queue:
			if ws.metrics != nil {
				ws.metrics.queue.WithLabelValues(t.w.Name).Set(float64(len(t.queue)))
			}
			ws.deliver(ctx, t, e)
		}
	}
}

// deliver sends e to t until it is taken, attempts run out, or ctx ends.
func (ws *webhooks) deliver(ctx context.Context, t *target, e Event) {
	body, err := json.Marshal(e)
	if err != nil {
		ws.log.Error("alerts: webhook body", "err", err)
		return
	}
	backoff := ws.cfg.WebhookRetryMin
	for attempt := 1; ; attempt++ {
		err := ws.attempt(ctx, t, e, body)
		if err == nil {
			ws.count(t, "ok")
			return
		}
		if ctx.Err() != nil {
			return
		}
		if attempt >= ws.cfg.WebhookMaxAttempts {
			ws.count(t, "failed")
			ws.log.Error("alerts: webhook delivery failed; giving up", "webhook", t.w.Name, "event", e.Seq,
				"alert", e.Alert.ID, "attempts", attempt, "err", err)
			return
		}
		ws.count(t, "retry")
		ws.log.Warn("alerts: webhook delivery failed; will retry", "webhook", t.w.Name, "event", e.Seq,
			"attempt", attempt, "in", backoff, "err", err)
		// Full jitter over the upper half keeps retries of many nodes apart.
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, ws.cfg.WebhookRetryMax)
	}
}

func (ws *webhooks) count(t *target, outcome string) {
	if ws.metrics != nil {
		ws.metrics.deliveries.WithLabelValues(t.w.Name, outcome).Inc()
	}
}

func (ws *webhooks) attempt(ctx context.Context, t *target, e Event, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, t.w.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	now := ws.cfg.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kuzet-alerts")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign([]byte(t.w.Secret), now, body))
	req.Header.Set(HeaderEvent, strconv.FormatInt(e.Seq, 10))
	start := time.Now()
	resp, err := ws.client.Do(req)
	if ws.metrics != nil {
		ws.metrics.webhookTime.WithLabelValues(t.w.Name).Observe(time.Since(start).Seconds())
	}
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}
