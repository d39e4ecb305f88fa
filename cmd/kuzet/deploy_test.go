package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"gopkg.in/yaml.v3"

	"github.com/kuzet/kuzet/alerts"
	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/internal/testenv"
	"github.com/kuzet/kuzet/recorder"
	"github.com/kuzet/kuzet/recorder/store"
)

// The ops artefacts in deploy/ are checked against the process: the
// Prometheus rules with promtool (syntax and their unit tests), and every
// metric the rules and the Grafana dashboard query must be one the wired-up
// process exports.

// describing records every collector registered, to list the metric names
// a process exports even before their first sample.
type describing struct {
	*prometheus.Registry
	collectors []prometheus.Collector
}

func (d *describing) Register(c prometheus.Collector) error {
	d.collectors = append(d.collectors, c)
	return d.Registry.Register(c)
}

func (d *describing) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := d.Register(c); err != nil {
			panic(err)
		}
	}
}

var fqNameRE = regexp.MustCompile(`fqName: "([^"]+)"`)

// exportedMetrics builds the metrics registry the way serve does (the
// process collectors, kuzet_up, and the metrics of the store, ingest, the
// recorder and the alert path) and returns every series name it can export,
// with the _bucket, _sum and _count series of histograms.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	reg := &describing{Registry: prometheus.NewRegistry()}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
		prometheus.NewGauge(prometheus.GaugeOpts{Name: "kuzet_up", Help: "1 while the Kuzet service runs."}))
	if _, err := store.NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := ingest.NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := recorder.NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := alerts.NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, c := range reg.collectors {
		ch := make(chan *prometheus.Desc, 64)
		go func() {
			c.Describe(ch)
			close(ch)
		}()
		for d := range ch {
			m := fqNameRE.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read the name of %s", d)
			}
			names[m[1]] = true
		}
	}
	// Histograms (and summaries) export these series too; the gathered
	// families say which names are histograms once observed, so allow the
	// suffixes for every name.
	for n := range names {
		for _, s := range []string{"_bucket", "_sum", "_count"} {
			names[n+s] = true
		}
	}
	if !names["kuzet_ingest_camera_frames_per_second"] || !names["kuzet_alerts_open"] || !names["kuzet_recorder_spool_bytes"] {
		t.Fatalf("registry incomplete: %d names", len(names))
	}
	return names
}

var kuzetMetricRE = regexp.MustCompile(`\bkuzet_[a-zA-Z0-9_]+`)

// checkExprs fails for every kuzet_ metric an expression uses that the
// process does not export.
func checkExprs(t *testing.T, where string, exprs []string, exported map[string]bool) int {
	t.Helper()
	n := 0
	for _, e := range exprs {
		for _, m := range kuzetMetricRE.FindAllString(e, -1) {
			n++
			if !exported[m] {
				t.Errorf("%s queries %s, which no component exports (in %q)", where, m, e)
			}
		}
	}
	return n
}

func deployDir(t *testing.T) string {
	return filepath.Join(testenv.RepoRoot(t), "deploy")
}

func TestPrometheusRules(t *testing.T) {
	t.Parallel()
	promtool := testenv.Promtool(t)
	dir := filepath.Join(deployDir(t), "prometheus")
	rules := filepath.Join(dir, "kuzet-alerts.yml")
	for _, args := range [][]string{{"check", "rules", rules}, {"test", "rules", "kuzet-alerts.test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	b, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert  string            `yaml:"alert"`
				Expr   string            `yaml:"expr"`
				Labels map[string]string `yaml:"labels"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
			if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) {
				t.Errorf("rule %s: severity %q", r.Alert, r.Labels["severity"])
			}
		}
	}
	if n := checkExprs(t, "rule", exprs, exportedMetrics(t)); n < 20 {
		t.Errorf("only %d metric references in the rules", n)
	}
}

func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(deployDir(t), "grafana", "kuzet-health.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	if dash["uid"] == "" || dash["title"] == "" {
		t.Fatal("dashboard without uid or title")
	}
	var exprs []string
	ids := map[float64]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if id, ok := x["id"].(float64); ok && x["type"] != nil && x["gridPos"] != nil {
				if ids[id] {
					t.Errorf("panel id %v used twice", id)
				}
				ids[id] = true
			}
			for k, c := range x {
				if s, ok := c.(string); ok && (k == "expr" || k == "definition") {
					exprs = append(exprs, s)
				}
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(dash)
	if len(exprs) < 30 {
		t.Fatalf("only %d queries in the dashboard", len(exprs))
	}
	n := checkExprs(t, "dashboard", exprs, exportedMetrics(t))
	t.Logf("%d panels, %d queries, %d metric references, all exported", len(ids), len(exprs), n)
	// The panels the issue asks for: camera health, recording, storage.
	for _, want := range []string{"kuzet_ingest_camera_state", "kuzet_ingest_camera_frames_per_second",
		"kuzet_ingest_camera_bitrate_bits_per_second", "kuzet_ingest_camera_rtp_packets_lost_total",
		"kuzet_ingest_camera_reconnects_total", "kuzet_ingest_camera_last_frame_age_seconds",
		"kuzet_ingest_camera_clock_offset_seconds", "kuzet_ingest_reader_dropped_units_total",
		"kuzet_recorder_recording_lag_seconds", "kuzet_recorder_upload_seconds_bucket", "kuzet_recorder_spool_bytes",
		"kuzet_alerts_open"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("dashboard does not show %s", want)
		}
	}
}
