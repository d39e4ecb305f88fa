package alerts

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kuzet/kuzet/registry"
)

// WebhookConfig is one webhook receiver.
type WebhookConfig struct {
	// Name identifies the webhook in metrics and logs: [a-z0-9_-]{1,32}.
	Name string `yaml:"name"`
	// URL is the http:// or https:// endpoint POSTed to, without
	// credentials.
	URL string `yaml:"url"`
	// Secret is the HMAC-SHA256 key that signs each delivery, at least 16
	// bytes.
	Secret string `yaml:"secret"`
	// Facilities limits deliveries to alerts of these facilities; empty:
	// every facility and the system alerts.
	Facilities []string `yaml:"facilities"`
	// MinSeverity drops alerts below it. Default: low (everything).
	MinSeverity Severity `yaml:"min_severity"`
	// Events limits the event types delivered; empty: all of them.
	Events []EventType `yaml:"events"`
	// Timeout bounds one delivery attempt. Default 5s.
	Timeout time.Duration `yaml:"timeout"`
}

// MaxWebhookBytes bounds a webhook configuration document.
const MaxWebhookBytes = 256 << 10

// MaxWebhooks bounds the number of webhooks.
const MaxWebhooks = 32

var webhookNameRE = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

// ParseWebhooks decodes a YAML list of webhooks (a file the configuration
// names) and checks it. Unknown keys are refused. A rejected document is a
// *registry.ValidationError listing every bad field; secrets never appear in
// it.
func ParseWebhooks(data []byte) ([]WebhookConfig, error) {
	if len(data) > MaxWebhookBytes {
		return nil, invalidDoc(fmt.Sprintf("larger than %d bytes", MaxWebhookBytes))
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var ws []WebhookConfig
	if err := dec.Decode(&ws); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, invalidDoc("not a list of webhooks: " + yamlErr(err))
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, invalidDoc("more than one YAML document")
	}
	if err := CheckWebhooks(ws); err != nil {
		return nil, err
	}
	for i := range ws {
		ws[i].setDefaults()
	}
	return ws, nil
}

func invalidDoc(msg string) error {
	return &registry.ValidationError{Fields: []registry.FieldError{{Field: "", Message: msg}}}
}

// yamlErr keeps a decoding error's position and drops the echoed input
// (which could be a secret).
func yamlErr(err error) string {
	s := err.Error()
	if i := strings.Index(s, "line "); i >= 0 {
		s = s[i:]
		if j := strings.IndexAny(s, ":"); j >= 0 {
			s = s[:j]
		}
		return s
	}
	return "malformed YAML"
}

func (w *WebhookConfig) setDefaults() {
	if w.MinSeverity == "" {
		w.MinSeverity = SeverityLow
	}
	if w.Timeout == 0 {
		w.Timeout = 5 * time.Second
	}
}

// CheckWebhooks validates webhook configurations (from ParseWebhooks or
// built by cmd from its own configuration).
func CheckWebhooks(ws []WebhookConfig) error {
	var f fieldErrs
	if len(ws) > MaxWebhooks {
		f.add("", "at most %d webhooks", MaxWebhooks)
	}
	names := map[string]bool{}
	for i, w := range ws {
		p := fmt.Sprintf("[%d].", i)
		switch {
		case !webhookNameRE.MatchString(w.Name):
			f.add(p+"name", "must match [a-z0-9_-]{1,32}")
		case names[w.Name]:
			f.add(p+"name", "duplicate")
		}
		names[w.Name] = true
		if err := checkWebhookURL(w.URL); err != nil {
			f.add(p+"url", "%v", err)
		}
		if len(w.Secret) < 16 || len(w.Secret) > 1024 {
			f.add(p+"secret", "must be 16 to 1024 bytes")
		}
		for j, fac := range w.Facilities {
			if !registry.ValidFacilityID(fac) {
				f.add(fmt.Sprintf("%sfacilities[%d]", p, j), "not a facility id")
			}
		}
		if w.MinSeverity != "" && !w.MinSeverity.Valid() {
			f.add(p+"min_severity", "must be low, medium, high or critical")
		}
		for j, e := range w.Events {
			if !slices.Contains(eventTypes(), e) {
				f.add(fmt.Sprintf("%sevents[%d]", p, j), "unknown event type")
			}
		}
		if w.Timeout < 0 || w.Timeout > time.Minute {
			f.add(p+"timeout", "must be from 0s to 1m")
		}
	}
	if len(f) > 0 {
		return &registry.ValidationError{Fields: f}
	}
	return nil
}

func eventTypes() []EventType {
	return []EventType{EventOpened, EventUpdated, EventEscalated, EventAcknowledged, EventResolved, EventIncident}
}

func checkWebhookURL(s string) error {
	if len(s) > 2048 {
		return errors.New("longer than 2048 bytes")
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("must be http:// or https://")
	}
	if u.Host == "" || u.Opaque != "" {
		return errors.New("needs a host")
	}
	if u.User != nil {
		return errors.New("must not carry credentials (the HMAC signature authenticates)")
	}
	if u.Fragment != "" {
		return errors.New("must not have a fragment")
	}
	return nil
}

// wants reports whether the webhook takes event e.
func (w *WebhookConfig) wants(e Event) bool {
	if len(w.Events) > 0 && !slices.Contains(w.Events, e.Type) {
		return false
	}
	if len(w.Facilities) > 0 && !slices.Contains(w.Facilities, e.Alert.Facility) {
		return false
	}
	return e.Alert.Severity.Rank() >= w.MinSeverity.Rank()
}
