package dispatch

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/kuzet/kuzet/dispatch/journal"
)

const (
	maxText      = 4000
	maxShortText = 200
)

var unitIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$`)

func checkText(field, v string, max int) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, field)
	}
	if n := utf8.RuneCountInString(v); n > max {
		return fmt.Errorf("%w: %s has %d characters, at most %d allowed", ErrInvalid, field, n, max)
	}
	return nil
}

// NewCall is the content of a call being registered.
type NewCall struct {
	Channel      Channel   `json:"channel"`
	CallerNumber string    `json:"caller_number,omitempty"`
	CallerName   string    `json:"caller_name,omitempty"`
	Language     string    `json:"language,omitempty"`
	Location     *Location `json:"location,omitempty"`
	Summary      string    `json:"summary,omitempty"`
}

func (c *NewCall) validate() error {
	if !channels[c.Channel] {
		return fmt.Errorf("%w: channel %q is not one of phone, app, web, chatbot, aml, radio, walk_in", ErrInvalid, c.Channel)
	}
	if c.Language != "" && c.Language != "kk" && c.Language != "ru" && c.Language != "en" {
		return fmt.Errorf("%w: language %q is not kk, ru or en", ErrInvalid, c.Language)
	}
	if c.Location != nil {
		if err := c.Location.Validate(); err != nil {
			return err
		}
	}
	for _, f := range []struct{ name, v string }{{"caller_number", c.CallerNumber}, {"caller_name", c.CallerName}} {
		if err := checkText(f.name, f.v, maxShortText); err != nil {
			return err
		}
	}
	return checkText("summary", c.Summary, maxText)
}

// CreateCall registers a call.
func (s *Service) CreateCall(ctx context.Context, m Meta, c NewCall) (*Call, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	res, err := s.exec(ctx, m, fingerprint("create_call", c), func(t *tx) error {
		id := newID()
		t.emit(EvCallReceived, "call:"+id, CallReceived{
			CallID: id, Channel: c.Channel, CallerNumber: c.CallerNumber, CallerName: c.CallerName,
			Language: c.Language, Location: c.Location, Summary: c.Summary, ReceivedAt: t.now,
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Call(idOf(res, "call:"))
}

// AnswerCall records that the actor answered a call.
func (s *Service) AnswerCall(ctx context.Context, m Meta, callID string) (*Call, error) {
	_, err := s.exec(ctx, m, fingerprint("answer_call", callID), func(t *tx) error {
		c := t.st.Calls[callID]
		switch {
		case c == nil:
			return fmt.Errorf("call %s: %w", callID, ErrNotFound)
		case c.AnsweredAt != nil:
			return fmt.Errorf("%w: call %s was already answered by %s", ErrTransition, callID, c.Operator)
		case c.EndedAt != nil:
			return fmt.Errorf("%w: call %s has ended", ErrTransition, callID)
		}
		t.emit(EvCallAnswered, "call:"+callID, CallAnswered{CallID: callID, Operator: m.Actor.ID, At: t.now})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Call(callID)
}

// EndCall records the end of a call.
func (s *Service) EndCall(ctx context.Context, m Meta, callID string) (*Call, error) {
	_, err := s.exec(ctx, m, fingerprint("end_call", callID), func(t *tx) error {
		c := t.st.Calls[callID]
		switch {
		case c == nil:
			return fmt.Errorf("call %s: %w", callID, ErrNotFound)
		case c.EndedAt != nil:
			return fmt.Errorf("%w: call %s has already ended", ErrTransition, callID)
		}
		t.emit(EvCallEnded, "call:"+callID, CallEnded{CallID: callID, At: t.now})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Call(callID)
}

// LocateCall sets a call's location.
func (s *Service) LocateCall(ctx context.Context, m Meta, callID string, loc Location) (*Call, error) {
	if err := loc.Validate(); err != nil {
		return nil, err
	}
	_, err := s.exec(ctx, m, fingerprint("locate_call", []any{callID, loc}), func(t *tx) error {
		if t.st.Calls[callID] == nil {
			return fmt.Errorf("call %s: %w", callID, ErrNotFound)
		}
		t.emit(EvCallLocated, "call:"+callID, CallLocated{CallID: callID, Location: loc})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Call(callID)
}

// NewIncident is the content of an incident being created.
type NewIncident struct {
	Type      string   `json:"type"`
	Priority  int      `json:"priority,omitempty"` // 0 = the type's default
	Location  Location `json:"location"`
	Narrative string   `json:"narrative,omitempty"`
	CallIDs   []string `json:"call_ids,omitempty"`
	Queue     bool     `json:"queue,omitempty"` // send straight to the dispatch queue
}

func (s *Service) checkType(code string, priority int) error {
	if _, ok := s.cat.Type(code); !ok {
		return fmt.Errorf("%w: incident type %q is not in the catalogue (GET /api/v1/catalogue lists them)", ErrInvalid, code)
	}
	if priority < 0 || priority > 5 {
		return fmt.Errorf("%w: priority %d is outside 1..5", ErrInvalid, priority)
	}
	return nil
}

// CreateIncident creates an incident, optionally linking calls to it.
func (s *Service) CreateIncident(ctx context.Context, m Meta, n NewIncident) (*Incident, error) {
	if err := s.checkType(n.Type, n.Priority); err != nil {
		return nil, err
	}
	if err := n.Location.Validate(); err != nil {
		return nil, err
	}
	if err := checkText("narrative", n.Narrative, maxText); err != nil {
		return nil, err
	}
	if len(n.CallIDs) > 50 {
		return nil, fmt.Errorf("%w: at most 50 calls can be linked at once", ErrInvalid)
	}
	if n.Priority == 0 {
		typ, _ := s.cat.Type(n.Type)
		n.Priority = typ.Priority
	}
	status := IncidentNew
	if n.Queue {
		status = IncidentQueued
	}
	// The fingerprint is of what the client sent: a retry after the sectors
	// were reloaded is still the same command.
	fp := fingerprint("create_incident", n)
	s.fillSector(&n.Location)
	res, err := s.exec(ctx, m, fp, func(t *tx) error {
		id := newID()
		for _, cid := range n.CallIDs {
			c := t.st.Calls[cid]
			if c == nil {
				return fmt.Errorf("call %s: %w", cid, ErrNotFound)
			}
			if c.IncidentID != "" {
				return fmt.Errorf("%w: call %s is already linked to incident %s", ErrInvalid, cid, c.IncidentID)
			}
		}
		t.emit(EvIncidentCreated, "incident:"+id, IncidentCreated{
			IncidentID: id, Type: n.Type, Priority: n.Priority, Status: status,
			Location: n.Location, Narrative: n.Narrative, CallIDs: n.CallIDs,
		})
		for _, cid := range n.CallIDs {
			t.emit(EvCallLinked, "call:"+cid, CallLinked{CallID: cid, IncidentID: id})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Incident(idOf(res, "incident:"))
}

// IncidentPatch changes an incident's details; nil fields stay.
type IncidentPatch struct {
	Type      *string   `json:"type,omitempty"`
	Priority  *int      `json:"priority,omitempty"`
	Location  *Location `json:"location,omitempty"`
	Narrative *string   `json:"narrative,omitempty"`
}

// UpdateIncident changes an open incident's type, priority, location or
// narrative.
func (s *Service) UpdateIncident(ctx context.Context, m Meta, id string, p IncidentPatch) (*Incident, error) {
	if p.Type == nil && p.Priority == nil && p.Location == nil && p.Narrative == nil {
		return nil, fmt.Errorf("%w: nothing to change: give type, priority, location or narrative", ErrInvalid)
	}
	if p.Type != nil {
		if err := s.checkType(*p.Type, 0); err != nil {
			return nil, err
		}
	}
	if p.Priority != nil && (*p.Priority < 1 || *p.Priority > 5) {
		return nil, fmt.Errorf("%w: priority %d is outside 1..5", ErrInvalid, *p.Priority)
	}
	if p.Location != nil {
		if err := p.Location.Validate(); err != nil {
			return nil, err
		}
	}
	if p.Narrative != nil {
		if err := checkText("narrative", *p.Narrative, maxText); err != nil {
			return nil, err
		}
	}
	fp := fingerprint("update_incident", []any{id, p})
	if p.Location != nil {
		loc := *p.Location
		s.fillSector(&loc)
		p.Location = &loc
	}
	_, err := s.exec(ctx, m, fp, func(t *tx) error {
		in, err := openIncident(t.st, id)
		if err != nil {
			return err
		}
		t.emit(EvIncidentUpdated, "incident:"+in.ID, IncidentUpdated{IncidentID: id, Type: p.Type, Priority: p.Priority, Location: p.Location, Narrative: p.Narrative})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Incident(id)
}

func openIncident(st *State, id string) (*Incident, error) {
	in := st.Incidents[id]
	if in == nil {
		return nil, fmt.Errorf("incident %s: %w", id, ErrNotFound)
	}
	if in.Status == IncidentClosed {
		return nil, fmt.Errorf("%w: incident %s is closed; a supervisor can reopen it", ErrTransition, in.Number)
	}
	return in, nil
}

// AddNote appends a note to an incident's timeline (closed incidents too:
// notes after closing are common).
func (s *Service) AddNote(ctx context.Context, m Meta, id, text string) (*Incident, error) {
	if strings.TrimSpace(text) == "" {
		return nil, fmt.Errorf("%w: note text is empty", ErrInvalid)
	}
	if err := checkText("text", text, maxText); err != nil {
		return nil, err
	}
	_, err := s.exec(ctx, m, fingerprint("add_note", []string{id, text}), func(t *tx) error {
		if t.st.Incidents[id] == nil {
			return fmt.Errorf("incident %s: %w", id, ErrNotFound)
		}
		if err := s.officerOnIncident(t, id); err != nil {
			return err
		}
		t.emit(EvIncidentNote, "incident:"+id, NoteAdded{IncidentID: id, NoteID: newID(), Text: text})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Incident(id)
}

// officerOnIncident allows unit-bound actors to act only on incidents their
// unit is assigned to.
func (s *Service) officerOnIncident(t *tx, id string) error {
	if t.actor.UnitID == "" {
		return nil
	}
	if in := t.st.Incidents[id]; in != nil && in.ActiveAssignment(t.actor.UnitID) != nil {
		return nil
	}
	return fmt.Errorf("%w: unit %s is not assigned to this incident", ErrForbidden, t.actor.UnitID)
}

// LinkCall links a call to an incident.
func (s *Service) LinkCall(ctx context.Context, m Meta, incidentID, callID string) (*Incident, error) {
	_, err := s.exec(ctx, m, fingerprint("link_call", []string{incidentID, callID}), func(t *tx) error {
		if _, err := openIncident(t.st, incidentID); err != nil {
			return err
		}
		c := t.st.Calls[callID]
		if c == nil {
			return fmt.Errorf("call %s: %w", callID, ErrNotFound)
		}
		if c.IncidentID != "" {
			return fmt.Errorf("%w: call %s is already linked to incident %s", ErrInvalid, callID, c.IncidentID)
		}
		t.emit(EvIncidentCallLink, "incident:"+incidentID, CallLinked{CallID: callID, IncidentID: incidentID})
		t.emit(EvCallLinked, "call:"+callID, CallLinked{CallID: callID, IncidentID: incidentID})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Incident(incidentID)
}

// StatusChange is a requested incident status change.
type StatusChange struct {
	Status      IncidentStatus `json:"status"`
	Disposition string         `json:"disposition,omitempty"`
	Reason      string         `json:"reason,omitempty"`
}

// SetIncidentStatus moves an incident by hand. Closing needs a disposition
// code and clears every unit still assigned; reopening needs a supervisor.
func (s *Service) SetIncidentStatus(ctx context.Context, m Meta, id string, c StatusChange) (*Incident, error) {
	if c.Status == IncidentClosed && !s.cat.dispositions[c.Disposition] {
		return nil, fmt.Errorf("%w: closing needs a disposition code from the catalogue, got %q", ErrInvalid, c.Disposition)
	}
	if c.Status != IncidentClosed && c.Disposition != "" {
		return nil, fmt.Errorf("%w: a disposition is only given when closing", ErrInvalid)
	}
	if err := checkText("reason", c.Reason, maxShortText); err != nil {
		return nil, err
	}
	_, err := s.exec(ctx, m, fingerprint("incident_status", []any{id, c}), func(t *tx) error {
		in := t.st.Incidents[id]
		if in == nil {
			return fmt.Errorf("incident %s: %w", id, ErrNotFound)
		}
		if err := s.officerOnIncident(t, id); err != nil {
			return err
		}
		if !slices.Contains(incidentMoves[in.Status], c.Status) {
			return fmt.Errorf("%w: incident %s cannot go from %s to %s", ErrTransition, in.Number, in.Status, c.Status)
		}
		if in.Status == IncidentClosed && !t.actor.Supervisor {
			return fmt.Errorf("%w: only a supervisor can reopen a closed incident", ErrForbidden)
		}
		if in.Status == IncidentClosed && strings.TrimSpace(c.Reason) == "" {
			return fmt.Errorf("%w: reopening needs a reason", ErrInvalid)
		}
		if c.Status == IncidentClosed {
			for _, uid := range in.ActiveUnits() {
				clearAssignment(t, in, uid, "incident closed", true, false)
			}
		}
		t.emit(EvIncidentStatus, "incident:"+id, IncidentStatusChanged{IncidentID: id, From: in.Status, To: c.Status, Disposition: c.Disposition, Reason: c.Reason})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Incident(id)
}

// AssignRequest sends units to an incident.
type AssignRequest struct {
	UnitIDs []string `json:"unit_ids"`
	// Preempt takes units that are busy on another incident, clearing them
	// there; it needs a reason.
	Preempt bool   `json:"preempt,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// Recommendation, per unit, when the dispatcher assigned from the
	// recommendation list.
	Recommendation map[string]RecPick `json:"recommendation,omitempty"`
}

