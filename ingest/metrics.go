package ingest

import (
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus metrics of ingest. Create one with NewMetrics
// and share it between all streams and sources of a process.
//
// Per-camera health is collected at scrape time from the running sources
// (and the cameras a Manager holds disabled), so a removed camera's series
// disappear with it. Labels are camera and facility, plus a bounded enum
// (state, track, codec, reader) where a metric says so.
type Metrics struct {
	readerDropped *prometheus.CounterVec
	gopOverflow   *prometheus.CounterVec
	health        *healthCollector
}

// NewMetrics creates the ingest metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		readerDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kuzet_ingest_reader_dropped_units_total",
			Help: "Access units a reader of a camera's stream lost because its queue was full.",
		}, []string{"camera", "reader"}),
		gopOverflow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kuzet_ingest_gop_cache_overflow_total",
			Help: "GOPs too large for the GOP cache; readers joining during them wait for the next keyframe.",
		}, []string{"camera"}),
		health: newHealthCollector(),
	}
	for _, c := range []prometheus.Collector{m.readerDropped, m.gopOverflow, m.health} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// forget deletes the per-camera series of the vectors when a camera is
// removed.
func (m *Metrics) forget(camera string) {
	m.readerDropped.DeletePartialMatch(prometheus.Labels{"camera": camera})
	m.gopOverflow.DeletePartialMatch(prometheus.Labels{"camera": camera})
}

// healthReporter is anything that reports a camera's health.
type healthReporter interface{ Health() Health }

// healthCollector turns the health of the registered cameras into metrics
// at scrape time.
type healthCollector struct {
	mu        sync.Mutex
	reporters map[healthReporter]struct{}

	state, fps, bitrate, keyint, width, height, codec, lost, received, reconnects,
	frameAge, clockOffset, queueDrops, bframes, oversize, discont, decodeErr, frames *prometheus.Desc
}

func newHealthCollector() *healthCollector {
	cam := []string{"camera", "facility"}
	d := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append(append([]string{}, cam...), extra...), nil)
	}
	return &healthCollector{
		reporters:   map[healthReporter]struct{}{},
		state:       d("kuzet_ingest_camera_state", "1 for the camera's current state (connecting, online, offline, disabled), 0 for the others.", "state"),
		fps:         d("kuzet_ingest_camera_frames_per_second", "Video frames per second received over the last second."),
		bitrate:     d("kuzet_ingest_camera_bitrate_bits_per_second", "RTP payload bits per second received over the last second, all tracks."),
		keyint:      d("kuzet_ingest_camera_keyframe_interval_seconds", "Media time between the last two keyframes."),
		width:       d("kuzet_ingest_camera_width_pixels", "Picture width declared by the camera's SPS."),
		height:      d("kuzet_ingest_camera_height_pixels", "Picture height declared by the camera's SPS."),
		codec:       d("kuzet_ingest_camera_codec_info", "1 for the codec of each track (video, audio) of the current or last session.", "track", "codec"),
		lost:        d("kuzet_ingest_camera_rtp_packets_lost_total", "RTP packets missing from the sequence."),
		received:    d("kuzet_ingest_camera_rtp_packets_received_total", "RTP packets received."),
		reconnects:  d("kuzet_ingest_camera_reconnects_total", "Sessions attempted after the first."),
		frameAge:    d("kuzet_ingest_camera_last_frame_age_seconds", "Time since the latest video frame arrived (absent before the first)."),
		clockOffset: d("kuzet_ingest_camera_clock_offset_seconds", "Camera clock minus server clock from RTCP sender reports (absent when the camera sends none)."),
		queueDrops:  d("kuzet_ingest_camera_queue_dropped_units_total", "Access units lost by the readers of the camera's stream, all readers."),
		bframes:     d("kuzet_ingest_camera_bframes", "1 when the camera sends B-frames (DTS differs from PTS)."),
		oversize:    d("kuzet_ingest_camera_oversize_units_total", "Access units dropped for exceeding the maximum access-unit size."),
		discont:     d("kuzet_ingest_camera_discontinuities_total", "Timeline breaks within sessions (timestamp jump, sequence gap, SSRC or parameter change)."),
		decodeErr:   d("kuzet_ingest_camera_decode_errors_total", "RTP packets or access units that could not be depacketized."),
		frames:      d("kuzet_ingest_camera_frames_total", "Video access units published."),
	}
}

