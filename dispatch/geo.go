package dispatch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Alert kinds raised by the tracking watcher (gis.Watcher through web). They
// use the same alert aggregate as the timers ("alert:<kind>:<subject>"), so
// when every node's watcher notices the same condition, the journal's
// version check lets exactly one raise it, and the timers leave them alone.
const (
	AlertLeftSector      = "unit_left_sector"
	AlertSectorUncovered = "sector_uncovered"
	AlertSignalStale     = "unit_signal_stale"
	AlertFixInaccurate   = "fix_inaccurate"
)

// GeoAlertKind reports whether kind is one of the tracking watcher's kinds.
func GeoAlertKind(kind string) bool {
	switch kind {
	case AlertLeftSector, AlertSectorUncovered, AlertSignalStale, AlertFixInaccurate:
		return true
	}
	return false
}

// MoveUp is a unit that could move into an uncovered sector.
type MoveUp struct {
	UnitID    string
	DistanceM float64
}

// UnitLeftSector raises "unit left its sector" for unitID (once).
func (s *Service) UnitLeftSector(ctx context.Context, unitID, sectorID string) error {
	return s.raiseGeo(ctx, AlertLeftSector, unitID, unitID, func(st *State) string {
		return fmt.Sprintf("unit %s is outside its assigned sector %s", callSign(st, unitID), sectorID)
	})
}

// SectorUncovered raises "sector has no available unit" (once); the message
// names the nearest available units that could move up.
func (s *Service) SectorUncovered(ctx context.Context, sectorID, sectorName string, moveUp []MoveUp) error {
	return s.raiseGeo(ctx, AlertSectorUncovered, sectorID, "", func(st *State) string {
		name := sectorID
		if sectorName != "" && sectorName != sectorID {
			name = sectorName + " (" + sectorID + ")"
		}
		if len(moveUp) == 0 {
			return fmt.Sprintf("sector %s has no available unit, and no available unit is on the map to move up", name)
		}
		parts := make([]string, len(moveUp))
		for i, m := range moveUp {
			parts[i] = fmt.Sprintf("%s (%.1f km)", callSign(st, m.UnitID), m.DistanceM/1000)
		}
		return fmt.Sprintf("sector %s has no available unit; nearest that could move up: %s", name, strings.Join(parts, ", "))
	})
}

// SignalStale raises "no position from the unit" (once).
func (s *Service) SignalStale(ctx context.Context, unitID string, age time.Duration) error {
	return s.raiseGeo(ctx, AlertSignalStale, unitID, unitID, func(st *State) string {
		return fmt.Sprintf("no position from unit %s for %s: check the terminal or call the crew", callSign(st, unitID), age.Round(time.Second))
	})
}

// FixInaccurate raises "the unit's position is inaccurate" (once).
func (s *Service) FixInaccurate(ctx context.Context, unitID string, accuracyM, limitM float64) error {
	return s.raiseGeo(ctx, AlertFixInaccurate, unitID, unitID, func(st *State) string {
		return fmt.Sprintf("position of unit %s is only accurate to %.0f m (limit %.0f m); its place on the map is uncertain", callSign(st, unitID), accuracyM, limitM)
	})
}

// ClearGeoAlert clears a tracking alert when its condition has ended. It is
// a no-op if the alert is not active.
func (s *Service) ClearGeoAlert(ctx context.Context, kind, subject, reason string) error {
	if !GeoAlertKind(kind) {
		return fmt.Errorf("%w: %q is not a tracking alert kind", ErrInvalid, kind)
	}
	id := kind + ":" + subject
	_, err := s.exec(ctx, Meta{Actor: System}, "", func(t *tx) error {
		a := t.st.Alerts[id]
		if a == nil || !a.Active {
			return errNoop
		}
		t.emit(EvAlertCleared, "alert:"+id, AlertCleared{AlertID: id, Reason: reason})
		return nil
	})
	if errors.Is(err, errNoop) {
		return nil
	}
	return err
}

// ActiveGeoAlerts lists the active tracking alerts, so a watcher starting
// up can clear the ones whose condition ended while no node watched.
func (s *Service) ActiveGeoAlerts() []Alert {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Alert
	for _, a := range s.st.Alerts {
		if a.Active && GeoAlertKind(a.Kind) {
			out = append(out, *a)
		}
	}
	return out
}

func (s *Service) raiseGeo(ctx context.Context, kind, subject, unitID string, msg func(st *State) string) error {
	if subject == "" || len(subject) > 200 {
		return fmt.Errorf("%w: %s alert needs a subject of 1..200 bytes", ErrInvalid, kind)
	}
	id := kind + ":" + subject
	_, err := s.exec(ctx, Meta{Actor: System}, "", func(t *tx) error {
		if a := t.st.Alerts[id]; a != nil && a.Active {
			return errNoop
		}
		t.emit(EvAlertRaised, "alert:"+id, AlertRaised{AlertID: id, Kind: kind, UnitID: unitID, Message: msg(t.st)})
		return nil
	})
	if errors.Is(err, errNoop) {
		return nil
	}
	return err
}

// callSign names a unit for people; the id if it is not registered.
func callSign(st *State, unitID string) string {
	if u := st.Units[unitID]; u != nil && u.CallSign != "" {
		return u.CallSign
	}
	return unitID
}

// fillSector names the sector of a location that has none, through
// Config.Sector. Called before the command's events are built, so the sector
// is in the journal and every node shows the same one.
func (s *Service) fillSector(l *Location) {
	if l.Sector == "" && s.cfg.Sector != nil {
		l.Sector = s.cfg.Sector(l.Lat, l.Lon)
	}
}
