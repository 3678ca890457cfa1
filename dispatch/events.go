package dispatch

import (
	"time"
)

// Event types. Every change to the dispatch state is one of these, stored in
// the journal with its aggregate ("call:<id>", "incident:<id>",
// "unit:<id>", "alert:<id>") and the actor who caused it.
const (
	EvCallReceived     = "call.received"
	EvCallAnswered     = "call.answered"
	EvCallLocated      = "call.located"
	EvCallEnded        = "call.ended"
	EvCallLinked       = "call.linked"
	EvIncidentCreated  = "incident.created"
	EvIncidentUpdated  = "incident.updated"
	EvIncidentNote     = "incident.note_added"
	EvIncidentCallLink = "incident.call_linked"
	EvIncidentStatus   = "incident.status_changed"
	EvUnitRegistered   = "unit.registered"
	EvUnitUpdated      = "unit.updated"
	EvUnitStatus       = "unit.status_changed"
	EvUnitShift        = "unit.shift_changed"
	EvAssigned         = "assignment.created"
	EvAcknowledged     = "assignment.acknowledged"
	EvCleared          = "assignment.cleared"
	EvAlertRaised      = "alert.raised"
	EvAlertCleared     = "alert.cleared"
)

// CallReceived is the payload of call.received.
type CallReceived struct {
	CallID       string    `json:"call_id"`
	Channel      Channel   `json:"channel"`
	CallerNumber string    `json:"caller_number,omitempty"`
	CallerName   string    `json:"caller_name,omitempty"`
	Language     string    `json:"language,omitempty"`
	Location     *Location `json:"location,omitempty"`
	Summary      string    `json:"summary,omitempty"`
	ReceivedAt   time.Time `json:"received_at"`
}

// CallAnswered is the payload of call.answered.
type CallAnswered struct {
	CallID   string    `json:"call_id"`
	Operator string    `json:"operator"`
	At       time.Time `json:"at"`
}

// CallLocated is the payload of call.located: a new location for a call.
type CallLocated struct {
	CallID   string   `json:"call_id"`
	Location Location `json:"location"`
}

// CallEnded is the payload of call.ended.
type CallEnded struct {
	CallID string    `json:"call_id"`
	At     time.Time `json:"at"`
}

// CallLinked is the payload of call.linked (on the call) and
// incident.call_linked (on the incident).
type CallLinked struct {
	CallID     string `json:"call_id"`
	IncidentID string `json:"incident_id"`
}

// IncidentCreated is the payload of incident.created. The incident number is
// not in the event: every node derives it from the journal order, so numbers
// are gap-free and unique without a shared counter.
type IncidentCreated struct {
	IncidentID string         `json:"incident_id"`
	Type       string         `json:"type"`
	Priority   int            `json:"priority"`
	Status     IncidentStatus `json:"status"`
	Location   Location       `json:"location"`
	Narrative  string         `json:"narrative,omitempty"`
	CallIDs    []string       `json:"call_ids,omitempty"`
}

// IncidentUpdated is the payload of incident.updated; nil fields are
// unchanged.
type IncidentUpdated struct {
	IncidentID string    `json:"incident_id"`
	Type       *string   `json:"type,omitempty"`
	Priority   *int      `json:"priority,omitempty"`
	Location   *Location `json:"location,omitempty"`
	Narrative  *string   `json:"narrative,omitempty"`
}

// NoteAdded is the payload of incident.note_added.
type NoteAdded struct {
	IncidentID string `json:"incident_id"`
	NoteID     string `json:"note_id"`
	Text       string `json:"text"`
}

// IncidentStatusChanged is the payload of incident.status_changed.
type IncidentStatusChanged struct {
	IncidentID  string         `json:"incident_id"`
	From        IncidentStatus `json:"from"`
	To          IncidentStatus `json:"to"`
	Disposition string         `json:"disposition,omitempty"`
	Reason      string         `json:"reason,omitempty"`
}

// UnitRegistered is the payload of unit.registered and unit.updated.
type UnitRegistered struct {
	UnitID       string   `json:"unit_id"`
	CallSign     string   `json:"call_sign"`
	Agency       string   `json:"agency"`
	Kind         string   `json:"kind"`
	Capabilities []string `json:"capabilities"`
	Crew         []string `json:"crew"`
	HomeSector   string   `json:"home_sector,omitempty"`
}

// UnitStatusChanged is the payload of unit.status_changed.
type UnitStatusChanged struct {
	UnitID     string     `json:"unit_id"`
	From       UnitStatus `json:"from"`
	To         UnitStatus `json:"to"`
	IncidentID string     `json:"incident_id,omitempty"`
	Reason     string     `json:"reason,omitempty"`
}

// UnitShift is the payload of unit.shift_changed.
type UnitShift struct {
	UnitID  string `json:"unit_id"`
	OnShift bool   `json:"on_shift"`
}

// Assigned is the payload of assignment.created (on the incident).
type Assigned struct {
	IncidentID     string   `json:"incident_id"`
	UnitID         string   `json:"unit_id"`
	Reason         string   `json:"reason,omitempty"`
	Recommendation *RecPick `json:"recommendation,omitempty"`
}

// Acknowledged is the payload of assignment.acknowledged.
type Acknowledged struct {
	IncidentID string `json:"incident_id"`
	UnitID     string `json:"unit_id"`
}

// Cleared is the payload of assignment.cleared.
type Cleared struct {
	IncidentID string `json:"incident_id"`
	UnitID     string `json:"unit_id"`
	Reason     string `json:"reason"`
}

// AlertRaised is the payload of alert.raised.
type AlertRaised struct {
	AlertID    string `json:"alert_id"`
	Kind       string `json:"kind"`
	IncidentID string `json:"incident_id,omitempty"`
	UnitID     string `json:"unit_id,omitempty"`
	Message    string `json:"message"`
}

// AlertCleared is the payload of alert.cleared.
type AlertCleared struct {
	AlertID string `json:"alert_id"`
	Reason  string `json:"reason"`
}
