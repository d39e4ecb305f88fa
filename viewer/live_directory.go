package viewer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/kuzet/kuzet/ingest"
	"github.com/kuzet/kuzet/registry"
)

// liveRecords is what LiveDirectory reads of the registry; *registry.Registry
// has it.
type liveRecords interface {
	ListFacilities(ctx context.Context, s registry.Scope, p registry.Page) ([]registry.Facility, error)
	ListZones(ctx context.Context, facility string, p registry.Page) ([]registry.Zone, error)
	ListCameras(ctx context.Context, s registry.Scope, f registry.CameraFilter, p registry.Page) ([]registry.Camera, error)
	Camera(ctx context.Context, id string) (registry.Camera, error)
}

// CameraHealthSource gives the ingest health of a camera; *ingest.Manager
// is one. ok is false for a camera ingest does not know.
type CameraHealthSource interface {
	CameraHealth(id string) (h ingest.Health, ok bool)
}

// LiveDirectory is the CameraDirectory of a Kuzet node: camera records from
// the registry, states and reasons from ingest. It keeps no state.
type LiveDirectory struct {
	records liveRecords
	health  CameraHealthSource
}

// NewLiveDirectory returns a directory over records (the registry) and
// health (the ingest manager).
func NewLiveDirectory(records liveRecords, health CameraHealthSource) (*LiveDirectory, error) {
	if records == nil || health == nil {
		return nil, errors.New("live directory: records and health are required")
	}
	return &LiveDirectory{records: records, health: health}, nil
}

// The directory reads every facility (registry.Scope{All: true}): the live
// endpoints filter by the caller's scope themselves.

const liveDirPage = 500

// LiveFacilities lists every facility.
func (d *LiveDirectory) LiveFacilities(ctx context.Context) ([]LiveFacility, error) {
	var out []LiveFacility
	for off := 0; ; off += liveDirPage {
		fs, err := d.records.ListFacilities(ctx, registry.Scope{All: true}, registry.Page{Limit: liveDirPage, Offset: off})
		if err != nil {
			return nil, fmt.Errorf("live facilities: %w", err)
		}
		for _, f := range fs {
			out = append(out, LiveFacility{ID: f.ID, Name: f.Name})
		}
		if len(fs) < liveDirPage {
			return out, nil
		}
	}
}

// LiveCameras lists the cameras of facility ("" for all), by zone then
// name, with their state.
func (d *LiveDirectory) LiveCameras(ctx context.Context, facility string) ([]LiveCamera, error) {
	var cams []registry.Camera
	for off := 0; ; off += liveDirPage {
		cs, err := d.records.ListCameras(ctx, registry.Scope{All: true}, registry.CameraFilter{Facility: facility}, registry.Page{Limit: liveDirPage, Offset: off})
		if err != nil {
			return nil, fmt.Errorf("live cameras: %w", err)
		}
		cams = append(cams, cs...)
		if len(cs) < liveDirPage {
			break
		}
	}
	zones := map[string]map[string]string{} // facility → zone id → name
	out := make([]LiveCamera, 0, len(cams))
	for _, c := range cams {
		if zones[c.Facility] == nil {
			zs, err := d.records.ListZones(ctx, c.Facility, registry.Page{Limit: liveDirPage})
			if err != nil {
				return nil, fmt.Errorf("live cameras: zones of %s: %w", c.Facility, err)
			}
			zones[c.Facility] = map[string]string{}
			for _, z := range zs {
				zones[c.Facility][z.ID] = z.Name
			}
		}
		out = append(out, d.liveCamera(c, zones[c.Facility][c.Zone]))
	}
	sortLiveCameras(out)
	return out, nil
}

// LiveCamera returns one camera with its state.
func (d *LiveDirectory) LiveCamera(ctx context.Context, id string) (LiveCamera, error) {
	if !registry.ValidCameraID(id) {
		return LiveCamera{}, fmt.Errorf("%w: %q", ErrUnknownCamera, id)
	}
	c, err := d.records.Camera(ctx, id)
	if errors.Is(err, registry.ErrNotFound) {
		return LiveCamera{}, fmt.Errorf("%w: %s", ErrUnknownCamera, id)
	}
	if err != nil {
		return LiveCamera{}, fmt.Errorf("live camera %s: %w", id, err)
	}
	zoneName := ""
	zs, err := d.records.ListZones(ctx, c.Facility, registry.Page{Limit: liveDirPage})
	if err == nil {
		for _, z := range zs {
			if z.ID == c.Zone {
				zoneName = z.Name
			}
		}
	}
	return d.liveCamera(c, zoneName), nil
}

func (d *LiveDirectory) liveCamera(c registry.Camera, zoneName string) LiveCamera {
	lc := LiveCamera{ID: c.ID, Name: c.Name, Facility: c.Facility, Zone: c.Zone, ZoneName: zoneName}
	h, ok := d.health.CameraHealth(c.ID)
	switch {
	case !c.Enabled:
		lc.State, lc.Reason, lc.Detail = string(ingest.StateDisabled), "disabled", "the camera is disabled"
	case !ok:
		lc.State, lc.Reason, lc.Detail = string(ingest.StateOffline), "not_pulled", "this server does not pull the camera"
	default:
		lc.State, lc.Since = string(h.State), h.Since
		lc.Codec, lc.Audio = string(h.VideoCodec), string(h.AudioCodec)
		if h.State != ingest.StateOnline {
			lc.Reason = string(h.Reason)
			lc.Detail = offlineText(h)
		}
	}
	return lc
}

// offlineText says why a camera is not online, for the people at the wall.
func offlineText(h ingest.Health) string {
	var s string
	switch h.State {
	case ingest.StateConnecting:
		s = "connecting to the camera"
	case ingest.StateDisabled:
		s = "the camera is disabled"
	default:
		switch h.Reason {
		case ingest.OfflineTimeout:
			s = "no video from the camera (timeout)"
		case ingest.OfflineRefused:
			s = "the camera refused the connection"
		case ingest.OfflineUnreachable:
			s = "the camera cannot be reached"
		case ingest.OfflineAuthFailed:
			s = "the camera refused Kuzet's credentials"
		case ingest.OfflineNotFound:
			s = "the camera has no such stream"
		case ingest.OfflineUnsupportedCodec:
			s = "the camera sends a codec Kuzet does not support"
		case ingest.OfflineEOF:
			s = "the camera closed the connection"
		case ingest.OfflineTLS:
			s = "TLS with the camera failed"
		case ingest.OfflineProtocol:
			s = "the camera's stream is malformed"
		case ingest.OfflineStopped:
			s = "ingest stopped"
		default:
			s = "the camera is offline"
		}
	}
	if h.Detail != "" {
		s += " (" + h.Detail + ")"
	}
	return s
}

func sortLiveCameras(cs []LiveCamera) {
	slices.SortFunc(cs, func(a, b LiveCamera) int {
		return cmp.Or(cmp.Compare(a.Facility, b.Facility), cmp.Compare(a.ZoneName, b.ZoneName),
			cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
}
