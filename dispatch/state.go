package dispatch

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kuzet/kuzet/dispatch/journal"
)

// State is the in-memory projection of the journal: what every screen
// reads. It is changed only by apply, in journal order, so every node that
// has applied the same records holds the same State.
type State struct {
	Seq       uint64 // last applied record
	Calls     map[string]*Call
	Incidents map[string]*Incident
	Units     map[string]*Unit
	Alerts    map[string]*Alert
	Reports   map[string]*Report // intake_events.go
	// reportTokens maps status token hashes to reports; pbxCalls maps PBX
	// call ids to calls.
	reportTokens map[string]string
	pbxCalls     map[string]string
	// versions of aggregates that have no object of their own here
	versions map[string]uint64

	prefix  string
	loc     *time.Location
	counter map[int]int // incidents per year, for numbering
	numbers map[string]string
}

func newState(prefix string, loc *time.Location) *State {
	return &State{
		Calls:     make(map[string]*Call),
		Incidents: make(map[string]*Incident),
		Units:     make(map[string]*Unit),
		Alerts:    make(map[string]*Alert),
		Reports:   make(map[string]*Report),
		versions:  make(map[string]uint64),
		prefix:    prefix,
		loc:       loc,
		counter:   make(map[int]int),
		numbers:   make(map[string]string),

		reportTokens: make(map[string]string),
		pbxCalls:     make(map[string]string),
	}
}

// Version returns the current version of an aggregate ("incident:<id>" ...).
func (s *State) Version(agg string) uint64 {
	kind, id, _ := strings.Cut(agg, ":")
	switch kind {
	case "call":
		if c := s.Calls[id]; c != nil {
			return c.Version
		}
	case "incident":
		if in := s.Incidents[id]; in != nil {
			return in.Version
		}
	case "unit":
		if u := s.Units[id]; u != nil {
			return u.Version
		}
	case "alert":
		if a := s.Alerts[id]; a != nil {
			return a.Version
		}
	case "report":
		if rp := s.Reports[id]; rp != nil {
			return rp.Version
		}
	}
	return s.versions[agg]
}

// IncidentByNumber finds an incident by its centre number.
func (s *State) IncidentByNumber(number string) *Incident {
	if id, ok := s.numbers[number]; ok {
		return s.Incidents[id]
	}
	return nil
}

func decode[T any](r journal.Record) (T, error) {
	var v T
	if err := json.Unmarshal(r.Data, &v); err != nil {
		return v, fmt.Errorf("dispatch: record %d (%s): %w", r.Seq, r.Type, err)
	}
	return v, nil
}

