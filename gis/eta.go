package gis

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ETAFrom is one unit's starting point for an ETA request.
type ETAFrom struct {
	Point Point
	Kind  string // unit kind: selects the straight-line speed
}

// ETA is one estimated time of arrival.
type ETA struct {
	Seconds float64 `json:"eta_s"`
	Metres  float64 `json:"distance_m"` // route distance (OSRM) or straight-line × detour
	Source  string  `json:"source"`     // "osrm" or "straight_line"
	// Fallback says why the straight-line estimate was used although a
	// routing provider is configured ("" if it was not needed).
	Fallback string `json:"fallback,omitempty"`
}

// ETAProvider estimates travel times from many units to one point. It
// returns one ETA per entry of from, in order. Implementations that fail
// should fall back and say so in ETA.Fallback rather than return an error.
type ETAProvider interface {
	ETAs(ctx context.Context, to Point, from []ETAFrom) ([]ETA, error)
}

// StraightLine estimates ETA as great-circle distance × Detour ÷ speed of
// the unit's kind.
//
// Defaults (urban patrol, not blue-light maximums, which vary too much to
// promise): Detour 1.4 (typical road-network circuity in a city grid);
// speeds car 40 km/h, motorcycle 45 km/h, foot 5 km/h, tablet_post (a fixed
// National Guard post, responding on foot) 5 km/h; unknown kinds use Default
// 40 km/h.
type StraightLine struct {
	Detour  float64            // ≥ 1; 0 = 1.4
	Speeds  map[string]float64 // m/s by unit kind; nil = defaults above
	Default float64            // m/s for kinds not in Speeds; 0 = 40 km/h
}

// DefaultSpeeds are StraightLine's speeds in m/s by unit kind.
var DefaultSpeeds = map[string]float64{
	"car":         40 / 3.6,
	"motorcycle":  45 / 3.6,
	"foot":        5 / 3.6,
	"tablet_post": 5 / 3.6,
}

func (s StraightLine) detour() float64 {
	if s.Detour < 1 {
		return 1.4
	}
	return s.Detour
}

// speed is the speed of a kind in m/s.
func (s StraightLine) speed(kind string) float64 {
	speeds := s.Speeds
	if speeds == nil {
		speeds = DefaultSpeeds
	}
	if v, ok := speeds[kind]; ok && v > 0 {
		return v
	}
	if s.Default > 0 {
		return s.Default
	}
	return 40 / 3.6
}

// maxSpeed is the fastest speed of any kind, known or not.
func (s StraightLine) maxSpeed() float64 {
	v := s.speed("")
	speeds := s.Speeds
	if speeds == nil {
		speeds = DefaultSpeeds
	}
	for _, x := range speeds {
		v = max(v, x)
	}
	return v
}

func (s StraightLine) one(to Point, f ETAFrom) ETA {
	d := Distance(f.Point, to) * s.detour()
	return ETA{Seconds: d / s.speed(f.Kind), Metres: d, Source: "straight_line"}
}

// ETAs implements ETAProvider; it never fails.
func (s StraightLine) ETAs(_ context.Context, to Point, from []ETAFrom) ([]ETA, error) {
	return s.appendETAs(make([]ETA, 0, len(from)), to, from), nil
}

// appendETAs appends one ETA per entry of from to dst.
func (s StraightLine) appendETAs(dst []ETA, to Point, from []ETAFrom) []ETA {
	for _, f := range from {
		dst = append(dst, s.one(to, f))
	}
	return dst
}

// asStraightLine returns the provider as a StraightLine if it is one
// (by value or pointer): the index can rank by it directly.
func asStraightLine(p ETAProvider) (*StraightLine, bool) {
	switch sl := p.(type) {
	case StraightLine:
		return &sl, true
	case *StraightLine:
		return sl, sl != nil
	}
	return nil, false
}

// OSRMConfig configures the OSRM table adapter.
type OSRMConfig struct {
	BaseURL  string        // e.g. http://osrm:5000
	Profile  string        // default "driving"
	Timeout  time.Duration // per request, default 300 ms: a dispatcher waits for this
	Client   *http.Client  // default http.DefaultClient (the timeout comes from ctx)
	Fallback StraightLine  // used on error, per unit when OSRM finds no route
	MaxTable int           // most sources per request, default 100 (osrm-routed --max-table-size)
}

