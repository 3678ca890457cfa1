package dispatch

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Intake commands. The web layer parses and authenticates what arrives
// (package dispatch/intake) and calls these; each appends events through
// exec like every other command, so PBX retries, citizen retries and two
// operators merging at once behave as elsewhere: validated against the
// projection, appended with expected versions, idempotent by key.

var reportChannels = map[string]bool{"app": true, "web": true, "webchat": true, "telegram": true}

func checkQueue(q string) error {
	if q != Queue102 && q != Queue1402 {
		return fmt.Errorf("%w: queue %q is not 102 or 1402", ErrInvalid, q)
	}
	return nil
}

// NewReport is a citizen report as the web layer hands it over.
type NewReport struct {
	Channel      string     `json:"channel"`
	Text         string     `json:"text"`
	Category     string     `json:"category"`
	Queue        string     `json:"queue"`
	Location     *Location  `json:"location,omitempty"`
	ContactPhone string     `json:"contact_phone,omitempty"`
	ContactName  string     `json:"contact_name,omitempty"`
	Language     string     `json:"language"`
	Media        []MediaRef `json:"media,omitempty"`
	// StatusHash is the SHA-256 of the citizen's status token.
	StatusHash string `json:"status_hash"`
	ClientKey  string `json:"client_key,omitempty"`
}

func (n *NewReport) validate() error {
	if !reportChannels[n.Channel] {
		return fmt.Errorf("%w: report channel %q is not app, web, webchat or telegram", ErrInvalid, n.Channel)
	}
	if err := checkQueue(n.Queue); err != nil {
		return err
	}
	if n.Location != nil {
		if err := n.Location.Validate(); err != nil {
			return err
		}
	}
	if len(n.StatusHash) != 64 {
		return fmt.Errorf("%w: report needs the status token hash", ErrInvalid)
	}
	if len(n.Media) > 10 {
		return fmt.Errorf("%w: at most 10 media per report", ErrInvalid)
	}
	for _, f := range []struct{ name, v string }{{"category", n.Category}, {"contact_phone", n.ContactPhone}, {"contact_name", n.ContactName}, {"client_key", n.ClientKey}} {
		if err := checkText(f.name, f.v, maxShortText); err != nil {
			return err
		}
	}
	return checkText("text", n.Text, maxText)
}

