package video

import "errors"

// Sentinel errors. Callers test them with errors.Is; the HTTP handlers map
// them to status codes and a JSON {code, message} body (see httperr.go).
var (
	// ErrInvalidConfig means Config failed validation.
	ErrInvalidConfig = errors.New("video: invalid config")
	// ErrClosed means the Server was closed.
	ErrClosed = errors.New("video: server closed")
	// ErrBadStreamID means a stream id is not "camera:<id>" or "unit:<id>".
	ErrBadStreamID = errors.New(`video: stream id must be "camera:<id>" or "unit:<id>"`)
	// ErrUnknownCamera means no camera with that id is registered.
	ErrUnknownCamera = errors.New("video: unknown camera")
	// ErrStreamNotLive means nobody publishes the requested unit stream.
	ErrStreamNotLive = errors.New("video: stream is not live")
	// ErrStreamBusy means a unit stream already has a publisher.
	ErrStreamBusy = errors.New("video: stream already has a publisher")
	// ErrForbidden means the principal may not publish to that stream.
	ErrForbidden = errors.New("video: principal may not publish this stream")
	// ErrSDPTooLarge means an SDP body exceeded Config.MaxSDPBytes.
	ErrSDPTooLarge = errors.New("video: SDP body too large")
	// ErrBadSDP means the body was not a parseable SDP offer.
	ErrBadSDP = errors.New("video: malformed SDP offer")
	// ErrUnsupportedCodec means the offer or the camera carries no codec a
	// browser can receive without transcoding (H.264 video, Opus audio).
	ErrUnsupportedCodec = errors.New("video: unsupported codec")
	// ErrCameraCodec means the camera sends a codec browsers cannot play
	// over WebRTC (H.265, MJPEG...) and no H.264 substream is configured.
	ErrCameraCodec = errors.New("video: camera codec not playable in browsers")
	// ErrCameraUnreachable means the RTSP source could not be reached or
	// refused the session.
	ErrCameraUnreachable = errors.New("video: camera unreachable")
	// ErrCameraTimeout means the RTSP source did not deliver a stream within
	// Config.ConnectTimeout.
	ErrCameraTimeout = errors.New("video: camera did not answer in time")
	// ErrUnknownSession means a DELETE named a session that does not exist.
	ErrUnknownSession = errors.New("video: unknown session")
	// ErrNotImplemented is returned for WHIP/WHEP PATCH (trickle ICE / ICE
	// restart): clients must gather candidates before sending the offer.
	ErrNotImplemented = errors.New("video: not implemented")
	// ErrBadCamera means a camera record failed validation.
	ErrBadCamera = errors.New("video: invalid camera")
	// ErrImportTooLarge means a camera import exceeded MaxImportBytes.
	ErrImportTooLarge = errors.New("video: camera import too large")
	// ErrTooManyViewers means Config.MaxViewersPerStream was reached.
	ErrTooManyViewers = errors.New("video: too many viewers on this stream")
)
