package viewer

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kuzet/kuzet/registry"
)

// The timeline of a set of cameras over a window: for each camera its
// recorded spans (consecutive segments merged), its gaps with their reasons
// and its events, plus the incidents of those cameras that overlap the
// window. Everything comes from indexed queries (the recorder's segment
// and gap indexes by camera and time, the alert events by camera and time,
// incidents by facility and time), run for the cameras in parallel.

// timelineSpan is a stretch of continuous recording.
type timelineSpan struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Segments int       `json:"segments"`
	Bytes    int64     `json:"bytes"`
}

// timelineCamera is one camera's timeline.
type timelineCamera struct {
	Camera     registry.Camera `json:"camera"`
	Recordings []timelineSpan  `json:"recordings"`
	Gaps       []FootageGap    `json:"gaps"`
	Events     []FootageEvent  `json:"events"`
}

// timelineIncident is an incident marker.
type timelineIncident struct {
	ID       int64      `json:"id"`
	Type     string     `json:"type"`
	Severity string     `json:"severity"`
	Status   string     `json:"status"`
	Start    time.Time  `json:"start"`
	End      *time.Time `json:"end"`
	Cameras  []string   `json:"cameras"`
}

// timelineView is the answer of GET /api/v1/timeline.
type timelineView struct {
	From      time.Time          `json:"from"`
	To        time.Time          `json:"to"`
	Incident  *int64             `json:"incident"`
	Cameras   []timelineCamera   `json:"cameras"`
	Incidents []timelineIncident `json:"incidents"`
}

// spanJoin is the largest hole between two segments that still counts as
// continuous recording.
const spanJoin = time.Second

// RecordedSpan is a stretch of continuous recording: consecutive segments,
// none more than a second after the previous one's end.
type RecordedSpan struct {
	Start, End time.Time
	Segments   int
	Bytes      int64
}

// SpanIndex lists a camera's recording spans overlapping [from, to) in
// time order, merged by the index itself (one row per span). When the
// Recordings given to Playback implement it, the timeline uses it rather
// than merging every segment row of FootageIndex.Recordings.
type SpanIndex interface {
	RecordedSpans(ctx context.Context, camera string, from, to time.Time) ([]RecordedSpan, error)
}

// spans returns camera's recording spans in [from, to).
func (a *API) spans(ctx context.Context, camera string, from, to time.Time) ([]timelineSpan, error) {
	if a.playback != nil {
		if si, ok := a.playback.recs.(SpanIndex); ok {
			rs, err := si.RecordedSpans(ctx, camera, from, to)
			if err != nil {
				return nil, err
			}
			out := make([]timelineSpan, len(rs))
			for i, r := range rs {
				out[i] = timelineSpan{Start: r.Start.UTC(), End: r.End.UTC(), Segments: r.Segments, Bytes: r.Bytes}
			}
			return out, nil
		}
	}
	recs, err := a.footage.Recordings(ctx, camera, from, to)
	if err != nil {
		return nil, err
	}
	return mergeRecordings(recs), nil
}

// mergeRecordings merges consecutive recordings into spans.
func mergeRecordings(recs []FootageRecording) []timelineSpan {
	out := []timelineSpan{}
	for _, r := range recs {
		if n := len(out); n > 0 && !r.Start.After(out[n-1].End.Add(spanJoin)) {
			if r.End.After(out[n-1].End) {
				out[n-1].End = r.End
			}
			out[n-1].Segments++
			out[n-1].Bytes += r.Bytes
			continue
		}
		out = append(out, timelineSpan{Start: r.Start, End: r.End, Segments: 1, Bytes: r.Bytes})
	}
	return out
}

// timeline answers GET /api/v1/timeline.
func (a *API) timeline(w http.ResponseWriter, r *http.Request, p registry.Principal) {
	q := apiQuery{r: r}
	var cams []string
	if v, ok := q.get("cameras"); ok && v != "" {
		cams = strings.Split(v, ",")
	}
	inc, _ := q.integer("incident", 1, 1<<62)
	from, to := q.time("from", false), q.time("to", false)
	reason := q.text("reason", maxReasonLen, false)
	if q.err != nil {
		a.refuse(w, r, q.err)
		return
	}
	fs, ok := a.footageAccess(w, r, p, registry.ActionFootageView, registry.AuditFootageQuery,
		footageRequest{incident: inc, cameras: cams, from: from, to: to})
	if !ok {
		return
	}
	e := registry.EntryFor(p, a.client(r), registry.AuditFootageQuery)
	e.Facility, e.Objects, e.From, e.To, e.Reason = fs.facility, fs.objects(), fs.from, fs.to, reason
	e.Detail, e.Outcome = "timeline", registry.OutcomeOK
	if err := a.reg.Audit().Record(r.Context(), e); err != nil {
		a.fail(w, r, "timeline", fmt.Errorf("%w: %v", registry.ErrAudit, err))
		return
	}
	out, err := a.buildTimeline(r.Context(), fs)
	if err != nil {
		a.footageUnavailable(w, r, err)
		return
	}
	a.writeJSON(w, http.StatusOK, out)
}

// buildTimeline queries every camera's recordings, gaps and events in
// parallel (at most 8 at once), and the incidents overlapping the window.
func (a *API) buildTimeline(ctx context.Context, fs footageScope) (timelineView, error) {
	out := timelineView{From: fs.from, To: fs.to, Cameras: make([]timelineCamera, len(fs.cameras)), Incidents: []timelineIncident{}}
	if fs.incident != nil {
		id := fs.incident.ID
		out.Incident = &id
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	errs := make([]error, len(fs.cameras)+1)
	for i, cam := range fs.cameras {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			tc := timelineCamera{Camera: cam, Gaps: []FootageGap{}, Events: []FootageEvent{}}
			var err error
			tc.Recordings, err = a.spans(ctx, cam.ID, fs.from, fs.to)
			if err == nil {
				var gaps []FootageGap
				gaps, err = a.footage.Gaps(ctx, cam.ID, fs.from, fs.to)
				tc.Gaps = append(tc.Gaps, gaps...)
			}
			if err == nil && a.events != nil {
				var evs []FootageEvent
				evs, err = a.events.Events(ctx, cam.ID, fs.from, fs.to)
				tc.Events = append(tc.Events, evs...)
			}
			if err != nil {
				errs[i] = fmt.Errorf("camera %s: %w", cam.ID, err)
				cancel()
				return
			}
			out.Cameras[i] = tc
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		ids := fs.cameraIDs()
		is, err := a.reg.ListIncidents(ctx, registry.Scope{All: true},
			registry.IncidentFilter{Facility: fs.facility, From: fs.from, To: fs.to}, registry.Page{Limit: 500})
		if err != nil {
			errs[len(fs.cameras)] = err
			cancel()
			return
		}
		for _, in := range is {
			var cs []string
			for _, c := range in.Cameras {
				if slices.Contains(ids, c) {
					cs = append(cs, c)
				}
			}
			if len(cs) == 0 && (fs.incident == nil || fs.incident.ID != in.ID) {
				continue
			}
			if cs == nil {
				cs = []string{}
			}
			out.Incidents = append(out.Incidents, timelineIncident{ID: in.ID, Type: in.Type, Severity: in.Severity, Status: in.Status,
				Start: in.Start, End: in.End, Cameras: cs})
		}
	}()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return out, err
		}
	}
	return out, nil
}
