package web

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kuzet/kuzet/dispatch"
	"github.com/kuzet/kuzet/internal/auth"
)

// meta builds the command metadata: the actor from the principal and the
// client's Idempotency-Key (draft-ietf-httpapi-idempotency-key-header).
func meta(r *http.Request) (dispatch.Meta, error) {
	p := principal(r)
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 128 {
		return dispatch.Meta{}, errorf(http.StatusBadRequest, "bad_idempotency_key", "Idempotency-Key must be at most 128 characters (a UUIDv7 is 36)")
	}
	for _, c := range key {
		if c < 0x21 || c > 0x7e {
			return dispatch.Meta{}, errorf(http.StatusBadRequest, "bad_idempotency_key", "Idempotency-Key must be printable ASCII without spaces")
		}
	}
	if key != "" {
		// Keys are per principal: one client cannot replay another's.
		key = p.ID() + "/" + key
	}
	return dispatch.Meta{IdemKey: key, Actor: actor(p)}, nil
}

func actor(p auth.Principal) dispatch.Actor {
	a := dispatch.Actor{ID: p.ID(), Supervisor: p.Role == auth.RoleSupervisor}
	if p.Role == auth.RoleOfficer || p.Role == auth.RoleDevice {
		a.UnitID = p.UnitID
	}
	return a
}

// command decodes the body into in, runs fn and answers with its result.
func command[In, Out any](s *Server, w http.ResponseWriter, r *http.Request, status int, fn func(m dispatch.Meta, in In) (Out, error)) {
	m, err := meta(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var in In
	if err := decode(r, maxBody, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	out, err := fn(m, in)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, status, out)
}

// action is command for endpoints without a body.
func action[Out any](s *Server, w http.ResponseWriter, r *http.Request, fn func(m dispatch.Meta) (Out, error)) {
	m, err := meta(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if r.ContentLength > 0 {
		var empty struct{}
		if err := decode(r, 1024, &empty); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	out, err := fn(m)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

type signInRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type signInResponse struct {
	Token    string    `json:"token"`
	Expires  time.Time `json:"expires"`
	Username string    `json:"username"`
	Role     auth.Role `json:"role"`
	UnitID   string    `json:"unit_id,omitempty"`
}

func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	var in signInRequest
	if err := decode(r, 4096, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	tok, ses, u, err := s.auth.SignIn(r.Context(), in.Username, in.Password)
	switch {
	case err == auth.ErrBadCredentials:
		s.log.Info("sign-in failed", "username", in.Username, "remote", r.RemoteAddr)
		s.writeError(w, r, errorf(http.StatusUnauthorized, "bad_credentials", "%v", err))
		return
	case err == auth.ErrThrottled:
		w.Header().Set("Retry-After", "300")
		s.writeError(w, r, errorf(http.StatusTooManyRequests, "throttled", "%v", err))
		return
	case err != nil:
		s.writeError(w, r, err)
		return
	}
	s.log.Info("signed in", "username", u.Username, "role", u.Role)
	writeJSON(w, http.StatusCreated, signInResponse{Token: tok, Expires: ses.Expires, Username: u.Username, Role: u.Role, UnitID: u.UnitID})
}

func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	if err := s.auth.SignOut(r.Context(), bearer(r)); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, principal(r))
}

func (s *Server) catalogue(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.svc.Catalogue())
}

// limit parses ?limit= (default def, at most 1000).
func limit(r *http.Request, def int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, errorf(http.StatusBadRequest, "bad_limit", "limit must be a number from 1 to 1000")
	}
	return n, nil
}

func (s *Server) listCalls(w http.ResponseWriter, r *http.Request) {
	n, err := limit(r, 200)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"calls": s.svc.Calls(r.URL.Query().Get("active") == "true", n)})
}

func (s *Server) createCall(w http.ResponseWriter, r *http.Request) {
	command(s, w, r, http.StatusCreated, func(m dispatch.Meta, in dispatch.NewCall) (*dispatch.Call, error) {
		return s.svc.CreateCall(r.Context(), m, in)
	})
}

