package dispatch

import (
	"slices"
	"time"

	"github.com/kuzet/kuzet/dispatch/journal"
)

// Intake events: citizen reports, the 102/1402 triage queue, PBX call
// events, AML fixes and merges. Commands are in intake_commands.go; State
// folds them in applyIntake.
//
// Merge and link follow NENA-STA-021.1b (EIDO) §2.4 "mergeComponent":
// the incident merged away is closed with disposition DUPLICATE and keeps
// its history; the surviving incident records the merge (REPLACING), the
// merged one points at it (REPLACED). A supervisor can undo a merge.
const (
	EvReportReceived  = "report.received"
	EvReportStatus    = "report.status_changed"
	EvReportLinked    = "report.linked"
	EvReportConverted = "report.converted"
	EvCallQueue       = "call.queue_changed"
	EvCallAMLLocated  = "call.aml_located"
	EvCallTransferred = "call.transferred"
	EvIncidentMerged  = "incident.merged"
	EvMergeUndone     = "incident.merge_undone"
)

// Triage queues: 102 emergency, 1402 non-emergency police line.
const (
	Queue102  = "102"
	Queue1402 = "1402"
)

// ReportStatus is a report's life cycle inside the centre.
type ReportStatus string

// Report statuses: new → in_progress (linked or turned into an incident) →
// closed (dismissed, or its incident closed).
const (
	ReportNew        ReportStatus = "new"
	ReportInProgress ReportStatus = "in_progress"
	ReportClosed     ReportStatus = "closed"
)

// MediaRef names a stored photo, video or voice message by content.
type MediaRef struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	MIME   string `json:"mime"`
	Kind   string `json:"kind"`
}

// Report is a citizen report from the 102 app, the web page, the web chat
// or the chat-bot.
type Report struct {
	ID           string       `json:"id"`
	Version      uint64       `json:"version"`
	Channel      string       `json:"channel"` // app, web, webchat, telegram
	Text         string       `json:"text"`
	Category     string       `json:"category"`
	Queue        string       `json:"queue"`
	Location     *Location    `json:"location,omitempty"`
	ContactPhone string       `json:"contact_phone,omitempty"`
	ContactName  string       `json:"contact_name,omitempty"`
	Language     string       `json:"language"`
	Media        []MediaRef   `json:"media"`
	Status       ReportStatus `json:"status"`
	IncidentID   string       `json:"incident_id,omitempty"`
	ReceivedAt   time.Time    `json:"received_at"`
	UpdatedAt    time.Time    `json:"updated_at"`
	// statusHash is SHA-256 of the citizen's status token; never shown.
	statusHash string
}

// AMLLocation is a handset's Advanced Mobile Location fix attached to a
// call (ETSI TS 103 625): shown to the operator, used only on request.
type AMLLocation struct {
	Location     Location  `json:"location"`
	Confidence   float64   `json:"confidence,omitempty"` // percent
	Method       string    `json:"method,omitempty"`     // GNSS, WIFI, CELL, FUSED
	LocationTime time.Time `json:"location_time"`
	Transport    string    `json:"transport"` // https or sms
	ReceivedAt   time.Time `json:"received_at"`
}

// Merge is one call, report or incident merged into an incident.
type Merge struct {
	ID       string     `json:"id"`
	Kind     string     `json:"kind"` // incident, call, report
	SourceID string     `json:"source_id"`
	Reason   string     `json:"reason,omitempty"`
	At       time.Time  `json:"at"`
	By       string     `json:"by"`
	CallIDs  []string   `json:"call_ids,omitempty"` // calls moved from a merged incident
	Undone   *time.Time `json:"undone_at,omitempty"`
	UndoneBy string     `json:"undone_by,omitempty"`
}

// Merge kinds.
const (
	MergeIncident = "incident"
	MergeCall     = "call"
	MergeReport   = "report"
)

// ReportReceived is the payload of report.received. It carries the hash of
// the citizen's status token, never the token.
type ReportReceived struct {
	ReportID string `json:"report_id"`
	NewReport
}