// OSRM asks an OSRM server's Table service
// (https://project-osrm.org/docs/v5.24.0/api/#table-service) for the
// driving time from each unit to the point. It puts the destination first
// and asks sources=1;2;…;n&destinations=0, so the times are unit → incident
// (one-way streets make the reverse direction different).
type OSRM struct {
	cfg  OSRMConfig
	base *url.URL
}

// NewOSRM validates cfg.
func NewOSRM(cfg OSRMConfig) (*OSRM, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: OSRM base URL %q must be http(s)://host[:port]", ErrBadConfig, cfg.BaseURL)
	}
	if cfg.Profile == "" {
		cfg.Profile = "driving"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 300 * time.Millisecond
	}
	if cfg.Client == nil {
		cfg.Client = http.DefaultClient
	}
	if cfg.MaxTable <= 0 {
		cfg.MaxTable = 100
	}
	return &OSRM{cfg: cfg, base: u}, nil
}

// osrmTable is the Table service response.
type osrmTable struct {
	Code      string       `json:"code"`
	Message   string       `json:"message"`
	Durations [][]*float64 `json:"durations"`
	Distances [][]*float64 `json:"distances"`
}

// ETAs implements ETAProvider. On any OSRM failure every ETA comes from the
// straight-line fallback with the reason in ETA.Fallback; the error is nil
// because the answer is still usable.
func (o *OSRM) ETAs(ctx context.Context, to Point, from []ETAFrom) ([]ETA, error) {
	out := make([]ETA, len(from))
	for start := 0; start < len(from); start += o.cfg.MaxTable {
		chunk := from[start:min(start+o.cfg.MaxTable, len(from))]
		if err := o.table(ctx, to, chunk, out[start:]); err != nil {
			for i := range chunk {
				e := o.cfg.Fallback.one(to, chunk[i])
				e.Fallback = err.Error()
				out[start+i] = e
			}
		}
	}
	return out, nil
}

func (o *OSRM) table(ctx context.Context, to Point, from []ETAFrom, out []ETA) error {
	var coords, sources strings.Builder
	coords.WriteString(ll(to))
	for i, f := range from {
		coords.WriteByte(';')
		coords.WriteString(ll(f.Point))
		if i > 0 {
			sources.WriteByte(';')
		}
		sources.WriteString(strconv.Itoa(i + 1))
	}
	u := *o.base
	u.Path = strings.TrimSuffix(u.Path, "/") + "/table/v1/" + o.cfg.Profile + "/" + coords.String()
	u.RawQuery = "sources=" + sources.String() + "&destinations=0&annotations=duration,distance"
	ctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("%w: osrm: %v", ErrETA, err)
	}
	resp, err := o.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: osrm: %v", ErrETA, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%w: osrm: read: %v", ErrETA, err)
	}
	var t osrmTable
	if err := json.Unmarshal(body, &t); err != nil {
		return fmt.Errorf("%w: osrm: HTTP %d, body not Table JSON: %v", ErrETA, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || t.Code != "Ok" {
		return fmt.Errorf("%w: osrm: HTTP %d code %q: %s", ErrETA, resp.StatusCode, t.Code, t.Message)
	}
	if len(t.Durations) != len(from) {
		return fmt.Errorf("%w: osrm: %d duration rows for %d sources", ErrETA, len(t.Durations), len(from))
	}
	for i := range from {
		row := t.Durations[i]
		if len(row) != 1 || row[0] == nil {
			e := o.cfg.Fallback.one(to, from[i])
			e.Fallback = "osrm: no route from this unit"
			out[i] = e
			continue
		}
		e := ETA{Seconds: *row[0], Source: "osrm"}
		if i < len(t.Distances) && len(t.Distances[i]) == 1 && t.Distances[i][0] != nil {
			e.Metres = *t.Distances[i][0]
		} else {
			e.Metres = Distance(from[i].Point, to)
		}
		out[i] = e
	}
	return nil
}

func ll(p Point) string {
	return strconv.FormatFloat(p.Lon, 'f', 6, 64) + "," + strconv.FormatFloat(p.Lat, 'f', 6, 64)
}