func (s *Server) getCall(w http.ResponseWriter, r *http.Request) {
	c, err := s.svc.Call(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Server) answerCall(w http.ResponseWriter, r *http.Request) {
	action(s, w, r, func(m dispatch.Meta) (*dispatch.Call, error) {
		return s.svc.AnswerCall(r.Context(), m, r.PathValue("id"))
	})
}

func (s *Server) endCall(w http.ResponseWriter, r *http.Request) {
	action(s, w, r, func(m dispatch.Meta) (*dispatch.Call, error) {
		return s.svc.EndCall(r.Context(), m, r.PathValue("id"))
	})
}

func (s *Server) locateCall(w http.ResponseWriter, r *http.Request) {
	command(s, w, r, http.StatusOK, func(m dispatch.Meta, in dispatch.Location) (*dispatch.Call, error) {
		return s.svc.LocateCall(r.Context(), m, r.PathValue("id"), in)
	})
}

// ownUnit limits officers and devices to their own unit.
func ownUnit(r *http.Request) string {
	p := principal(r)
	if p.Role == auth.RoleOfficer || p.Role == auth.RoleDevice {
		if p.UnitID == "" {
			return "\x00none" // bound to nothing: sees nothing
		}
		return p.UnitID
	}
	return ""
}

func (s *Server) listIncidents(w http.ResponseWriter, r *http.Request) {
	n, err := limit(r, 500)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	status := q.Get("status")
	if status != "" && !validIncidentStatus(status) {
		s.writeError(w, r, errorf(http.StatusBadRequest, "bad_status", "status must be one of new, queued, dispatched, en_route, on_scene, closed"))
		return
	}
	f := dispatch.IncidentFilter{Open: q.Get("open") != "false", Status: status, UnitID: ownUnit(r), Limit: n}
	writeJSON(w, http.StatusOK, map[string]any{"incidents": s.svc.Incidents(f)})
}

func validIncidentStatus(s string) bool {
	switch dispatch.IncidentStatus(s) {
	case dispatch.IncidentNew, dispatch.IncidentQueued, dispatch.IncidentDispatched, dispatch.IncidentEnRoute, dispatch.IncidentOnScene, dispatch.IncidentClosed:
		return true
	}
	return false
}

func (s *Server) createIncident(w http.ResponseWriter, r *http.Request) {
	command(s, w, r, http.StatusCreated, func(m dispatch.Meta, in dispatch.NewIncident) (*dispatch.Incident, error) {
		return s.svc.CreateIncident(r.Context(), m, in)
	})
}

func (s *Server) getIncident(w http.ResponseWriter, r *http.Request) {
	in, err := s.svc.Incident(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if u := ownUnit(r); u != "" && !assignedEver(in, u) {
		s.writeError(w, r, errorf(http.StatusForbidden, "forbidden", "your unit is not assigned to this incident"))
		return
	}
	writeJSON(w, http.StatusOK, in)
}

func assignedEver(in *dispatch.Incident, unit string) bool {
	for _, a := range in.Assignments {
		if a.UnitID == unit {
			return true
		}
	}
	return false
}

func (s *Server) updateIncident(w http.ResponseWriter, r *http.Request) {
	command(s, w, r, http.StatusOK, func(m dispatch.Meta, in dispatch.IncidentPatch) (*dispatch.Incident, error) {
		return s.svc.UpdateIncident(r.Context(), m, r.PathValue("id"), in)
	})
}

type noteRequest struct {
	Text string `json:"text"`
}

func (s *Server) addNote(w http.ResponseWriter, r *http.Request) {
	command(s, w, r, http.StatusCreated, func(m dispatch.Meta, in noteRequest) (*dispatch.Incident, error) {
		return s.svc.AddNote(r.Context(), m, r.PathValue("id"), in.Text)
	})
}

func (s *Server) incidentStatus(w http.ResponseWriter, r *http.Request) {
	command(s, w, r, http.StatusOK, func(m dispatch.Meta, in dispatch.StatusChange) (*dispatch.Incident, error) {
		return s.svc.SetIncidentStatus(r.Context(), m, r.PathValue("id"), in)
	})
}

type linkRequest struct {
	CallID string `json:"call_id"`
}

func (s *Server) linkCall(w http.ResponseWriter, r *http.Request) {
	command(s, w, r, http.StatusOK, func(m dispatch.Meta, in linkRequest) (*dispatch.Incident, error) {
		return s.svc.LinkCall(r.Context(), m, r.PathValue("id"), in.CallID)
	})
}

func (s *Server) assign(w http.ResponseWriter, r *http.Request) {
	command(s, w, r, http.StatusOK, func(m dispatch.Meta, in dispatch.AssignRequest) (*dispatch.Incident, error) {
		return s.svc.Assign(r.Context(), m, r.PathValue("id"), in)
	})
}

func (s *Server) acknowledge(w http.ResponseWriter, r *http.Request) {
	action(s, w, r, func(m dispatch.Meta) (*dispatch.Incident, error) {
		return s.svc.Acknowledge(r.Context(), m, r.PathValue("id"), r.PathValue("unit"))
	})
}

func (s *Server) clearAssignment(w http.ResponseWriter, r *http.Request) {
	action(s, w, r, func(m dispatch.Meta) (*dispatch.Incident, error) {
		return s.svc.Clear(r.Context(), m, r.PathValue("id"), r.PathValue("unit"), r.URL.Query().Get("reason"))
	})
}

func (s *Server) listUnits(w http.ResponseWriter, r *http.Request) {
	units := s.svc.Units()
	if u := ownUnit(r); u != "" {
		mine := units[:0]
		for _, x := range units {
			if x.ID == u {
				mine = append(mine, x)
			}
		}
		units = mine
	}
	writeJSON(w, http.StatusOK, map[string]any{"units": units})
}

func (s *Server) getUnit(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if u := ownUnit(r); u != "" && u != id {
		s.writeError(w, r, errorf(http.StatusForbidden, "forbidden", "a terminal of unit %s can only read its own unit", u))
		return
	}
	u, err := s.svc.Unit(id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

func (s *Server) registerUnit(w http.ResponseWriter, r *http.Request) {
	command(s, w, r, http.StatusCreated, func(m dispatch.Meta, in dispatch.UnitSpec) (*dispatch.Unit, error) {
		return s.svc.RegisterUnit(r.Context(), m, in)
	})
}

func (s *Server) updateUnit(w http.ResponseWriter, r *http.Request) {
	command(s, w, r, http.StatusOK, func(m dispatch.Meta, in dispatch.UnitSpec) (*dispatch.Unit, error) {
		if in.ID == "" {
			in.ID = r.PathValue("id")
		}
		if in.ID != r.PathValue("id") {
			return nil, errorf(http.StatusBadRequest, "id_mismatch", "the body's id %q differs from the URL's %q", in.ID, r.PathValue("id"))
		}
		return s.svc.UpdateUnit(r.Context(), m, in)
	})
}

func (s *Server) unitStatus(w http.ResponseWriter, r *http.Request) {
	command(s, w, r, http.StatusOK, func(m dispatch.Meta, in dispatch.UnitStatusRequest) (*dispatch.Unit, error) {
		return s.svc.SetUnitStatus(r.Context(), m, r.PathValue("id"), in)
	})
}

type shiftRequest struct {
	OnShift *bool `json:"on_shift"`
}

func (s *Server) unitShift(w http.ResponseWriter, r *http.Request) {
	command(s, w, r, http.StatusOK, func(m dispatch.Meta, in shiftRequest) (*dispatch.Unit, error) {
		if in.OnShift == nil {
			return nil, errorf(http.StatusUnprocessableEntity, "invalid", "on_shift (true or false) is required")
		}
		return s.svc.SetShift(r.Context(), m, r.PathValue("id"), *in.OnShift)
	})
}

type deviceRequest struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

type deviceResponse struct {
	auth.Device
	Token string `json:"token"`
}

func (s *Server) addDevice(w http.ResponseWriter, r *http.Request) {
	command(s, w, r, http.StatusCreated, func(m dispatch.Meta, in deviceRequest) (deviceResponse, error) {
		unit := r.PathValue("id")
		if _, err := s.svc.Unit(unit); err != nil {
			return deviceResponse{}, err
		}
		d, tok, err := s.auth.AddDevice(r.Context(), strings.ToLower(in.ID), unit, in.Name)
		if err != nil {
			return deviceResponse{}, err
		}
		s.log.Info("device token issued", "device", d.ID, "unit", unit, "by", m.Actor.ID)
		d.TokenHash = ""
		return deviceResponse{Device: d, Token: tok}, nil
	})
}

func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"alerts": s.svc.Alerts()})
}

type userView struct {
	Username  string    `json:"username"`
	Role      auth.Role `json:"role"`
	UnitID    string    `json:"unit_id,omitempty"`
	Disabled  bool      `json:"disabled,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	users, err := s.auth.Users(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]userView, len(users))
	for i, u := range users {
		out[i] = userView{u.Username, u.Role, u.UnitID, u.Disabled, u.CreatedAt}
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
}

type addUserRequest struct {
	Username string    `json:"username"`
	Role     auth.Role `json:"role"`
	UnitID   string    `json:"unit_id,omitempty"`
	Password string    `json:"password"`
}

func (s *Server) addUser(w http.ResponseWriter, r *http.Request) {
	command(s, w, r, http.StatusCreated, func(m dispatch.Meta, in addUserRequest) (userView, error) {
		u, err := s.auth.AddUser(r.Context(), in.Username, in.Role, in.UnitID, in.Password)
		if err != nil {
			return userView{}, err
		}
		s.log.Info("user added", "username", u.Username, "role", u.Role, "by", m.Actor.ID)
		return userView{u.Username, u.Role, u.UnitID, u.Disabled, u.CreatedAt}, nil
	})
}
