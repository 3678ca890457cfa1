package dispatch

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// timers raises and clears the alerts that make sure nothing is forgotten:
// an incident waiting for a unit longer than its priority's target, an
// assignment nobody acknowledged, a unit on scene for a long time without a
// status (welfare check). Every node runs them; an alert is an aggregate
// ("alert:<kind>:<subject>") appended with its expected version, so when two
// nodes notice the same condition only one raises it.
func (s *Service) timers(ctx context.Context) {
	defer s.wg.Done()
	tick := time.NewTicker(s.cfg.TimerInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.CheckTimers(ctx)
		}
	}
}

type alertChange struct {
	raise   bool
	id      string
	payload AlertRaised
	reason  string
}

// CheckTimers evaluates every timer once. The background loop calls it each
// TimerInterval; tests call it directly with a controlled clock.
func (s *Service) CheckTimers(ctx context.Context) {
	now := s.cfg.Now()
	var changes []alertChange
	want := map[string]bool{}
	s.mu.RLock()
	for _, in := range s.st.Incidents {
		if in.Status == IncidentNew || in.Status == IncidentQueued {
			if target := s.cat.Target(in.Priority); now.Sub(in.CreatedAt) > target {
				id := AlertUnassigned + ":" + in.ID
				want[id] = true
				changes = append(changes, alertChange{raise: true, id: id, payload: AlertRaised{
					AlertID: id, Kind: AlertUnassigned, IncidentID: in.ID,
					Message: fmt.Sprintf("%s (priority %d) has waited %s for a unit; target %s", in.Number, in.Priority, now.Sub(in.CreatedAt).Round(time.Second), target),
				}})
			}
		}
		for _, a := range in.Assignments {
			if a.Active() && a.AcknowledgedAt == nil && now.Sub(a.AssignedAt) > s.cfg.UnacknowledgedAfter {
				id := AlertUnacknowledged + ":" + in.ID + ":" + a.UnitID
				want[id] = true
				changes = append(changes, alertChange{raise: true, id: id, payload: AlertRaised{
					AlertID: id, Kind: AlertUnacknowledged, IncidentID: in.ID, UnitID: a.UnitID,
					Message: fmt.Sprintf("unit %s has not acknowledged %s for %s", a.UnitID, in.Number, now.Sub(a.AssignedAt).Round(time.Second)),
				}})
			}
		}
	}
	for _, u := range s.st.Units {
		if u.Status == UnitOnScene && now.Sub(u.StatusAt) > s.cfg.WelfareCheckAfter {
			id := AlertWelfareCheck + ":" + u.ID
			want[id] = true
			changes = append(changes, alertChange{raise: true, id: id, payload: AlertRaised{
				AlertID: id, Kind: AlertWelfareCheck, IncidentID: u.IncidentID, UnitID: u.ID,
				Message: fmt.Sprintf("unit %s has been on scene for %s without a status: check on the crew", u.CallSign, now.Sub(u.StatusAt).Round(time.Minute)),
			}})
		}
	}
	for id, a := range s.st.Alerts {
		if a.Active && timerAlert(a.Kind) && !want[id] {
			changes = append(changes, alertChange{id: id, reason: "resolved"})
		}
	}
	s.mu.RUnlock()

	for _, c := range changes {
		m := Meta{Actor: System}
		_, err := s.exec(ctx, m, "", func(t *tx) error {
			a := t.st.Alerts[c.id]
			if c.raise {
				if a != nil && a.Active {
					return errNoop
				}
				t.emit(EvAlertRaised, "alert:"+c.id, c.payload)
				return nil
			}
			if a == nil || !a.Active {
				return errNoop
			}
			t.emit(EvAlertCleared, "alert:"+c.id, AlertCleared{AlertID: c.id, Reason: c.reason})
			return nil
		})
		if err != nil && !errors.Is(err, errNoop) && ctx.Err() == nil {
			s.log.Warn("timer alert not recorded; will retry", "alert", c.id, "err", err)
		}
	}
}

// timerAlert tells the timers' own alert kinds from those other watchers
// (geofences, dispatch/geo.go) raise and clear.
func timerAlert(kind string) bool {
	return kind == AlertUnassigned || kind == AlertUnacknowledged || kind == AlertWelfareCheck
}