// apply folds one record into the state. Unknown event types are skipped so
// that an older node can follow a journal written by a newer one.
func (s *State) apply(r journal.Record) error {
	if r.Seq != s.Seq+1 {
		return fmt.Errorf("dispatch: record %d applied after %d", r.Seq, s.Seq)
	}
	s.Seq = r.Seq
	var err error
	switch r.Type {
	case EvCallReceived:
		var p CallReceived
		if p, err = decode[CallReceived](r); err == nil {
			s.Calls[p.CallID] = &Call{
				ID: p.CallID, Channel: p.Channel, CallerNumber: p.CallerNumber, CallerName: p.CallerName,
				Language: p.Language, Location: p.Location, Summary: p.Summary, ReceivedAt: p.ReceivedAt,
			}
			err = s.applyCallIntake(r)
		}
	case EvCallAnswered:
		var p CallAnswered
		if p, err = decode[CallAnswered](r); err == nil {
			if c := s.Calls[p.CallID]; c != nil {
				at := p.At
				c.AnsweredAt, c.Operator = &at, p.Operator
			}
		}
	case EvCallLocated:
		var p CallLocated
		if p, err = decode[CallLocated](r); err == nil {
			if c := s.Calls[p.CallID]; c != nil {
				loc := p.Location
				c.Location = &loc
			}
		}
	case EvCallEnded:
		var p CallEnded
		if p, err = decode[CallEnded](r); err == nil {
			if c := s.Calls[p.CallID]; c != nil {
				at := p.At
				c.EndedAt = &at
			}
		}
	case EvCallLinked:
		var p CallLinked
		if p, err = decode[CallLinked](r); err == nil {
			if c := s.Calls[p.CallID]; c != nil {
				c.IncidentID = p.IncidentID
			}
		}
	case EvIncidentCreated:
		var p IncidentCreated
		if p, err = decode[IncidentCreated](r); err == nil {
			year := r.Time.In(s.loc).Year()
			s.counter[year]++
			in := &Incident{
				ID: p.IncidentID, Type: p.Type, Priority: p.Priority, Status: p.Status,
				Number:   fmt.Sprintf("%s-%d-%06d", s.prefix, year, s.counter[year]),
				Location: p.Location, Narrative: p.Narrative, CallIDs: slices.Clone(p.CallIDs),
				Notes: []Note{}, Assignments: []*Assignment{},
				CreatedAt: r.Time, CreatedBy: r.Actor, UpdatedAt: r.Time,
			}
			if in.CallIDs == nil {
				in.CallIDs = []string{}
			}
			s.Incidents[in.ID] = in
			s.numbers[in.Number] = in.ID
		}
	case EvIncidentUpdated:
		var p IncidentUpdated
		if p, err = decode[IncidentUpdated](r); err == nil {
			if in := s.Incidents[p.IncidentID]; in != nil {
				if p.Type != nil {
					in.Type = *p.Type
				}
				if p.Priority != nil {
					in.Priority = *p.Priority
				}
				if p.Location != nil {
					in.Location = *p.Location
				}
				if p.Narrative != nil {
					in.Narrative = *p.Narrative
				}
			}
		}
	case EvIncidentNote:
		var p NoteAdded
		if p, err = decode[NoteAdded](r); err == nil {
			if in := s.Incidents[p.IncidentID]; in != nil {
				in.Notes = append(in.Notes, Note{ID: p.NoteID, Time: r.Time, Author: r.Actor, Text: p.Text})
			}
		}
	case EvIncidentCallLink:
		var p CallLinked
		if p, err = decode[CallLinked](r); err == nil {
			if in := s.Incidents[p.IncidentID]; in != nil && !slices.Contains(in.CallIDs, p.CallID) {
				in.CallIDs = append(in.CallIDs, p.CallID)
			}
		}
	case EvIncidentStatus:
		var p IncidentStatusChanged
		if p, err = decode[IncidentStatusChanged](r); err == nil {
			if in := s.Incidents[p.IncidentID]; in != nil {
				in.Status = p.To
				switch p.To {
				case IncidentClosed:
					t := r.Time
					in.ClosedAt, in.Disposition = &t, p.Disposition
				case IncidentQueued:
					in.ClosedAt, in.Disposition = nil, ""
				case IncidentDispatched:
					if in.DispatchedAt == nil {
						t := r.Time
						in.DispatchedAt = &t
					}
				}
			}
		}
	case EvUnitRegistered, EvUnitUpdated:
		var p UnitRegistered
		if p, err = decode[UnitRegistered](r); err == nil {
			u := s.Units[p.UnitID]
			if u == nil {
				u = &Unit{ID: p.UnitID, Status: UnitOffDuty, StatusAt: r.Time}
				s.Units[p.UnitID] = u
			}
			u.CallSign, u.Agency, u.Kind, u.HomeSector = p.CallSign, p.Agency, p.Kind, p.HomeSector
			u.Capabilities, u.Crew = nonNil(p.Capabilities), nonNil(p.Crew)
		}
	case EvUnitStatus:
		var p UnitStatusChanged
		if p, err = decode[UnitStatusChanged](r); err == nil {
			if u := s.Units[p.UnitID]; u != nil {
				u.Status, u.StatusAt = p.To, r.Time
				if p.To.Busy() || p.To == UnitEmergency {
					if p.IncidentID != "" {
						u.IncidentID = p.IncidentID
					}
				} else {
					u.IncidentID = ""
				}
			}
		}
	case EvUnitShift:
		var p UnitShift
		if p, err = decode[UnitShift](r); err == nil {
			if u := s.Units[p.UnitID]; u != nil {
				u.OnShift = p.OnShift
			}
		}
	case EvAssigned:
		var p Assigned
		if p, err = decode[Assigned](r); err == nil {
			if in := s.Incidents[p.IncidentID]; in != nil {
				in.Assignments = append(in.Assignments, &Assignment{
					UnitID: p.UnitID, AssignedAt: r.Time, AssignedBy: r.Actor, Reason: p.Reason, Recommendation: p.Recommendation,
				})
			}
		}
	case EvAcknowledged:
		var p Acknowledged
		if p, err = decode[Acknowledged](r); err == nil {
			if in := s.Incidents[p.IncidentID]; in != nil {
				if a := in.ActiveAssignment(p.UnitID); a != nil {
					t := r.Time
					a.AcknowledgedAt = &t
				}
			}
		}
	case EvCleared:
		var p Cleared
		if p, err = decode[Cleared](r); err == nil {
			if in := s.Incidents[p.IncidentID]; in != nil {
				if a := in.ActiveAssignment(p.UnitID); a != nil {
					t := r.Time
					a.ClearedAt, a.ClearReason = &t, p.Reason
				}
			}
		}
	case EvAlertRaised:
		var p AlertRaised
		if p, err = decode[AlertRaised](r); err == nil {
			a := s.Alerts[p.AlertID]
			if a == nil {
				a = &Alert{ID: p.AlertID}
				s.Alerts[p.AlertID] = a
			}
			a.Kind, a.IncidentID, a.UnitID, a.Message, a.RaisedAt, a.Active = p.Kind, p.IncidentID, p.UnitID, p.Message, r.Time, true
		}
	case EvReportReceived, EvReportStatus, EvReportLinked, EvReportConverted, EvCallQueue,
		EvCallAMLLocated, EvCallTransferred, EvIncidentMerged, EvMergeUndone:
		err = s.applyIntake(r)
	case EvVideoViewed: // audit only (video_events.go): nothing to project beyond the view's version
		_, err = decode[VideoViewed](r)
	case EvAlertCleared:
		var p AlertCleared
		if p, err = decode[AlertCleared](r); err == nil {
			if a := s.Alerts[p.AlertID]; a != nil {
				a.Active = false
			}
		}
	}
	if err != nil {
		return err
	}
	s.setVersion(r.Aggregate, r.Version, r.Time)
	return nil
}

func (s *State) setVersion(agg string, v uint64, t time.Time) {
	kind, id, _ := strings.Cut(agg, ":")
	switch kind {
	case "call":
		if c := s.Calls[id]; c != nil {
			c.Version = v
			return
		}
	case "incident":
		if in := s.Incidents[id]; in != nil {
			in.Version, in.UpdatedAt = v, t
			return
		}
	case "unit":
		if u := s.Units[id]; u != nil {
			u.Version = v
			return
		}
	case "alert":
		if a := s.Alerts[id]; a != nil {
			a.Version = v
			return
		}
	case "report":
		if rp := s.Reports[id]; rp != nil {
			rp.Version, rp.UpdatedAt = v, t
			return
		}
	}
	s.versions[agg] = v
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}
