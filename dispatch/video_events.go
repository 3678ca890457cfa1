package dispatch

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Video audit: every view of a live stream (a CCTV camera or a unit's
// body-cam) is journalled, so that who watched what, from where and for how
// long is part of the same hash-chained record as the incidents.
//
// One view is the aggregate "view:<session>" with two events of type
// EvVideoViewed: version 1 when the viewer's PeerConnection is created
// (EndedAt empty) and version 2 when it ends, carrying both times and the
// reason. Journalling the start as well as the end means a view that is cut
// short by a node crash still appears in the audit trail; the end event is
// the one that says how long it lasted.
const EvVideoViewed = "video.viewed"

// VideoViewed is the payload of EvVideoViewed.
type VideoViewed struct {
	SessionID string     `json:"session_id"`
	StreamID  string     `json:"stream_id"` // "camera:<id>" or "unit:<id>"
	Viewer    string     `json:"viewer"`    // "user:<name>" or "device:<id>"
	Role      string     `json:"role"`
	Remote    string     `json:"remote,omitempty"` // remote address of the WHEP request
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at,omitempty"` // nil in the start event
	Reason    string     `json:"reason,omitempty"`   // why the view ended
}

// Limits on the audit fields, which come from the video layer (stream ids
// from URLs, remote addresses from the HTTP request).
const (
	maxViewField = 200
)

func (v VideoViewed) validate() error {
	switch {
	case v.SessionID == "" || len(v.SessionID) > maxViewField:
		return fmt.Errorf("%w: video view needs a session id of 1..%d bytes", ErrInvalid, maxViewField)
	case v.StreamID == "" || len(v.StreamID) > maxViewField:
		return fmt.Errorf("%w: video view needs a stream id of 1..%d bytes", ErrInvalid, maxViewField)
	case v.Viewer == "" || len(v.Viewer) > maxViewField, len(v.Role) > 40, len(v.Remote) > maxViewField, len(v.Reason) > maxViewField:
		return fmt.Errorf("%w: video view fields too long or viewer missing", ErrInvalid)
	case v.StartedAt.IsZero():
		return fmt.Errorf("%w: video view needs its start time", ErrInvalid)
	case v.EndedAt != nil && v.EndedAt.Before(v.StartedAt):
		return fmt.Errorf("%w: video view ends before it starts", ErrInvalid)
	}
	return nil
}

// RecordVideoView journals the start (v.EndedAt nil) or the end of a view.
// The start must come first; recording the same phase twice is a no-op, so
// a retried call after a lost answer does not duplicate the audit record.
func (s *Service) RecordVideoView(ctx context.Context, m Meta, v VideoViewed) error {
	if err := v.validate(); err != nil {
		return err
	}
	agg := "view:" + v.SessionID
	_, err := s.exec(ctx, m, fingerprint("video_viewed", v), func(t *tx) error {
		ver := t.st.Version(agg)
		switch {
		case v.EndedAt == nil && ver >= 1, v.EndedAt != nil && ver >= 2:
			return errNoop
		case v.EndedAt != nil && ver == 0:
			// The start event was lost (queue full, journal down): record
			// the start first so the view still has both events.
			start := v
			start.EndedAt, start.Reason = nil, ""
			t.emit(EvVideoViewed, agg, start)
		}
		t.emit(EvVideoViewed, agg, v)
		return nil
	})
	if errors.Is(err, errNoop) {
		return nil
	}
	return err
}
