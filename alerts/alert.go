package alerts

import (
	"fmt"
	"net/url"
	"slices"
	"time"
)

// Kind names a condition a detector watches for.
type Kind string

// The conditions. Camera conditions have the camera as subject; the others
// concern this node's recording and storage.
const (
	KindCameraOffline       Kind = "camera_offline"  // no media for OfflineAfter
	KindCameraFlapping      Kind = "camera_flapping" // FlapReconnects reconnects within FlapWindow
	KindCameraLowFPS        Kind = "camera_low_fps"  // frame rate under LowFPSRatio of nominal for LowFPSFor
	KindKeyframesMissing    Kind = "camera_keyframes_missing"
	KindCameraTamper        Kind = "camera_tamper"        // covered, black or frozen picture
	KindCameraSceneChange   Kind = "camera_scene_change"  // whole view changed (camera moved)
	KindCameraActivity      Kind = "camera_activity"      // motion in view; alerts only where a rule asks
	KindCameraClockOffset   Kind = "camera_clock_offset"  // camera clock off by more than ClockOffsetMax
	KindRecordingLag        Kind = "recording_lag"        // footage waits too long to reach the store
	KindUploadFailures      Kind = "upload_failures"      // uploads keep failing
	KindSpoolFilling        Kind = "spool_filling"        // spool 50/80/95 % full
	KindStoreUnreachable    Kind = "store_unreachable"    // object store down
	KindDatabaseUnreachable Kind = "database_unreachable" // PostgreSQL down
)

// Kinds lists every kind.
func Kinds() []Kind {
	return []Kind{KindCameraOffline, KindCameraFlapping, KindCameraLowFPS, KindKeyframesMissing, KindCameraTamper,
		KindCameraSceneChange, KindCameraActivity, KindCameraClockOffset, KindRecordingLag, KindUploadFailures,
		KindSpoolFilling, KindStoreUnreachable, KindDatabaseUnreachable}
}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return slices.Contains(Kinds(), k) }

// CameraKind reports whether k concerns one camera.
func (k Kind) CameraKind() bool {
	switch k {
	case KindRecordingLag, KindUploadFailures, KindSpoolFilling, KindStoreUnreachable, KindDatabaseUnreachable:
		return false
	}
	return true
}

// Severity ranks alerts.
type Severity string

// Severities, lowest first.
const (
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

// Severities lists the severities, lowest first.
func Severities() []Severity {
	return []Severity{SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}
}

// Valid reports whether s is a known severity.
func (s Severity) Valid() bool { return slices.Contains(Severities(), s) }

// Rank orders severities: 1 (low) to 4 (critical), 0 for unknown.
func (s Severity) Rank() int { return slices.Index(Severities(), s) + 1 }

// Raise returns the next severity up, critical staying critical.
func (s Severity) Raise() Severity {
	r := s.Rank()
	if r <= 0 {
		return SeverityMedium
	}
	return Severities()[min(r, len(Severities())-1)]
}

// defaultSeverity is the severity of a kind when no rule says otherwise;
// ok is false for kinds that alert only where a rule asks (activity).
func defaultSeverity(k Kind) (Severity, bool) {
	switch k {
	case KindCameraOffline, KindCameraTamper, KindStoreUnreachable:
		return SeverityHigh, true
	case KindDatabaseUnreachable:
		return SeverityCritical, true
	case KindCameraClockOffset:
		return SeverityLow, true
	case KindCameraActivity:
		return "", false
	}
	return SeverityMedium, true
}

// State is where an alert is in its life.
type State string

// Alert states.
const (
	StateOpen         State = "open"
	StateAcknowledged State = "acknowledged"
	StateResolved     State = "resolved"
)

// Alert is one alert as stored.
type Alert struct {
	ID       int64    `json:"id"`
	Kind     Kind     `json:"kind"`
	Subject  string   `json:"subject"`          // camera id, or node/part for system alerts
	Camera   string   `json:"camera,omitempty"` // for camera alerts
	Facility string   `json:"facility"`         // "" for system alerts (visible to all-facility scopes only)
	Zone     string   `json:"zone,omitempty"`
	Severity Severity `json:"severity"`
	State    State    `json:"state"`
	Title    string   `json:"title"`
	Detail   string   `json:"detail"`
	// RuleID is the rule that set the severity (0: the default).
	RuleID int64 `json:"rule_id,omitempty"`
	// Since is when the condition began; OpenedAt when the alert opened.
	Since    time.Time `json:"since"`
	OpenedAt time.Time `json:"opened_at"`
	// AckedAt, AckedBy and AckNote are set once acknowledged.
	AckedAt *time.Time `json:"acked_at,omitempty"`
	AckedBy string     `json:"acked_by,omitempty"`
	AckNote string     `json:"ack_note,omitempty"`
	// ResolvedAt and ResolvedBy ("system" when the condition cleared) are
	// set once resolved.
	ResolvedAt    *time.Time `json:"resolved_at,omitempty"`
	ResolvedBy    string     `json:"resolved_by,omitempty"`
	ResolveNote   string     `json:"resolve_note,omitempty"`
	EscalatedAt   *time.Time `json:"escalated_at,omitempty"`
	Escalations   int        `json:"escalations"`
	IncidentID    int64      `json:"incident_id,omitempty"`
	TimelineURL   string     `json:"timeline_url,omitempty"`
	LastChangedAt time.Time  `json:"last_changed_at"`
}

// TimelineURL is the UI link to camera's timeline at t.
func TimelineURL(camera string, t time.Time) string {
	if camera == "" {
		return ""
	}
	return "/#/camera/" + url.PathEscape(camera) + "?t=" + url.QueryEscape(t.UTC().Format(time.RFC3339))
}

// Visible reports whether a principal with scope (all, facilities) may see
// alerts of facility f: system alerts ("") need a scope of all facilities.
func visible(all bool, facilities []string, f string) bool {
	if all {
		return true
	}
	return f != "" && slices.Contains(facilities, f)
}

// EventType says what happened to an alert.
type EventType string

// Event types.
const (
	EventOpened       EventType = "opened"
	EventUpdated      EventType = "updated" // severity or detail changed
	EventEscalated    EventType = "escalated"
	EventAcknowledged EventType = "acknowledged"
	EventResolved     EventType = "resolved"
	EventIncident     EventType = "incident" // an incident was created from it
)

// Event is one change of an alert, as delivered to SSE clients and
// webhooks. Seq is the event's place in the database sequence (0 for an
// event that could not be stored, such as the database being unreachable).
type Event struct {
	Seq   int64     `json:"seq"`
	Type  EventType `json:"type"`
	At    time.Time `json:"at"`
	Alert Alert     `json:"alert"`
}

func (e Event) String() string {
	return fmt.Sprintf("event %d %s alert %d (%s %s)", e.Seq, e.Type, e.Alert.ID, e.Alert.Kind, e.Alert.Subject)
}