// Assign sends units to an incident. A unit is on at most one active
// incident: of concurrent assignments of one unit exactly one succeeds.
func (s *Service) Assign(ctx context.Context, m Meta, incidentID string, a AssignRequest) (*Incident, error) {
	if len(a.UnitIDs) == 0 || len(a.UnitIDs) > 20 {
		return nil, fmt.Errorf("%w: give 1 to 20 unit_ids", ErrInvalid)
	}
	if a.Preempt && strings.TrimSpace(a.Reason) == "" {
		return nil, fmt.Errorf("%w: pre-empting a busy unit needs a reason", ErrInvalid)
	}
	if err := checkText("reason", a.Reason, maxShortText); err != nil {
		return nil, err
	}
	_, err := s.exec(ctx, m, fingerprint("assign", []any{incidentID, a}), func(t *tx) error {
		in, err := openIncident(t.st, incidentID)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, uid := range a.UnitIDs {
			if seen[uid] {
				return fmt.Errorf("%w: unit %s listed twice", ErrInvalid, uid)
			}
			seen[uid] = true
			u := t.st.Units[uid]
			if u == nil {
				return fmt.Errorf("unit %s: %w", uid, ErrNotFound)
			}
			if in.ActiveAssignment(uid) != nil {
				return fmt.Errorf("%w: unit %s is already assigned to %s", ErrInvalid, u.CallSign, in.Number)
			}
			switch {
			case u.Status == UnitAvailable:
			case u.Status.Busy() && a.Preempt:
				if other := t.st.Incidents[u.IncidentID]; other != nil {
					clearAssignment(t, other, uid, "pre-empted for "+in.Number+": "+a.Reason, false, true)
				}
			case u.Status.Busy():
				other := ""
				if o := t.st.Incidents[u.IncidentID]; o != nil {
					other = " on " + o.Number
				}
				return fmt.Errorf("%w: unit %s is %s%s; pre-empt with a reason to take it", ErrUnitBusy, u.CallSign, u.Status, other)
			default:
				return fmt.Errorf("%w: unit %s is %s", ErrUnitBusy, u.CallSign, u.Status)
			}
			var rec *RecPick
			if r, ok := a.Recommendation[uid]; ok {
				rec = &r
			}
			t.emit(EvAssigned, "incident:"+incidentID, Assigned{IncidentID: incidentID, UnitID: uid, Reason: a.Reason, Recommendation: rec})
			t.emit(EvUnitStatus, "unit:"+uid, UnitStatusChanged{UnitID: uid, From: u.Status, To: UnitDispatched, IncidentID: incidentID})
		}
		if in.Status == IncidentNew || in.Status == IncidentQueued {
			t.emit(EvIncidentStatus, "incident:"+incidentID, IncidentStatusChanged{IncidentID: incidentID, From: in.Status, To: IncidentDispatched})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Incident(incidentID)
}

// clearAssignment ends a unit's assignment on an incident. release makes
// the unit available (not when it is being pre-empted to another incident);
// requeue sends the incident back to the queue when its last unit leaves
// before anyone reached the scene.
func clearAssignment(t *tx, in *Incident, uid, reason string, release, requeue bool) {
	t.emit(EvCleared, "incident:"+in.ID, Cleared{IncidentID: in.ID, UnitID: uid, Reason: reason})
	if u := t.st.Units[uid]; release && u != nil && u.IncidentID == in.ID {
		t.emit(EvUnitStatus, "unit:"+uid, UnitStatusChanged{UnitID: uid, From: u.Status, To: UnitAvailable, Reason: reason})
	}
	if requeue && len(in.ActiveUnits()) == 1 && (in.Status == IncidentDispatched || in.Status == IncidentEnRoute) {
		t.emit(EvIncidentStatus, "incident:"+in.ID, IncidentStatusChanged{IncidentID: in.ID, From: in.Status, To: IncidentQueued, Reason: "no unit left: " + reason})
	}
}

// Acknowledge records that the unit's terminal received the assignment.
func (s *Service) Acknowledge(ctx context.Context, m Meta, incidentID, unitID string) (*Incident, error) {
	_, err := s.exec(ctx, m, fingerprint("ack", []string{incidentID, unitID}), func(t *tx) error {
		if t.actor.UnitID != "" && t.actor.UnitID != unitID {
			return fmt.Errorf("%w: a terminal of unit %s cannot acknowledge for unit %s", ErrForbidden, t.actor.UnitID, unitID)
		}
		in := t.st.Incidents[incidentID]
		if in == nil {
			return fmt.Errorf("incident %s: %w", incidentID, ErrNotFound)
		}
		a := in.ActiveAssignment(unitID)
		if a == nil {
			return fmt.Errorf("%w: unit %s is not assigned to %s", ErrInvalid, unitID, in.Number)
		}
		if a.AcknowledgedAt != nil {
			return fmt.Errorf("%w: already acknowledged", ErrTransition)
		}
		t.emit(EvAcknowledged, "incident:"+incidentID, Acknowledged{IncidentID: incidentID, UnitID: unitID})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Incident(incidentID)
}

// Clear takes a unit off an incident and makes it available.
func (s *Service) Clear(ctx context.Context, m Meta, incidentID, unitID, reason string) (*Incident, error) {
	if strings.TrimSpace(reason) == "" {
		reason = "cleared"
	}
	if err := checkText("reason", reason, maxShortText); err != nil {
		return nil, err
	}
	_, err := s.exec(ctx, m, fingerprint("clear", []string{incidentID, unitID, reason}), func(t *tx) error {
		if t.actor.UnitID != "" && t.actor.UnitID != unitID {
			return fmt.Errorf("%w: a terminal of unit %s cannot clear unit %s", ErrForbidden, t.actor.UnitID, unitID)
		}
		in := t.st.Incidents[incidentID]
		if in == nil {
			return fmt.Errorf("incident %s: %w", incidentID, ErrNotFound)
		}
		if in.ActiveAssignment(unitID) == nil {
			return fmt.Errorf("%w: unit %s is not assigned to %s", ErrInvalid, unitID, in.Number)
		}
		clearAssignment(t, in, unitID, reason, true, true)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Incident(incidentID)
}

// UnitSpec registers or updates a unit.
type UnitSpec struct {
	ID           string   `json:"id"`
	CallSign     string   `json:"call_sign"`
	Agency       string   `json:"agency"`
	Kind         string   `json:"kind"`
	Capabilities []string `json:"capabilities,omitempty"`
	Crew         []string `json:"crew,omitempty"`
	HomeSector   string   `json:"home_sector,omitempty"`
}

func (u *UnitSpec) validate() error {
	switch {
	case !unitIDPattern.MatchString(u.ID):
		return fmt.Errorf("%w: unit id %q: use 1-40 letters, digits, '-', '_' or '.'", ErrInvalid, u.ID)
	case strings.TrimSpace(u.CallSign) == "":
		return fmt.Errorf("%w: call_sign is required", ErrInvalid)
	case !agencies[u.Agency]:
		return fmt.Errorf("%w: agency %q is not police or national_guard", ErrInvalid, u.Agency)
	case !unitKinds[u.Kind]:
		return fmt.Errorf("%w: kind %q is not car, foot, motorcycle or tablet_post", ErrInvalid, u.Kind)
	case len(u.Capabilities) > 20 || len(u.Crew) > 20:
		return fmt.Errorf("%w: at most 20 capabilities and 20 crew members", ErrInvalid)
	}
	for _, v := range append(append([]string{u.CallSign, u.HomeSector}, u.Capabilities...), u.Crew...) {
		if err := checkText("unit field", v, 100); err != nil {
			return err
		}
	}
	return nil
}

// RegisterUnit adds a unit (off shift until it starts its shift).
func (s *Service) RegisterUnit(ctx context.Context, m Meta, u UnitSpec) (*Unit, error) {
	return s.putUnit(ctx, m, u, true)
}

// UpdateUnit changes a unit's details.
func (s *Service) UpdateUnit(ctx context.Context, m Meta, u UnitSpec) (*Unit, error) {
	return s.putUnit(ctx, m, u, false)
}

func (s *Service) putUnit(ctx context.Context, m Meta, u UnitSpec, create bool) (*Unit, error) {
	if err := u.validate(); err != nil {
		return nil, err
	}
	_, err := s.exec(ctx, m, fingerprint("put_unit", []any{create, u}), func(t *tx) error {
		exists := t.st.Units[u.ID] != nil
		switch {
		case create && exists:
			return fmt.Errorf("%w: unit %s already exists", ErrInvalid, u.ID)
		case !create && !exists:
			return fmt.Errorf("unit %s: %w", u.ID, ErrNotFound)
		}
		typ := EvUnitUpdated
		if create {
			typ = EvUnitRegistered
		}
		t.emit(typ, "unit:"+u.ID, UnitRegistered{UnitID: u.ID, CallSign: u.CallSign, Agency: u.Agency, Kind: u.Kind, Capabilities: u.Capabilities, Crew: u.Crew, HomeSector: u.HomeSector})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Unit(u.ID)
}

// SetShift starts or ends a unit's shift.
func (s *Service) SetShift(ctx context.Context, m Meta, unitID string, on bool) (*Unit, error) {
	_, err := s.exec(ctx, m, fingerprint("shift", []any{unitID, on}), func(t *tx) error {
		if t.actor.UnitID != "" && t.actor.UnitID != unitID {
			return fmt.Errorf("%w: a terminal of unit %s cannot change unit %s", ErrForbidden, t.actor.UnitID, unitID)
		}
		u := t.st.Units[unitID]
		if u == nil {
			return fmt.Errorf("unit %s: %w", unitID, ErrNotFound)
		}
		if u.OnShift == on {
			return fmt.Errorf("%w: unit %s shift is already %s", ErrTransition, u.CallSign, map[bool]string{true: "on", false: "off"}[on])
		}
		if !on && (u.Status.Busy() || u.Status == UnitEmergency) {
			return fmt.Errorf("%w: unit %s is %s; clear it before ending the shift", ErrTransition, u.CallSign, u.Status)
		}
		t.emit(EvUnitShift, "unit:"+unitID, UnitShift{UnitID: unitID, OnShift: on})
		to := UnitOffDuty
		if on {
			to = UnitAvailable
		}
		if u.Status != to {
			t.emit(EvUnitStatus, "unit:"+unitID, UnitStatusChanged{UnitID: unitID, From: u.Status, To: to, Reason: "shift"})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Unit(unitID)
}

// UnitStatusRequest is a status change from a terminal or a dispatcher.
type UnitStatusRequest struct {
	Status UnitStatus `json:"status"`
	Reason string     `json:"reason,omitempty"`
}

// SetUnitStatus changes a unit's status. The first status after an
// assignment acknowledges it; en_route and on_scene move the incident with
// the unit; available clears the unit from its incident; emergency (the
// panic button) is allowed from any status.
func (s *Service) SetUnitStatus(ctx context.Context, m Meta, unitID string, r UnitStatusRequest) (*Unit, error) {
	if err := checkText("reason", r.Reason, maxShortText); err != nil {
		return nil, err
	}
	_, err := s.exec(ctx, m, fingerprint("unit_status", []any{unitID, r}), func(t *tx) error {
		if t.actor.UnitID != "" && t.actor.UnitID != unitID {
			return fmt.Errorf("%w: a terminal of unit %s cannot change unit %s", ErrForbidden, t.actor.UnitID, unitID)
		}
		u := t.st.Units[unitID]
		if u == nil {
			return fmt.Errorf("unit %s: %w", unitID, ErrNotFound)
		}
		in := t.st.Incidents[u.IncidentID]
		switch {
		case r.Status == u.Status:
			return fmt.Errorf("%w: unit %s is already %s", ErrTransition, u.CallSign, u.Status)
		case r.Status == UnitEmergency:
		case r.Status == UnitAvailable && in != nil && in.ActiveAssignment(unitID) != nil:
			clearAssignment(t, in, unitID, "unit available", true, true)
			return nil
		case r.Status == UnitDispatched:
			return fmt.Errorf("%w: units are dispatched by assigning them to an incident", ErrTransition)
		case !slices.Contains(unitMoves[u.Status], r.Status):
			return fmt.Errorf("%w: unit %s cannot go from %s to %s", ErrTransition, u.CallSign, u.Status, r.Status)
		case !u.OnShift && r.Status != UnitOffDuty:
			return fmt.Errorf("%w: unit %s is off shift; start the shift first", ErrTransition, u.CallSign)
		}
		t.emit(EvUnitStatus, "unit:"+unitID, UnitStatusChanged{UnitID: unitID, From: u.Status, To: r.Status, IncidentID: u.IncidentID, Reason: r.Reason})
		if in != nil {
			if a := in.ActiveAssignment(unitID); a != nil && a.AcknowledgedAt == nil {
				t.emit(EvAcknowledged, "incident:"+in.ID, Acknowledged{IncidentID: in.ID, UnitID: unitID})
			}
			var to IncidentStatus
			switch {
			case r.Status == UnitEnRoute && in.Status == IncidentDispatched:
				to = IncidentEnRoute
			case r.Status == UnitOnScene && (in.Status == IncidentDispatched || in.Status == IncidentEnRoute):
				to = IncidentOnScene
			}
			if to != "" {
				t.emit(EvIncidentStatus, "incident:"+in.ID, IncidentStatusChanged{IncidentID: in.ID, From: in.Status, To: to, Reason: "unit " + u.CallSign + " " + string(r.Status)})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Unit(unitID)
}

// idOf returns the id of the first record's aggregate with the prefix.
func idOf(res journal.Result, prefix string) string {
	for _, r := range res.Records {
		if id, ok := strings.CutPrefix(r.Aggregate, prefix); ok {
			return id
		}
	}
	return ""
}
