package dispatch

import (
	"fmt"
	"math"
	"time"
)

// Location is a point with what is known about how good it is.
type Location struct {
	Lat      float64 `json:"lat"`
	Lon      float64 `json:"lon"`
	Accuracy float64 `json:"accuracy_m,omitempty"` // radius in metres, 0 = unknown
	Source   string  `json:"source,omitempty"`     // "operator", "aml", "gps", "app", "geocoder"
	Address  string  `json:"address,omitempty"`
	Sector   string  `json:"sector,omitempty"`
}

// Validate checks the coordinate range (WGS 84 degrees).
func (l *Location) Validate() error {
	switch {
	case math.IsNaN(l.Lat) || math.IsNaN(l.Lon) || math.IsInf(l.Lat, 0) || math.IsInf(l.Lon, 0):
		return fmt.Errorf("%w: location: latitude and longitude must be numbers", ErrInvalid)
	case l.Lat < -90 || l.Lat > 90:
		return fmt.Errorf("%w: location: latitude %.6f is outside -90..90", ErrInvalid, l.Lat)
	case l.Lon < -180 || l.Lon > 180:
		return fmt.Errorf("%w: location: longitude %.6f is outside -180..180", ErrInvalid, l.Lon)
	case l.Accuracy < 0 || l.Accuracy > 100_000:
		return fmt.Errorf("%w: location: accuracy %.0f m is outside 0..100000", ErrInvalid, l.Accuracy)
	case len(l.Address) > 500:
		return fmt.Errorf("%w: location: address longer than 500 characters", ErrInvalid)
	}
	return nil
}

// Channel is how a call or report reached the centre.
type Channel string

// Channels.
const (
	ChannelPhone   Channel = "phone"
	ChannelApp     Channel = "app"
	ChannelWeb     Channel = "web"
	ChannelChatBot Channel = "chatbot"
	ChannelAML     Channel = "aml"
	ChannelRadio   Channel = "radio"
	ChannelWalkIn  Channel = "walk_in"
)

var channels = map[Channel]bool{ChannelPhone: true, ChannelApp: true, ChannelWeb: true, ChannelChatBot: true, ChannelAML: true, ChannelRadio: true, ChannelWalkIn: true}

// Call is one contact with the centre: a phone call, a report from the app,
// the web page or the chat-bot, a radio message, a walk-in.
type Call struct {
	ID           string     `json:"id"`
	Version      uint64     `json:"version"`
	Channel      Channel    `json:"channel"`
	CallerNumber string     `json:"caller_number,omitempty"`
	CallerName   string     `json:"caller_name,omitempty"`
	Language     string     `json:"language,omitempty"` // kk, ru, en
	Location     *Location  `json:"location,omitempty"`
	Summary      string     `json:"summary,omitempty"`
	ReceivedAt   time.Time  `json:"received_at"`
	AnsweredAt   *time.Time `json:"answered_at,omitempty"`
	EndedAt      *time.Time `json:"ended_at,omitempty"`
	Operator     string     `json:"operator,omitempty"`
	IncidentID   string     `json:"incident_id,omitempty"`
	// Intake (intake_events.go): the triage queue, the PBX's call id and
	// line, where a PBX transferred the call, and the handset's AML fix,
	// kept apart from Location until the operator chooses to use it.
	Queue         string       `json:"queue"`
	PBXCallID     string       `json:"pbx_call_id,omitempty"`
	Line          string       `json:"line,omitempty"`
	TransferredTo string       `json:"transferred_to,omitempty"`
	AML           *AMLLocation `json:"aml,omitempty"`
}

// IncidentStatus is the life cycle of an incident.
type IncidentStatus string

// Incident statuses: new → queued → dispatched → en_route → on_scene → closed.
const (
	IncidentNew        IncidentStatus = "new"
	IncidentQueued     IncidentStatus = "queued"
	IncidentDispatched IncidentStatus = "dispatched"
	IncidentEnRoute    IncidentStatus = "en_route"
	IncidentOnScene    IncidentStatus = "on_scene"
	IncidentClosed     IncidentStatus = "closed"
)

// incidentMoves lists the status changes a dispatcher may make by hand.
// Assignment and unit statuses also move incidents forward (see apply).
// Reopening (closed → queued) is a supervisor action checked by the service.
var incidentMoves = map[IncidentStatus][]IncidentStatus{
	IncidentNew:        {IncidentQueued, IncidentClosed},
	IncidentQueued:     {IncidentClosed},
	IncidentDispatched: {IncidentEnRoute, IncidentOnScene, IncidentClosed},
	IncidentEnRoute:    {IncidentOnScene, IncidentClosed},
	IncidentOnScene:    {IncidentClosed},
	IncidentClosed:     {IncidentQueued},
}

// Note is one line of an incident's timeline.
type Note struct {
	ID     string    `json:"id"`
	Time   time.Time `json:"time"`
	Author string    `json:"author"`
	Text   string    `json:"text"`
}

// Assignment is a unit sent to an incident.
type Assignment struct {
	UnitID         string     `json:"unit_id"`
	AssignedAt     time.Time  `json:"assigned_at"`
	AssignedBy     string     `json:"assigned_by"`
	AcknowledgedAt *time.Time `json:"acknowledged_at,omitempty"`
	ClearedAt      *time.Time `json:"cleared_at,omitempty"`
	ClearReason    string     `json:"clear_reason,omitempty"`
	Reason         string     `json:"reason,omitempty"`         // pre-emption or reassignment reason
	Recommendation *RecPick   `json:"recommendation,omitempty"` // when assigned from a recommendation
}