// ReportStatusChanged is the payload of report.status_changed.
type ReportStatusChanged struct {
	ReportID string       `json:"report_id"`
	From     ReportStatus `json:"from"`
	To       ReportStatus `json:"to"`
	Reason   string       `json:"reason,omitempty"`
}

// ReportLinked is the payload of report.linked and report.converted (the
// report became the incident).
type ReportLinked struct {
	ReportID   string `json:"report_id"`
	IncidentID string `json:"incident_id"`
}

// CallQueueChanged is the payload of call.queue_changed.
type CallQueueChanged struct {
	CallID string `json:"call_id"`
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason,omitempty"`
}

// CallAMLLocated is the payload of call.aml_located.
type CallAMLLocated struct {
	CallID string      `json:"call_id"`
	Fix    AMLLocation `json:"fix"`
}

// CallTransferred is the payload of call.transferred.
type CallTransferred struct {
	CallID string    `json:"call_id"`
	To     string    `json:"to"`
	At     time.Time `json:"at"`
}

// callIntake carries the intake fields of call.received beside the
// CallReceived fields (one flat JSON object), so older records without
// them still decode.
type callIntake struct {
	CallReceived
	Queue     string `json:"queue,omitempty"`
	PBXCallID string `json:"pbx_call_id,omitempty"`
	Line      string `json:"line,omitempty"`
}

// IncidentMerged is the payload of incident.merged, on the surviving
// incident's aggregate.
type IncidentMerged struct {
	IncidentID string   `json:"incident_id"`
	MergeID    string   `json:"merge_id"`
	Kind       string   `json:"kind"`
	SourceID   string   `json:"source_id"`
	Reason     string   `json:"reason,omitempty"`
	CallIDs    []string `json:"call_ids,omitempty"`
}

// MergeUndone is the payload of incident.merge_undone.
type MergeUndone struct {
	IncidentID string `json:"incident_id"`
	MergeID    string `json:"merge_id"`
	Reason     string `json:"reason"`
}

// applyCallIntake sets the intake fields of a call.received record. Calls
// registered without a queue (console, radio) go to 102.
func (s *State) applyCallIntake(r journal.Record) error {
	p, err := decode[callIntake](r)
	if err != nil {
		return err
	}
	c := s.Calls[p.CallID]
	c.Queue, c.PBXCallID, c.Line = p.Queue, p.PBXCallID, p.Line
	if c.Queue == "" {
		c.Queue = Queue102
	}
	if p.PBXCallID != "" {
		s.pbxCalls[p.PBXCallID] = p.CallID
	}
	return nil
}

