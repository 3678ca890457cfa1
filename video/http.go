package video

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
)

// httpError is the JSON body of every error answer.
type httpError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// errorStatus maps a package error to an HTTP status and a stable code.
func errorStatus(err error) (int, string) {
	switch {
	case errors.Is(err, ErrSDPTooLarge):
		return http.StatusRequestEntityTooLarge, "sdp_too_large"
	case errors.Is(err, ErrBadSDP):
		return http.StatusBadRequest, "bad_sdp"
	case errors.Is(err, ErrUnsupportedCodec):
		return http.StatusUnprocessableEntity, "unsupported_codec"
	case errors.Is(err, ErrBadStreamID):
		return http.StatusBadRequest, "bad_stream_id"
	case errors.Is(err, ErrUnknownCamera):
		return http.StatusNotFound, "unknown_camera"
	case errors.Is(err, ErrStreamNotLive):
		return http.StatusNotFound, "stream_not_live"
	case errors.Is(err, ErrUnknownSession):
		return http.StatusNotFound, "unknown_session"
	case errors.Is(err, ErrStreamBusy):
		return http.StatusConflict, "stream_busy"
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden, "forbidden"
	case errors.Is(err, ErrCameraCodec):
		return http.StatusBadGateway, "camera_codec_unsupported"
	case errors.Is(err, ErrCameraUnreachable):
		return http.StatusBadGateway, "camera_unreachable"
	case errors.Is(err, ErrCameraTimeout):
		return http.StatusGatewayTimeout, "camera_timeout"
	case errors.Is(err, ErrNotImplemented):
		return http.StatusMethodNotAllowed, "not_implemented"
	case errors.Is(err, ErrICEMismatch):
		return http.StatusUnprocessableEntity, "ice_mismatch"
	case errors.Is(err, ErrBadFragment):
		return http.StatusBadRequest, "bad_fragment"
	case errors.Is(err, errPrecondition):
		return http.StatusPreconditionFailed, "precondition_failed"
	case errors.Is(err, ErrTooManyViewers), errors.Is(err, ErrClosed):
		return http.StatusServiceUnavailable, "unavailable"
	case errors.Is(err, errUnsupportedMediaType):
		return http.StatusUnsupportedMediaType, "unsupported_media_type"
	case errors.Is(err, errMethod):
		return http.StatusMethodNotAllowed, "method_not_allowed"
	}
	return http.StatusInternalServerError, "internal"
}

var (
	errUnsupportedMediaType = errors.New("video: unsupported Content-Type")
	errMethod               = errors.New("video: method not allowed")
)

func writeError(w http.ResponseWriter, err error) {
	status, code := errorStatus(err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		msg = "internal error; see server log"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", "POST, PATCH, DELETE, OPTIONS")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(httpError{Code: code, Message: msg})
}

// readOffer reads and checks a WHIP/WHEP offer: method, media type, size
// (RFC 9725 section 4.2; the limit protects the SDP parser).
func (s *Server) readOffer(r *http.Request) ([]byte, offerCodecs, error) {
	if r.Method != http.MethodPost {
		return nil, offerCodecs{}, fmt.Errorf("%w: %s; send the SDP offer with POST", errMethod, r.Method)
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/sdp" {
		return nil, offerCodecs{}, fmt.Errorf("%w %q: send the offer as application/sdp", errUnsupportedMediaType, r.Header.Get("Content-Type"))
	}
	if r.ContentLength > s.cfg.MaxSDPBytes {
		return nil, offerCodecs{}, fmt.Errorf("%w: %d bytes, limit %d", ErrSDPTooLarge, r.ContentLength, s.cfg.MaxSDPBytes)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxSDPBytes+1))
	if err != nil {
		return nil, offerCodecs{}, fmt.Errorf("%w: reading body: %v", ErrBadSDP, err)
	}
	if int64(len(body)) > s.cfg.MaxSDPBytes {
		return nil, offerCodecs{}, fmt.Errorf("%w: limit %d bytes", ErrSDPTooLarge, s.cfg.MaxSDPBytes)
	}
	oc, err := parseOffer(body)
	if err != nil {
		return nil, oc, err
	}
	return body, oc, nil
}

func writeAnswer(w http.ResponseWriter, prefix, streamID, sessionID, sdp string) {
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", prefix+url.PathEscape(streamID)+"/"+sessionID)
	w.Header().Set("ETag", sessionETag(sessionID))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, sdp)
}

// HandleSession serves the WHIP/WHEP session resource named in the
// Location header: DELETE ends the session (RFC 9725 section 4.2); PATCH
// with a trickle-ice-sdpfrag adds the client's later ICE candidates
// (section 4.3, trickle.go). ICE restarts are answered 405.
func (s *Server) HandleSession(w http.ResponseWriter, r *http.Request, streamID, sessionID string) {
	if r.Method != http.MethodDelete && r.Method != http.MethodPatch {
		writeError(w, fmt.Errorf("%w: %s on a session; use PATCH or DELETE", errMethod, r.Method))
		return
	}
	s.mu.Lock()
	ss := s.sessions[sessionID]
	s.mu.Unlock()
	if ss == nil || ss.streamID != streamID {
		writeError(w, fmt.Errorf("%w %q on %s", ErrUnknownSession, sessionID, streamID))
		return
	}
	if r.Method == http.MethodPatch {
		s.patchSession(w, r, ss)
		return
	}
	ss.stop("delete")
	w.WriteHeader(http.StatusOK)
}