// RecPick records which recommendation a dispatcher assigned from, with the
// reasons that were shown.
type RecPick struct {
	Rank      int     `json:"rank"`
	DistanceM float64 `json:"distance_m"`
	ETASec    float64 `json:"eta_s"`
	Source    string  `json:"source,omitempty"`
}

// Active is true until the assignment is cleared.
func (a *Assignment) Active() bool { return a.ClearedAt == nil }

// Incident is an event that needs (or needed) a police response.
type Incident struct {
	ID           string         `json:"id"`
	Number       string         `json:"number"` // ALA-2026-000123, unique per centre and year
	Version      uint64         `json:"version"`
	Type         string         `json:"type"`
	Priority     int            `json:"priority"` // 1 (highest) .. 5
	Status       IncidentStatus `json:"status"`
	Disposition  string         `json:"disposition,omitempty"`
	Location     Location       `json:"location"`
	Narrative    string         `json:"narrative,omitempty"`
	CallIDs      []string       `json:"call_ids"`
	Notes        []Note         `json:"notes"`
	Assignments  []*Assignment  `json:"assignments"`
	CreatedAt    time.Time      `json:"created_at"`
	CreatedBy    string         `json:"created_by"`
	DispatchedAt *time.Time     `json:"dispatched_at,omitempty"`
	ClosedAt     *time.Time     `json:"closed_at,omitempty"`
	UpdatedAt    time.Time      `json:"updated_at"`
	// Merges are the calls, reports and incidents merged into this one
	// (intake_events.go); MergedInto is set while this incident is closed
	// as a duplicate of another.
	Merges     []Merge  `json:"merges,omitempty"`
	MergedInto string   `json:"merged_into,omitempty"`
	ReportIDs  []string `json:"report_ids,omitempty"`
}

// ActiveAssignment returns the unit's active assignment on this incident.
func (in *Incident) ActiveAssignment(unitID string) *Assignment {
	for _, a := range in.Assignments {
		if a.UnitID == unitID && a.Active() {
			return a
		}
	}
	return nil
}

// ActiveUnits lists the units currently assigned.
func (in *Incident) ActiveUnits() []string {
	var out []string
	for _, a := range in.Assignments {
		if a.Active() {
			out = append(out, a.UnitID)
		}
	}
	return out
}

// UnitStatus is what a unit is doing (APCO-style unit status).
type UnitStatus string

// Unit statuses.
const (
	UnitAvailable    UnitStatus = "available"
	UnitDispatched   UnitStatus = "dispatched"
	UnitEnRoute      UnitStatus = "en_route"
	UnitOnScene      UnitStatus = "on_scene"
	UnitTransporting UnitStatus = "transporting"
	UnitAtFacility   UnitStatus = "at_facility"
	UnitOutOfService UnitStatus = "out_of_service"
	UnitOffDuty      UnitStatus = "off_duty"
	UnitEmergency    UnitStatus = "emergency"
)

// unitMoves lists status changes by the unit's terminal or a dispatcher.
// Assignment (→ dispatched) and clearing (→ available) go through their
// own commands. Emergency (the panic button) is allowed from every status.
var unitMoves = map[UnitStatus][]UnitStatus{
	UnitAvailable:    {UnitOutOfService, UnitOffDuty},
	UnitDispatched:   {UnitEnRoute, UnitOnScene},
	UnitEnRoute:      {UnitOnScene},
	UnitOnScene:      {UnitTransporting},
	UnitTransporting: {UnitAtFacility},
	UnitAtFacility:   {},
	UnitOutOfService: {UnitAvailable, UnitOffDuty},
	UnitOffDuty:      {UnitAvailable},
	UnitEmergency:    {UnitAvailable, UnitDispatched, UnitEnRoute, UnitOnScene, UnitOutOfService},
}

// Busy is true for statuses in which a unit is working an incident.
func (s UnitStatus) Busy() bool {
	switch s {
	case UnitDispatched, UnitEnRoute, UnitOnScene, UnitTransporting, UnitAtFacility:
		return true
	}
	return false
}

// Agencies and unit kinds.
var (
	agencies  = map[string]bool{"police": true, "national_guard": true}
	unitKinds = map[string]bool{"car": true, "foot": true, "motorcycle": true, "tablet_post": true}
)

// Unit is a patrol crew, a National Guard post or any other resource that
// can be dispatched.
type Unit struct {
	ID           string     `json:"id"`
	Version      uint64     `json:"version"`
	CallSign     string     `json:"call_sign"`
	Agency       string     `json:"agency"`
	Kind         string     `json:"kind"`
	Capabilities []string   `json:"capabilities"`
	Crew         []string   `json:"crew"`
	HomeSector   string     `json:"home_sector,omitempty"`
	OnShift      bool       `json:"on_shift"`
	Status       UnitStatus `json:"status"`
	IncidentID   string     `json:"incident_id,omitempty"`
	StatusAt     time.Time  `json:"status_at"`
}

// Alert is a timer or geofence condition raised once and cleared when
// resolved.
type Alert struct {
	ID         string    `json:"id"` // kind:subject
	Version    uint64    `json:"version"`
	Kind       string    `json:"kind"`
	IncidentID string    `json:"incident_id,omitempty"`
	UnitID     string    `json:"unit_id,omitempty"`
	Message    string    `json:"message"`
	RaisedAt   time.Time `json:"raised_at"`
	Active     bool      `json:"active"`
}

// Alert kinds raised by the service's timers.
const (
	AlertUnassigned     = "unassigned_incident"
	AlertUnacknowledged = "unacknowledged_assignment"
	AlertWelfareCheck   = "welfare_check"
)
