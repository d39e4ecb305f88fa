package main

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/kuzet/kuzet/recorder"
	"github.com/kuzet/kuzet/recorder/index"
	"github.com/kuzet/kuzet/viewer"
)

// The adapters below carry events across branches of the data flow, which
// never import each other: the registry places legal holds in the
// recorder's index, and the API reads recordings and gaps from it.

// holdPlacer is the registry's HoldPlacer backed by the recorder, which
// records the hold in its index and sets the object store's legal hold on
// every covered object.
type holdPlacer struct{ rec *recorder.Recorder }

// PlaceHold places the hold. A hold that is recorded but whose object-lock
// holds are still being applied (ErrHoldPending) is placed: the recorder
// retries them in the background and retention already honours the hold.
func (h holdPlacer) PlaceHold(ctx context.Context, camera string, from, to time.Time, reason string, incidentID int64) error {
	err := h.rec.PlaceHold(ctx, camera, from, to, reason, incidentID)
	if errors.Is(err, recorder.ErrHoldPending) {
		return nil
	}
	return err
}

// ReleaseHold releases every hold of the incident on the camera, whatever
// its range (the registry widens an incident's hold as the incident
// changes, so there may be several).
func (h holdPlacer) ReleaseHold(ctx context.Context, camera string, incidentID int64) error {
	err := h.rec.ReleaseCameraIncidentHolds(ctx, camera, incidentID, "incident hold released")
	if errors.Is(err, recorder.ErrHoldPending) {
		return nil // released in the index; object holds lifted in the background
	}
	return err
}

// footageIndex is the API's FootageIndex backed by the recorder index.
type footageIndex struct{ ix *index.Index }

func (f footageIndex) Recordings(ctx context.Context, camera string, from, to time.Time) ([]viewer.FootageRecording, error) {
	segs, err := f.ix.Segments(ctx, camera, from, to)
	if err != nil {
		return nil, err
	}
	out := make([]viewer.FootageRecording, len(segs))
	for i, s := range segs {
		out[i] = viewer.FootageRecording{ID: strconv.FormatInt(s.ID, 10), Start: s.Start, End: s.End, Bytes: s.Bytes}
	}
	return out, nil
}

func (f footageIndex) Gaps(ctx context.Context, camera string, from, to time.Time) ([]viewer.FootageGap, error) {
	gaps, err := f.ix.Gaps(ctx, camera, from, to)
	if err != nil {
		return nil, err
	}
	out := make([]viewer.FootageGap, len(gaps))
	for i, g := range gaps {
		end := g.End
		if end.IsZero() {
			end = to // still open: the camera is down now
		}
		out[i] = viewer.FootageGap{Start: g.Start, End: end, Reason: g.Reason}
	}
	return out, nil
}
