package dispatch

import (
	"fmt"
	"slices"
	"sort"
)

func cloneIncident(in *Incident) *Incident {
	c := *in
	c.CallIDs = slices.Clone(in.CallIDs)
	c.Notes = slices.Clone(in.Notes)
	c.Assignments = make([]*Assignment, len(in.Assignments))
	for i, a := range in.Assignments {
		ac := *a
		c.Assignments[i] = &ac
	}
	return &c
}

func cloneUnit(u *Unit) *Unit {
	c := *u
	c.Capabilities = slices.Clone(u.Capabilities)
	c.Crew = slices.Clone(u.Crew)
	return &c
}

func cloneCall(c *Call) *Call {
	cc := *c
	if c.Location != nil {
		l := *c.Location
		cc.Location = &l
	}
	return &cc
}

// Incident returns a copy of an incident.
func (s *Service) Incident(id string) (*Incident, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	in := s.st.Incidents[id]
	if in == nil {
		if in = s.st.IncidentByNumber(id); in == nil {
			return nil, fmt.Errorf("incident %s: %w", id, ErrNotFound)
		}
	}
	return cloneIncident(in), nil
}

// IncidentLocation returns an incident's id and location (by id or
// number) without copying the rest: recommendations need only these.
func (s *Service) IncidentLocation(id string) (string, Location, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	in := s.st.Incidents[id]
	if in == nil {
		if in = s.st.IncidentByNumber(id); in == nil {
			return "", Location{}, fmt.Errorf("incident %s: %w", id, ErrNotFound)
		}
	}
	return in.ID, in.Location, nil
}

// Unit returns a copy of a unit.
func (s *Service) Unit(id string) (*Unit, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u := s.st.Units[id]
	if u == nil {
		return nil, fmt.Errorf("unit %s: %w", id, ErrNotFound)
	}
	return cloneUnit(u), nil
}

// Call returns a copy of a call.
func (s *Service) Call(id string) (*Call, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := s.st.Calls[id]
	if c == nil {
		return nil, fmt.Errorf("call %s: %w", id, ErrNotFound)
	}
	return cloneCall(c), nil
}

// IncidentFilter selects incidents for listing.
type IncidentFilter struct {
	Open   bool   // only incidents not closed
	Status string // only this status
	UnitID string // only incidents this unit is actively assigned to
	Limit  int
}

// Incidents lists incidents, highest priority and oldest first.
func (s *Service) Incidents(f IncidentFilter) []*Incident {
	s.mu.RLock()
	out := make([]*Incident, 0, 64)
	for _, in := range s.st.Incidents {
		if f.Open && in.Status == IncidentClosed {
			continue
		}
		if f.Status != "" && string(in.Status) != f.Status {
			continue
		}
		if f.UnitID != "" && in.ActiveAssignment(f.UnitID) == nil {
			continue
		}
		out = append(out, cloneIncident(in))
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Priority != out[j].Priority {
			return out[i].Priority < out[j].Priority
		}
		return out[i].CreatedAt.Before(out[j].CreatedAt)
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out
}

// Units lists units by call sign.
func (s *Service) Units() []*Unit {
	s.mu.RLock()
	out := make([]*Unit, 0, len(s.st.Units))
	for _, u := range s.st.Units {
		out = append(out, cloneUnit(u))
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].CallSign < out[j].CallSign })
	return out
}

// Calls lists calls, newest first; active only ends at the first ended one.
func (s *Service) Calls(active bool, limit int) []*Call {
	s.mu.RLock()
	out := make([]*Call, 0, 64)
	for _, c := range s.st.Calls {
		if active && c.EndedAt != nil {
			continue
		}
		out = append(out, cloneCall(c))
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ReceivedAt.After(out[j].ReceivedAt) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// Alerts lists active alerts, oldest first.
func (s *Service) Alerts() []*Alert {
	s.mu.RLock()
	out := make([]*Alert, 0)
	for _, a := range s.st.Alerts {
		if a.Active {
			c := *a
			out = append(out, &c)
		}
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].RaisedAt.Before(out[j].RaisedAt) })
	return out
}