// ReceiveReport records a citizen report in its triage queue.
func (s *Service) ReceiveReport(ctx context.Context, m Meta, n NewReport) (*Report, error) {
	if err := n.validate(); err != nil {
		return nil, err
	}
	res, err := s.exec(ctx, m, fingerprint("receive_report", n), func(t *tx) error {
		if _, dup := t.st.reportTokens[n.StatusHash]; dup {
			return fmt.Errorf("%w: status token already used", ErrInvalid)
		}
		id := newID()
		t.emit(EvReportReceived, "report:"+id, ReportReceived{ReportID: id, NewReport: n})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Report(idOf(res, "report:"))
}

func cloneReport(r *Report) *Report {
	c := *r
	c.Media = slices.Clone(r.Media)
	if r.Location != nil {
		l := *r.Location
		c.Location = &l
	}
	return &c
}

// Report returns a copy of a report.
func (s *Service) Report(id string) (*Report, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.st.Reports[id]
	if r == nil {
		return nil, fmt.Errorf("report %s: %w", id, ErrNotFound)
	}
	return cloneReport(r), nil
}

// Reports lists reports, newest first; open only lists those still new.
func (s *Service) Reports(open bool, limit int) []*Report {
	s.mu.RLock()
	out := make([]*Report, 0, 32)
	for _, r := range s.st.Reports {
		if open && r.Status != ReportNew {
			continue
		}
		out = append(out, cloneReport(r))
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ReceivedAt.After(out[j].ReceivedAt) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// PublicReportStatus is what a citizen's status link may show: received,
// in_progress or closed, and when it last changed. Nothing else.
func (s *Service) PublicReportStatus(tokenHash string) (string, time.Time, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.st.Reports[s.st.reportTokens[tokenHash]]
	if r == nil || tokenHash == "" {
		return "", time.Time{}, fmt.Errorf("report: %w", ErrNotFound)
	}
	switch {
	case r.Status == ReportClosed:
		return "closed", r.UpdatedAt, nil
	case r.IncidentID != "":
		in := s.st.Incidents[r.IncidentID]
		for in != nil && in.MergedInto != "" { // a merged incident lives on in the other one
			in = s.st.Incidents[in.MergedInto]
		}
		if in != nil && in.Status == IncidentClosed {
			return "closed", *in.ClosedAt, nil
		}
		return "in_progress", r.UpdatedAt, nil
	}
	return "received", r.ReceivedAt, nil
}

// ReportStatusChange closes (dismisses) or reopens a report.
type ReportStatusChange struct {
	Status ReportStatus `json:"status"`
	Reason string       `json:"reason,omitempty"`
}

// SetReportStatus closes a report that needs no incident, or reopens one.
func (s *Service) SetReportStatus(ctx context.Context, m Meta, id string, c ReportStatusChange) (*Report, error) {
	if c.Status != ReportClosed && c.Status != ReportNew {
		return nil, fmt.Errorf("%w: a report is closed or reopened (new) by hand; linking makes it in_progress", ErrInvalid)
	}
	if err := checkText("reason", c.Reason, maxShortText); err != nil {
		return nil, err
	}
	_, err := s.exec(ctx, m, fingerprint("report_status", []any{id, c}), func(t *tx) error {
		r := t.st.Reports[id]
		if r == nil {
			return fmt.Errorf("report %s: %w", id, ErrNotFound)
		}
		if r.Status == c.Status {
			return fmt.Errorf("%w: report is already %s", ErrTransition, r.Status)
		}
		t.emit(EvReportStatus, "report:"+id, ReportStatusChanged{ReportID: id, From: r.Status, To: c.Status, Reason: c.Reason})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Report(id)
}

// ReportIncident turns a report into an incident. Location defaults to
// the report's point, narrative to its text.
type ReportIncident struct {
	Type      string    `json:"type"`
	Priority  int       `json:"priority,omitempty"`
	Location  *Location `json:"location,omitempty"`
	Narrative string    `json:"narrative,omitempty"`
	Queue     bool      `json:"queue,omitempty"`
}

// ReportToIncident creates an incident from a new report.
func (s *Service) ReportToIncident(ctx context.Context, m Meta, reportID string, n ReportIncident) (*Incident, error) {
	if err := s.checkType(n.Type, n.Priority); err != nil {
		return nil, err
	}
	if n.Location != nil {
		if err := n.Location.Validate(); err != nil {
			return nil, err
		}
	}
	if err := checkText("narrative", n.Narrative, maxText); err != nil {
		return nil, err
	}
	if n.Priority == 0 {
		typ, _ := s.cat.Type(n.Type)
		n.Priority = typ.Priority
	}
	res, err := s.exec(ctx, m, fingerprint("report_incident", []any{reportID, n}), func(t *tx) error {
		r := t.st.Reports[reportID]
		switch {
		case r == nil:
			return fmt.Errorf("report %s: %w", reportID, ErrNotFound)
		case r.IncidentID != "":
			return fmt.Errorf("%w: report is already on incident %s", ErrTransition, r.IncidentID)
		case r.Status == ReportClosed:
			return fmt.Errorf("%w: report is closed; reopen it first", ErrTransition)
		}
		loc := n.Location
		if loc == nil {
			loc = r.Location
		}
		if loc == nil {
			return fmt.Errorf("%w: the report has no location; give one", ErrInvalid)
		}
		narrative := n.Narrative
		if narrative == "" {
			narrative = r.Text
		}
		status := IncidentNew
		if n.Queue {
			status = IncidentQueued
		}
		id := newID()
		t.emit(EvIncidentCreated, "incident:"+id, IncidentCreated{IncidentID: id, Type: n.Type, Priority: n.Priority,
			Status: status, Location: *loc, Narrative: narrative})
		t.emit(EvReportConverted, "report:"+reportID, ReportLinked{ReportID: reportID, IncidentID: id})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Incident(idOf(res, "incident:"))
}

// QueueChange moves a call or report between the 102 and 1402 queues.
type QueueChange struct {
	Queue  string `json:"queue"`
	Reason string `json:"reason,omitempty"`
}

// SetCallQueue moves a call (or, by its id, a report) to another queue.
func (s *Service) SetCallQueue(ctx context.Context, m Meta, id string, q QueueChange) (*Call, *Report, error) {
	if err := checkQueue(q.Queue); err != nil {
		return nil, nil, err
	}
	if err := checkText("reason", q.Reason, maxShortText); err != nil {
		return nil, nil, err
	}
	isReport := false
	_, err := s.exec(ctx, m, fingerprint("queue", []any{id, q}), func(t *tx) error {
		from, agg := "", ""
		if c := t.st.Calls[id]; c != nil {
			from, agg = c.Queue, "call:"+id
		} else if r := t.st.Reports[id]; r != nil {
			from, agg, isReport = r.Queue, "report:"+id, true
		} else {
			return fmt.Errorf("call or report %s: %w", id, ErrNotFound)
		}
		if from == q.Queue {
			return fmt.Errorf("%w: already in queue %s", ErrTransition, from)
		}
		t.emit(EvCallQueue, agg, CallQueueChanged{CallID: id, From: from, To: q.Queue, Reason: q.Reason})
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if isReport {
		r, err := s.Report(id)
		return nil, r, err
	}
	c, err := s.Call(id)
	return c, nil, err
}

// AttachAML records a handset's AML fix on a call. It does not touch the
// call's location: the operator decides (UseAML).
func (s *Service) AttachAML(ctx context.Context, m Meta, callID string, fix AMLLocation) (*Call, error) {
	fix.Location.Source = "aml"
	if err := fix.Location.Validate(); err != nil {
		return nil, err
	}
	fix.ReceivedAt = time.Time{}
	_, err := s.exec(ctx, m, fingerprint("aml", []any{callID, fix}), func(t *tx) error {
		if t.st.Calls[callID] == nil {
			return fmt.Errorf("call %s: %w", callID, ErrNotFound)
		}
		t.emit(EvCallAMLLocated, "call:"+callID, CallAMLLocated{CallID: callID, Fix: fix})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Call(callID)
}

// typed reports whether a location was entered by a person (anything not
// from AML), which an AML fix must never overwrite.
func typed(l *Location) bool { return l != nil && l.Source != "aml" }

// UseAML is the operator accepting the call's AML fix: it becomes the
// call's location, and the location of the call's open incident when that
// incident's location also came from AML. A location the operator typed is
// never overwritten; the operator changes it by hand instead.
func (s *Service) UseAML(ctx context.Context, m Meta, callID string) (*Call, error) {
	_, err := s.exec(ctx, m, fingerprint("use_aml", callID), func(t *tx) error {
		c := t.st.Calls[callID]
		switch {
		case c == nil:
			return fmt.Errorf("call %s: %w", callID, ErrNotFound)
		case c.AML == nil:
			return fmt.Errorf("%w: call %s has no AML fix", ErrInvalid, callID)
		case typed(c.Location):
			return fmt.Errorf("%w: call %s has a location typed by an operator; AML never overwrites it (change it by hand with PUT /api/v1/calls/{id}/location)", ErrTransition, callID)
		}
		loc := c.AML.Location
		t.emit(EvCallLocated, "call:"+callID, CallLocated{CallID: callID, Location: loc})
		if in := t.st.Incidents[c.IncidentID]; in != nil && in.Status != IncidentClosed && in.Location.Source == "aml" {
			t.emit(EvIncidentUpdated, "incident:"+in.ID, IncidentUpdated{IncidentID: in.ID, Location: &loc})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Call(callID)
}

// PBXOffer is a call the PBX offers to the centre.
type PBXOffer struct {
	PBXCallID    string    `json:"pbx_call_id"`
	CallerNumber string    `json:"caller_number,omitempty"`
	CallerName   string    `json:"caller_name,omitempty"`
	Line         string    `json:"line,omitempty"`
	Queue        string    `json:"queue"`
	At           time.Time `json:"at"`
}

// PBXOffered registers a ringing phone call from the PBX. Its received
// time is the PBX's, so answer times are measured as the PBX saw them.
func (s *Service) PBXOffered(ctx context.Context, m Meta, o PBXOffer) (*Call, error) {
	if err := checkQueue(o.Queue); err != nil {
		return nil, err
	}
	if o.PBXCallID == "" || o.At.IsZero() {
		return nil, fmt.Errorf("%w: PBX call id and time are required", ErrInvalid)
	}
	for _, f := range []struct{ name, v string }{{"pbx_call_id", o.PBXCallID}, {"caller_number", o.CallerNumber}, {"caller_name", o.CallerName}, {"line", o.Line}} {
		if err := checkText(f.name, f.v, maxShortText); err != nil {
			return nil, err
		}
	}
	res, err := s.exec(ctx, m, fingerprint("pbx_offered", o), func(t *tx) error {
		if id, ok := t.st.pbxCalls[o.PBXCallID]; ok {
			return fmt.Errorf("%w: PBX call %s was already offered (call %s)", ErrTransition, o.PBXCallID, id)
		}
		id := newID()
		t.emit(EvCallReceived, "call:"+id, callIntake{
			CallReceived: CallReceived{CallID: id, Channel: ChannelPhone, CallerNumber: o.CallerNumber, CallerName: o.CallerName, ReceivedAt: o.At.UTC()},
			Queue:        o.Queue, PBXCallID: o.PBXCallID, Line: o.Line,
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Call(idOf(res, "call:"))
}

// pbxCall finds the call of a PBX call id inside a command.
func pbxCall(st *State, pbxID string) (*Call, error) {
	c := st.Calls[st.pbxCalls[pbxID]]
	if c == nil {
		return nil, fmt.Errorf("PBX call %s was never offered: %w", pbxID, ErrNotFound)
	}
	if c.EndedAt != nil {
		return nil, fmt.Errorf("%w: PBX call %s has ended", ErrTransition, pbxID)
	}
	return c, nil
}

// PBXAnswered records the PBX's answer of a call by an operator.
func (s *Service) PBXAnswered(ctx context.Context, m Meta, pbxID, operator string, at time.Time) (*Call, error) {
	if err := checkText("operator", operator, maxShortText); err != nil {
		return nil, err
	}
	res, err := s.exec(ctx, m, fingerprint("pbx_answered", []any{pbxID, operator, at}), func(t *tx) error {
		c, err := pbxCall(t.st, pbxID)
		if err != nil {
			return err
		}
		if c.AnsweredAt != nil {
			return fmt.Errorf("%w: PBX call %s was already answered", ErrTransition, pbxID)
		}
		if at.Before(c.ReceivedAt) {
			return fmt.Errorf("%w: answered at %s is before offered at %s", ErrInvalid, at.Format(time.RFC3339), c.ReceivedAt.Format(time.RFC3339))
		}
		t.emit(EvCallAnswered, "call:"+c.ID, CallAnswered{CallID: c.ID, Operator: operator, At: at.UTC()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Call(idOf(res, "call:"))
}

// PBXTransferred records a transfer (e.g. to the 1402 line).
func (s *Service) PBXTransferred(ctx context.Context, m Meta, pbxID, to string, at time.Time) (*Call, error) {
	if err := checkText("to", to, maxShortText); err != nil {
		return nil, err
	}
	res, err := s.exec(ctx, m, fingerprint("pbx_transferred", []any{pbxID, to, at}), func(t *tx) error {
		c, err := pbxCall(t.st, pbxID)
		if err != nil {
			return err
		}
		t.emit(EvCallTransferred, "call:"+c.ID, CallTransferred{CallID: c.ID, To: to, At: at.UTC()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Call(idOf(res, "call:"))
}

// PBXEnded records the end of a PBX call.
func (s *Service) PBXEnded(ctx context.Context, m Meta, pbxID string, at time.Time) (*Call, error) {
	res, err := s.exec(ctx, m, fingerprint("pbx_ended", []any{pbxID, at}), func(t *tx) error {
		c, err := pbxCall(t.st, pbxID)
		if err != nil {
			return err
		}
		t.emit(EvCallEnded, "call:"+c.ID, CallEnded{CallID: c.ID, At: at.UTC()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Call(idOf(res, "call:"))
}

// CallByNumber returns the newest call from the number that has not ended:
// the AML matcher attaches a handset's fix to it.
func (s *Service) CallByNumber(number string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var best *Call
	for _, c := range s.st.Calls {
		if c.CallerNumber == number && c.EndedAt == nil && (best == nil || c.ReceivedAt.After(best.ReceivedAt)) {
			best = c
		}
	}
	if best == nil {
		return "", false
	}
	return best.ID, true
}

// AnswerStats is the NENA call answering figure (NENA-STA-020.1-2020
// §2.2: 90 % within 15 s, 95 % within 20 s) over PBX calls.
type AnswerStats struct {
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Offered   int       `json:"offered"`
	Answered  int       `json:"answered"`
	Abandoned int       `json:"abandoned"`
	Within15  int       `json:"within_15s"`
	Within20  int       `json:"within_20s"`
	Share15   float64   `json:"share_15s"`
	Share20   float64   `json:"share_20s"`
}

// AnswerStats computes the answer figures over PBX calls offered in
// [from, to). Every offered call counts, abandoned ones too; a call still
// ringing is left out until 20 s have passed at now.
func (s *Service) AnswerStats(from, to, now time.Time) AnswerStats {
	st := AnswerStats{From: from, To: to}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, c := range s.st.Calls {
		if c.PBXCallID == "" || c.ReceivedAt.Before(from) || !c.ReceivedAt.Before(to) {
			continue
		}
		if c.AnsweredAt == nil && c.EndedAt == nil && now.Sub(c.ReceivedAt) <= 20*time.Second {
			continue
		}
		st.Offered++
		if c.AnsweredAt == nil {
			if c.EndedAt != nil {
				st.Abandoned++
			}
			continue
		}
		st.Answered++
		d := c.AnsweredAt.Sub(c.ReceivedAt)
		if d <= 15*time.Second {
			st.Within15++
		}
		if d <= 20*time.Second {
			st.Within20++
		}
	}
	if st.Offered > 0 {
		st.Share15 = float64(st.Within15) / float64(st.Offered)
		st.Share20 = float64(st.Within20) / float64(st.Offered)
	}
	return st
}

// MergeRequest names what to merge into an incident.
type MergeRequest struct {
	Kind   string `json:"kind"` // incident, call, report
	ID     string `json:"id"`
	Reason string `json:"reason,omitempty"`
}

// Merge merges another incident, a call or a report into incident
// targetID. A merged incident is closed with disposition DUPLICATE, its
// calls move to the target, and both keep their history (EIDO
// mergeComponent REPLACING / REPLACED). An incident with units still
// assigned is not merged: clear or reassign them first.
func (s *Service) Merge(ctx context.Context, m Meta, targetID string, r MergeRequest) (*Incident, error) {
	if err := checkText("reason", r.Reason, maxShortText); err != nil {
		return nil, err
	}
	_, err := s.exec(ctx, m, fingerprint("merge", []any{targetID, r}), func(t *tx) error {
		in, err := openIncident(t.st, targetID)
		if err != nil {
			return err
		}
		mergeID := newID()
		switch r.Kind {
		case MergeIncident:
			src := t.st.Incidents[r.ID]
			switch {
			case src == nil:
				return fmt.Errorf("incident %s: %w", r.ID, ErrNotFound)
			case src.ID == in.ID:
				return fmt.Errorf("%w: an incident cannot be merged into itself", ErrInvalid)
			case src.Status == IncidentClosed:
				return fmt.Errorf("%w: incident %s is closed", ErrTransition, src.Number)
			case len(src.ActiveUnits()) > 0:
				return fmt.Errorf("%w: incident %s still has units %s; clear or reassign them before merging", ErrTransition, src.Number, strings.Join(src.ActiveUnits(), ", "))
			}
			calls := slices.Clone(src.CallIDs)
			for _, cid := range calls {
				t.touch("call:" + cid)
			}
			t.emit(EvIncidentMerged, "incident:"+in.ID, IncidentMerged{IncidentID: in.ID, MergeID: mergeID, Kind: r.Kind, SourceID: src.ID, Reason: r.Reason, CallIDs: calls})
			t.emit(EvIncidentStatus, "incident:"+src.ID, IncidentStatusChanged{IncidentID: src.ID, From: src.Status, To: IncidentClosed,
				Disposition: "DUPLICATE", Reason: "merged into " + in.Number})
		case MergeCall:
			c := t.st.Calls[r.ID]
			switch {
			case c == nil:
				return fmt.Errorf("call %s: %w", r.ID, ErrNotFound)
			case c.IncidentID != "":
				return fmt.Errorf("%w: call %s is on incident %s; merge that incident instead", ErrTransition, r.ID, c.IncidentID)
			}
			t.emit(EvIncidentMerged, "incident:"+in.ID, IncidentMerged{IncidentID: in.ID, MergeID: mergeID, Kind: r.Kind, SourceID: c.ID, Reason: r.Reason})
			t.emit(EvCallLinked, "call:"+c.ID, CallLinked{CallID: c.ID, IncidentID: in.ID})
		case MergeReport:
			rp := t.st.Reports[r.ID]
			switch {
			case rp == nil:
				return fmt.Errorf("report %s: %w", r.ID, ErrNotFound)
			case rp.IncidentID != "":
				return fmt.Errorf("%w: report %s is on incident %s", ErrTransition, r.ID, rp.IncidentID)
			}
			t.emit(EvIncidentMerged, "incident:"+in.ID, IncidentMerged{IncidentID: in.ID, MergeID: mergeID, Kind: r.Kind, SourceID: rp.ID, Reason: r.Reason})
			t.emit(EvReportLinked, "report:"+rp.ID, ReportLinked{ReportID: rp.ID, IncidentID: in.ID})
		default:
			return fmt.Errorf("%w: merge kind %q is not incident, call or report", ErrInvalid, r.Kind)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Incident(targetID)
}

// UndoMerge reverses a merge (supervisors only): a merged incident is
// reopened (queued) with its calls, a call or report is unlinked. The
// merge stays in the history, marked undone.
func (s *Service) UndoMerge(ctx context.Context, m Meta, targetID, mergeID, reason string) (*Incident, error) {
	if strings.TrimSpace(reason) == "" {
		return nil, fmt.Errorf("%w: undoing a merge needs a reason", ErrInvalid)
	}
	if err := checkText("reason", reason, maxShortText); err != nil {
		return nil, err
	}
	_, err := s.exec(ctx, m, fingerprint("undo_merge", []string{targetID, mergeID, reason}), func(t *tx) error {
		if !t.actor.Supervisor {
			return fmt.Errorf("%w: only a supervisor can undo a merge", ErrForbidden)
		}
		in := t.st.Incidents[targetID]
		if in == nil {
			return fmt.Errorf("incident %s: %w", targetID, ErrNotFound)
		}
		i := slices.IndexFunc(in.Merges, func(x Merge) bool { return x.ID == mergeID })
		if i < 0 {
			return fmt.Errorf("merge %s on incident %s: %w", mergeID, in.Number, ErrNotFound)
		}
		mg := in.Merges[i]
		if mg.Undone != nil {
			return fmt.Errorf("%w: merge %s was already undone", ErrTransition, mergeID)
		}
		for _, cid := range mg.CallIDs {
			t.touch("call:" + cid)
		}
		t.emit(EvMergeUndone, "incident:"+in.ID, MergeUndone{IncidentID: in.ID, MergeID: mergeID, Reason: reason})
		switch mg.Kind {
		case MergeIncident:
			if src := t.st.Incidents[mg.SourceID]; src != nil && src.Status == IncidentClosed && src.MergedInto == in.ID {
				t.emit(EvIncidentStatus, "incident:"+src.ID, IncidentStatusChanged{IncidentID: src.ID, From: src.Status, To: IncidentQueued, Reason: "merge undone: " + reason})
			}
		case MergeCall:
			t.emit(EvCallLinked, "call:"+mg.SourceID, CallLinked{CallID: mg.SourceID})
		case MergeReport:
			if rp := t.st.Reports[mg.SourceID]; rp != nil {
				t.emit(EvReportStatus, "report:"+rp.ID, ReportStatusChanged{ReportID: rp.ID, From: rp.Status, To: ReportNew, Reason: "merge undone: " + reason})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Incident(targetID)
}
