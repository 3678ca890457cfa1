package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/kuzet/kuzet/dispatch"
	"github.com/kuzet/kuzet/dispatch/journal"
	"github.com/kuzet/kuzet/internal/auth"
)

// apiError is the JSON body of every error answer: a stable code a program
// can switch on and a message a person can act on.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// httpError is an error with its answer already decided.
type httpError struct {
	status int
	code   string
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, code, format string, args ...any) error {
	return &httpError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// Limits on request bodies.
const (
	maxBody = 64 << 10
)

// decode reads a JSON body strictly: the right content type, at most limit
// bytes, no unknown fields, exactly one value.
func decode(r *http.Request, limit int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as application/json, not %s", ct)
	}
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &mbe):
			return errorf(http.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than %d bytes", limit)
		case errors.Is(err, io.EOF):
			return errorf(http.StatusBadRequest, "empty_body", "the request needs a JSON body")
		case errors.As(err, &se):
			return errorf(http.StatusBadRequest, "malformed_json", "the body is not valid JSON (at byte %d)", se.Offset)
		case errors.As(err, &te):
			return errorf(http.StatusBadRequest, "wrong_type", "field %q must be %s, not %s", te.Field, te.Type, te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return errorf(http.StatusBadRequest, "unknown_field", "%s; check the field names in /api/v1/openapi.yaml", strings.TrimPrefix(err.Error(), "json: "))
		default:
			return errorf(http.StatusBadRequest, "malformed_json", "the body could not be read: %v", err)
		}
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "malformed_json", "the body must hold exactly one JSON value")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// writeRawJSON sends an answer already encoded, with its length.
func writeRawJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeError maps domain errors to answers.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	status, code, msg := http.StatusInternalServerError, "internal", "internal error; it has been logged"
	switch {
	case errors.As(err, &he):
		status, code, msg = he.status, he.code, he.msg
	case errors.Is(err, dispatch.ErrNotFound):
		status, code, msg = http.StatusNotFound, "not_found", err.Error()
	case errors.Is(err, dispatch.ErrInvalid):
		status, code, msg = http.StatusUnprocessableEntity, "invalid", strings.TrimPrefix(err.Error(), "invalid: ")
	case errors.Is(err, dispatch.ErrTransition):
		status, code, msg = http.StatusConflict, "transition_not_allowed", strings.TrimPrefix(err.Error(), "status change not allowed: ")
	case errors.Is(err, dispatch.ErrUnitBusy):
		status, code, msg = http.StatusConflict, "unit_busy", strings.TrimPrefix(err.Error(), "unit not available: ")
	case errors.Is(err, dispatch.ErrForbidden):
		status, code, msg = http.StatusForbidden, "forbidden", strings.TrimPrefix(err.Error(), "forbidden: ")
	case errors.Is(err, dispatch.ErrBusy):
		w.Header().Set("Retry-After", "1")
		status, code, msg = http.StatusServiceUnavailable, "busy", "too many concurrent changes to the same objects; retry with the same Idempotency-Key"
	case errors.Is(err, journal.ErrIdempotencyKeyReused):
		status, code, msg = http.StatusUnprocessableEntity, "idempotency_key_reused", "this Idempotency-Key was already used for a different request; use a new key for a new request"
	case errors.Is(err, journal.ErrFailed), errors.Is(err, journal.ErrClosed):
		w.Header().Set("Retry-After", "5")
		status, code, msg = http.StatusServiceUnavailable, "storage_unavailable", "storage is unavailable; the command was not recorded; retry with the same Idempotency-Key"
	case errors.Is(err, auth.ErrInvalid):
		status, code, msg = http.StatusUnprocessableEntity, "invalid", strings.TrimPrefix(err.Error(), "auth: invalid: ")
	case errors.Is(err, auth.ErrUserExists):
		status, code, msg = http.StatusConflict, "exists", err.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		w.Header().Set("Retry-After", "1")
		status, code, msg = http.StatusServiceUnavailable, "timeout", "the command did not complete in time; retry with the same Idempotency-Key"
	}
	if r.Context().Err() != nil {
		// The client went away (or gave up); it retries with its key.
		s.log.Debug("request abandoned by the client", "method", r.Method, "path", r.URL.Path, "err", err)
		return
	}
	if status >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	} else {
		s.log.Debug("request rejected", "method", r.Method, "path", r.URL.Path, "status", status, "code", code)
	}
	writeJSON(w, status, apiError{Code: code, Message: msg})
}