// applyIntake folds the intake events. Slices shared with copies handed
// out by queries (Merges, ReportIDs, CallIDs) are replaced, never written
// in place.
func (s *State) applyIntake(r journal.Record) error {
	switch r.Type {
	case EvReportReceived:
		p, err := decode[ReportReceived](r)
		if err != nil {
			return err
		}
		s.Reports[p.ReportID] = &Report{
			ID: p.ReportID, Channel: p.Channel, Text: p.Text, Category: p.Category, Queue: p.Queue,
			Location: p.Location, ContactPhone: p.ContactPhone, ContactName: p.ContactName,
			Language: p.Language, Media: nonNilMedia(p.Media), Status: ReportNew,
			ReceivedAt: r.Time, UpdatedAt: r.Time, statusHash: p.StatusHash,
		}
		if p.StatusHash != "" {
			s.reportTokens[p.StatusHash] = p.ReportID
		}
	case EvReportStatus:
		p, err := decode[ReportStatusChanged](r)
		if err != nil {
			return err
		}
		if rp := s.Reports[p.ReportID]; rp != nil {
			rp.Status = p.To
		}
	case EvReportLinked, EvReportConverted:
		p, err := decode[ReportLinked](r)
		if err != nil {
			return err
		}
		if rp := s.Reports[p.ReportID]; rp != nil {
			rp.IncidentID, rp.Status = p.IncidentID, ReportInProgress
		}
		if in := s.Incidents[p.IncidentID]; in != nil && !slices.Contains(in.ReportIDs, p.ReportID) {
			in.ReportIDs = append(slices.Clone(in.ReportIDs), p.ReportID)
		}
	case EvCallQueue:
		p, err := decode[CallQueueChanged](r)
		if err != nil {
			return err
		}
		if c := s.Calls[p.CallID]; c != nil {
			c.Queue = p.To
		}
		if rp := s.Reports[p.CallID]; rp != nil { // reports move between queues the same way
			rp.Queue = p.To
		}
	case EvCallAMLLocated:
		p, err := decode[CallAMLLocated](r)
		if err != nil {
			return err
		}
		if c := s.Calls[p.CallID]; c != nil {
			fix := p.Fix
			fix.ReceivedAt = r.Time
			c.AML = &fix
		}
	case EvCallTransferred:
		p, err := decode[CallTransferred](r)
		if err != nil {
			return err
		}
		if c := s.Calls[p.CallID]; c != nil {
			c.TransferredTo = p.To
		}
	case EvIncidentMerged:
		p, err := decode[IncidentMerged](r)
		if err != nil {
			return err
		}
		in := s.Incidents[p.IncidentID]
		if in == nil {
			return nil
		}
		in.Merges = append(slices.Clone(in.Merges), Merge{ID: p.MergeID, Kind: p.Kind, SourceID: p.SourceID,
			Reason: p.Reason, At: r.Time, By: r.Actor, CallIDs: slices.Clone(p.CallIDs)})
		switch p.Kind {
		case MergeIncident:
			if src := s.Incidents[p.SourceID]; src != nil {
				src.MergedInto = in.ID
				src.CallIDs = slices.DeleteFunc(slices.Clone(src.CallIDs), func(id string) bool { return slices.Contains(p.CallIDs, id) })
			}
			s.moveCalls(p.CallIDs, in)
		case MergeCall:
			s.moveCalls([]string{p.SourceID}, in)
		case MergeReport:
			if rp := s.Reports[p.SourceID]; rp != nil && !slices.Contains(in.ReportIDs, rp.ID) {
				rp.IncidentID, rp.Status = in.ID, ReportInProgress
				in.ReportIDs = append(slices.Clone(in.ReportIDs), rp.ID)
			}
		}
	case EvMergeUndone:
		p, err := decode[MergeUndone](r)
		if err != nil {
			return err
		}
		in := s.Incidents[p.IncidentID]
		if in == nil {
			return nil
		}
		i := slices.IndexFunc(in.Merges, func(m Merge) bool { return m.ID == p.MergeID })
		if i < 0 {
			return nil
		}
		in.Merges = slices.Clone(in.Merges)
		m := &in.Merges[i]
		t := r.Time
		m.Undone, m.UndoneBy = &t, r.Actor
		switch m.Kind {
		case MergeIncident:
			if src := s.Incidents[m.SourceID]; src != nil {
				src.MergedInto = ""
				s.moveCalls(m.CallIDs, src)
				in.CallIDs = slices.DeleteFunc(slices.Clone(in.CallIDs), func(id string) bool { return slices.Contains(m.CallIDs, id) })
			}
		case MergeCall:
			if c := s.Calls[m.SourceID]; c != nil {
				c.IncidentID = ""
			}
			in.CallIDs = slices.DeleteFunc(slices.Clone(in.CallIDs), func(id string) bool { return id == m.SourceID })
		case MergeReport:
			if rp := s.Reports[m.SourceID]; rp != nil {
				rp.IncidentID, rp.Status = "", ReportNew
			}
			in.ReportIDs = slices.DeleteFunc(slices.Clone(in.ReportIDs), func(id string) bool { return id == m.SourceID })
		}
	}
	return nil
}

// moveCalls links calls to in.
func (s *State) moveCalls(ids []string, in *Incident) {
	for _, id := range ids {
		if c := s.Calls[id]; c != nil {
			c.IncidentID = in.ID
		}
		if !slices.Contains(in.CallIDs, id) {
			in.CallIDs = append(slices.Clone(in.CallIDs), id)
		}
	}
}

func nonNilMedia(m []MediaRef) []MediaRef {
	if m == nil {
		return []MediaRef{}
	}
	return slices.Clone(m)
}
