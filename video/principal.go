package video

import (
	"strings"
	"time"
)

// Principal is who calls a WHIP or WHEP endpoint, as the web layer
// authenticated it. The web layer decides who may watch; this package only
// enforces that a "unit:<id>" stream is published by a principal bound to
// that unit.
type Principal struct {
	Subject string // user or device id
	Role    string
	UnitID  string // unit the device or user is bound to, if any
}

// ViewEvent reports a view. Each view produces two events: one when the
// viewer's PeerConnection is created (End is zero) and one when it ends.
type ViewEvent struct {
	SessionID string
	StreamID  string
	Viewer    Principal
	Remote    string // remote address of the HTTP request
	Start     time.Time
	End       time.Time // zero in the start event
	Reason    string    // why the view ended: "delete", "source ended", "peer gone", "shutdown"
}

// StreamKind is the source of a stream.
type StreamKind int

// Stream kinds.
const (
	KindCamera StreamKind = iota + 1 // pulled over RTSP
	KindUnit                         // published over WHIP
)

// ParseStreamID splits "camera:<id>" or "unit:<id>".
func ParseStreamID(s string) (StreamKind, string, error) {
	kind, id, ok := strings.Cut(s, ":")
	if !ok || id == "" || len(s) > 200 || strings.ContainsAny(id, "/?#\x00") {
		return 0, "", ErrBadStreamID
	}
	switch kind {
	case "camera":
		return KindCamera, id, nil
	case "unit":
		return KindUnit, id, nil
	}
	return 0, "", ErrBadStreamID
}
