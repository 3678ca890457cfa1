package video

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/pion/webrtc/v4"
)

// Trickle ICE on WHIP and WHEP sessions (RFC 9725 section 4.3, fragments
// of RFC 8840): a client that sent its offer before gathering finished
// PATCHes its later candidates to the session URL. The server's own
// candidates are all in its answer (it gathers before answering), so the
// PATCH answer carries none: 204. ICE restarts are not supported: a client
// whose network changed starts a new session.

var (
	// ErrICEMismatch: the fragment's ice-ufrag/ice-pwd are not the ones
	// of the session's offer. HTTP 422.
	ErrICEMismatch = errors.New("video: ICE credentials do not match the session")
	// ErrBadFragment: the body is not a trickle-ice-sdpfrag or a candidate
	// in it was refused. HTTP 400.
	ErrBadFragment = errors.New("video: malformed trickle ICE fragment")
	// errPrecondition: If-Match names another session state. HTTP 412.
	errPrecondition = errors.New("video: If-Match does not match the session's ETag")
)

// maxFragment bounds a PATCH body: a few dozen candidate lines.
const maxFragment = 16 << 10

// sessionETag is the entity tag of a session resource, sent with the
// answer and expected (if the client sends one) in If-Match.
func sessionETag(sessionID string) string { return `"` + sessionID + `"` }

// patchSession adds the trickled candidates of a fragment to the session.
func (s *Server) patchSession(w http.ResponseWriter, r *http.Request, ss *session) {
	if im := r.Header.Get("If-Match"); im == "*" {
		writeError(w, fmt.Errorf("%w: ICE restart (If-Match: *) is not supported; end this session (DELETE) and start a new one", ErrNotImplemented))
		return
	} else if im != "" && im != sessionETag(ss.id) {
		writeError(w, fmt.Errorf("%w (%s)", errPrecondition, sessionETag(ss.id)))
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/trickle-ice-sdpfrag" {
		writeError(w, fmt.Errorf("%w: a PATCH on a session sends application/trickle-ice-sdpfrag", errUnsupportedMediaType))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFragment+1))
	if err != nil || len(body) > maxFragment {
		writeError(w, fmt.Errorf("%w: body unreadable or over %d bytes", ErrBadFragment, maxFragment))
		return
	}
	frag, err := parseFragment(string(body))
	if err != nil {
		writeError(w, err)
		return
	}
	rd := ss.pc.RemoteDescription()
	if rd == nil {
		writeError(w, fmt.Errorf("%w: the session has no offer", ErrBadFragment))
		return
	}
	ufrag, pwd := iceCredentials(rd.SDP)
	if frag.ufrag != ufrag || (frag.pwd != "" && frag.pwd != pwd) {
		writeError(w, fmt.Errorf("%w: ice-ufrag %q", ErrICEMismatch, frag.ufrag))
		return
	}
	for _, c := range frag.candidates {
		mid := c.mid
		if err := ss.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: c.line, SDPMid: &mid}); err != nil {
			writeError(w, fmt.Errorf("%w: candidate %q: %v", ErrBadFragment, c.line, err))
			return
		}
	}
	s.metrics.TrickleFragments.Add(1)
	w.Header().Set("ETag", sessionETag(ss.id))
	w.WriteHeader(http.StatusNoContent)
}

type fragCandidate struct{ mid, line string }

type iceFragment struct {
	ufrag, pwd string
	candidates []fragCandidate
}

// parseFragment reads a trickle-ice-sdpfrag: session-level ice-ufrag and
// ice-pwd (or per media section), then per m= section an a=mid and its
// a=candidate lines; a=end-of-candidates is accepted and ignored (pion
// needs no signal). The ufrag is required.
func parseFragment(body string) (iceFragment, error) {
	var f iceFragment
	mid, inMedia := "", false
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case line == "":
		case strings.HasPrefix(line, "m="):
			inMedia, mid = true, ""
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			f.ufrag = strings.TrimPrefix(line, "a=ice-ufrag:")
		case strings.HasPrefix(line, "a=ice-pwd:"):
			f.pwd = strings.TrimPrefix(line, "a=ice-pwd:")
		case strings.HasPrefix(line, "a=mid:"):
			mid = strings.TrimPrefix(line, "a=mid:")
		case strings.HasPrefix(line, "a=candidate:"):
			if !inMedia || mid == "" {
				return f, fmt.Errorf("%w: a=candidate before its m= section's a=mid", ErrBadFragment)
			}
			if len(f.candidates) == 64 {
				return f, fmt.Errorf("%w: more than 64 candidates", ErrBadFragment)
			}
			f.candidates = append(f.candidates, fragCandidate{mid, strings.TrimPrefix(line, "a=")})
		case line == "a=end-of-candidates", strings.HasPrefix(line, "a=group:"), strings.HasPrefix(line, "a=ice-options:"):
		default:
			if !strings.HasPrefix(line, "a=") && !strings.HasPrefix(line, "c=") {
				return f, fmt.Errorf("%w: line %.40q", ErrBadFragment, line)
			}
		}
	}
	if f.ufrag == "" {
		return f, fmt.Errorf("%w: no a=ice-ufrag", ErrBadFragment)
	}
	return f, nil
}

// iceCredentials returns the first ice-ufrag and ice-pwd of an SDP (a
// bundled WHIP/WHEP offer has one pair).
func iceCredentials(sdp string) (ufrag, pwd string) {
	for line := range strings.SplitSeq(sdp, "\n") {
		line = strings.TrimRight(line, "\r")
		if v, ok := strings.CutPrefix(line, "a=ice-ufrag:"); ok && ufrag == "" {
			ufrag = v
		} else if v, ok := strings.CutPrefix(line, "a=ice-pwd:"); ok && pwd == "" {
			pwd = v
		}
	}
	return ufrag, pwd
}