func (c *healthCollector) add(r healthReporter) {
	c.mu.Lock()
	c.reporters[r] = struct{}{}
	c.mu.Unlock()
}

func (c *healthCollector) remove(r healthReporter) {
	c.mu.Lock()
	delete(c.reporters, r)
	c.mu.Unlock()
}

// snapshot returns the health of every registered camera, one per camera
// id (the latest registered wins), sorted by camera.
func (c *healthCollector) snapshot() []Health {
	c.mu.Lock()
	rs := make([]healthReporter, 0, len(c.reporters))
	for r := range c.reporters {
		rs = append(rs, r)
	}
	c.mu.Unlock()
	byCam := make(map[string]Health, len(rs))
	for _, r := range rs {
		h := r.Health()
		if old, ok := byCam[h.Camera]; ok && old.State != StateDisabled && h.State == StateDisabled {
			continue
		}
		byCam[h.Camera] = h
	}
	out := make([]Health, 0, len(byCam))
	for _, h := range byCam {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Camera < out[j].Camera })
	return out
}

// Describe implements prometheus.Collector.
func (c *healthCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.state, c.fps, c.bitrate, c.keyint, c.width, c.height, c.codec,
		c.lost, c.received, c.reconnects, c.frameAge, c.clockOffset, c.queueDrops, c.bframes, c.oversize,
		c.discont, c.decodeErr, c.frames} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *healthCollector) Collect(ch chan<- prometheus.Metric) {
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	for _, h := range c.snapshot() {
		l := []string{h.Camera, h.Facility}
		m := func(d *prometheus.Desc, t prometheus.ValueType, v float64, extra ...string) {
			ch <- prometheus.MustNewConstMetric(d, t, v, append(l, extra...)...)
		}
		for _, st := range []State{StateConnecting, StateOnline, StateOffline, StateDisabled} {
			v := 0.0
			if h.State == st {
				v = 1
			}
			m(c.state, gauge, v, string(st))
		}
		m(c.fps, gauge, h.FPS)
		m(c.bitrate, gauge, h.Bitrate)
		m(c.keyint, gauge, h.KeyframeInterval.Seconds())
		m(c.width, gauge, float64(h.Width))
		m(c.height, gauge, float64(h.Height))
		if h.VideoCodec != "" {
			m(c.codec, gauge, 1, "video", string(h.VideoCodec))
		}
		if h.AudioCodec != "" {
			m(c.codec, gauge, 1, "audio", string(h.AudioCodec))
		}
		m(c.lost, counter, float64(h.PacketsLost))
		m(c.received, counter, float64(h.PacketsReceived))
		m(c.reconnects, counter, float64(h.Reconnects))
		if !h.LastFrame.IsZero() {
			m(c.frameAge, gauge, h.LastFrameAge.Seconds())
		}
		if h.ClockOffsetKnown {
			m(c.clockOffset, gauge, h.ClockOffset.Seconds())
		}
		m(c.queueDrops, counter, float64(h.QueueDrops))
		b := 0.0
		if h.HasBFrames {
			b = 1
		}
		m(c.bframes, gauge, b)
		m(c.oversize, counter, float64(h.OversizeUnits))
		m(c.discont, counter, float64(h.Discontinuities))
		m(c.decodeErr, counter, float64(h.DecodeErrors))
		m(c.frames, counter, float64(h.Frames))
	}
}
