package gis

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync/atomic"

	"github.com/tidwall/rtree"
	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/geojson"
)

// Limits on sector GeoJSON (a city's districts and patrol sectors are a few
// hundred polygons of a few hundred vertices).
const (
	MaxGeoJSONBytes   = 16 << 20
	MaxSectors        = 10_000
	MaxSectorVertices = 2_000_000 // over the whole collection
)

// Sector is a patrol sector or district.
type Sector struct {
	ID   string  `json:"id"`
	Name string  `json:"name"`
	Geom geom.T  `json:"-"` // *geom.Polygon or *geom.MultiPolygon, [lon, lat]
	Area float64 `json:"-"` // square degrees, only to order overlapping sectors
	// Centroid is a representative point (the centre of the largest part's
	// bounding box) used to find units that could move up.
	Centroid Point `json:"centroid"`
}

// part is one polygon of a sector, with its rings as flat [lon, lat] pairs.
type part struct {
	sector *Sector
	rings  [][][2]float64 // rings[0] outer, the rest holes
	min    [2]float64
	max    [2]float64
}

// contains uses the even-odd rule over all rings, which makes holes work
// without telling outer and inner rings apart.
func (p *part) contains(lon, lat float64) bool {
	if lon < p.min[0] || lon > p.max[0] || lat < p.min[1] || lat > p.max[1] {
		return false
	}
	in := false
	for _, r := range p.rings {
		j := len(r) - 1
		for i := 0; i < len(r); i++ {
			xi, yi := r[i][0], r[i][1]
			xj, yj := r[j][0], r[j][1]
			if (yi > lat) != (yj > lat) && lon < (xj-xi)*(lat-yi)/(yj-yi)+xi {
				in = !in
			}
			j = i
		}
	}
	return in
}

type sectorSet struct {
	tr    rtree.RTreeG[*part]
	byID  map[string]*Sector
	order []*Sector
}

// SectorIndex holds the loaded sectors. Load replaces the whole set
// atomically (readers see the old or the new set, never a mix); lookups are
// lock-free.
type SectorIndex struct {
	set atomic.Pointer[sectorSet]
}

// NewSectorIndex returns an index with no sectors.
func NewSectorIndex() *SectorIndex {
	s := &SectorIndex{}
	s.set.Store(&sectorSet{byID: map[string]*Sector{}})
	return s
}

// Load parses a GeoJSON FeatureCollection (RFC 7946) of Polygon and
// MultiPolygon features, each with properties.id (or the feature id) and
// properties.name, validates all of it and then replaces the loaded
// sectors. On any error nothing changes. It returns the number of sectors.
func (si *SectorIndex) Load(data []byte) (int, error) {
	set, err := parseSectors(data)
	if err != nil {
		return 0, err
	}
	si.set.Store(set)
	return len(set.order), nil
}

// parseSectors validates a sector FeatureCollection without storing it.
func parseSectors(data []byte) (*sectorSet, error) {
	if len(data) > MaxGeoJSONBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d; split the file", ErrTooLarge, len(data), MaxGeoJSONBytes)
	}
	var head struct {
		Type     string            `json:"type"`
		Features []json.RawMessage `json:"features"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%w: not JSON: %v", ErrBadGeoJSON, err)
	}
	if head.Type != "FeatureCollection" {
		return nil, fmt.Errorf("%w: top-level type is %q, want \"FeatureCollection\"", ErrBadGeoJSON, head.Type)
	}
	if len(head.Features) > MaxSectors {
		return nil, fmt.Errorf("%w: %d features, limit %d", ErrTooLarge, len(head.Features), MaxSectors)
	}
	set := &sectorSet{byID: make(map[string]*Sector, len(head.Features))}
	vertices := 0
	for i, raw := range head.Features {
		s, parts, err := parseSector(raw, &vertices)
		if err != nil {
			return nil, fmt.Errorf("feature %d: %w", i, err)
		}
		if _, dup := set.byID[s.ID]; dup {
			return nil, fmt.Errorf("%w: feature %d: duplicate sector id %q", ErrBadGeoJSON, i, s.ID)
		}
		set.byID[s.ID] = s
		set.order = append(set.order, s)
		for _, p := range parts {
			set.tr.Insert(p.min, p.max, p)
		}
	}
	return set, nil
}

func parseSector(raw json.RawMessage, vertices *int) (s *Sector, parts []*part, err error) {
	// go-geom's decoder is trusted for structure, not for every malformed
	// nesting an attacker can send: turn a panic into an error.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: malformed geometry (%v)", ErrBadGeoJSON, r)
		}
	}()
	var f geojson.Feature
	if err := json.Unmarshal(raw, &f); err != nil {
		var ut geojson.ErrUnsupportedType
		if errors.As(err, &ut) {
			return nil, nil, fmt.Errorf("%w: unsupported type %q; sectors must be Features with Polygon or MultiPolygon geometry", ErrBadGeoJSON, string(ut))
		}
		return nil, nil, fmt.Errorf("%w: %v", ErrBadGeoJSON, err)
	}
	id, _ := f.Properties["id"].(string)
	if id == "" {
		if n, ok := f.Properties["id"].(float64); ok {
			id = fmt.Sprint(n)
		}
	}
	if id == "" {
		id = f.ID
	}
	if id == "" || len(id) > MaxDeviceIDLen {
		return nil, nil, fmt.Errorf("%w: missing properties.id (1..%d bytes)", ErrBadGeoJSON, MaxDeviceIDLen)
	}
	name, _ := f.Properties["name"].(string)
	s = &Sector{ID: id, Name: name, Geom: f.Geometry}
	var polys []*geom.Polygon
	switch g := f.Geometry.(type) {
	case *geom.Polygon:
		polys = []*geom.Polygon{g}
	case *geom.MultiPolygon:
		for i := 0; i < g.NumPolygons(); i++ {
			polys = append(polys, g.Polygon(i))
		}
		if len(polys) == 0 {
			return nil, nil, fmt.Errorf("%w: sector %q: empty MultiPolygon", ErrBadGeoJSON, id)
		}
	case nil:
		return nil, nil, fmt.Errorf("%w: sector %q has no geometry", ErrBadGeoJSON, id)
	default:
		return nil, nil, fmt.Errorf("%w: sector %q geometry is %T; use Polygon or MultiPolygon", ErrBadGeoJSON, id, g)
	}
	var bestArea float64
	for pi, pg := range polys {
		if pg.NumLinearRings() == 0 {
			return nil, nil, fmt.Errorf("%w: sector %q polygon %d has no rings", ErrBadGeoJSON, id, pi)
		}
		p := &part{sector: s, min: [2]float64{math.Inf(1), math.Inf(1)}, max: [2]float64{math.Inf(-1), math.Inf(-1)}}
		for ri := 0; ri < pg.NumLinearRings(); ri++ {
			coords := pg.LinearRing(ri).Coords()
			if len(coords) < 4 {
				return nil, nil, fmt.Errorf("%w: sector %q polygon %d ring %d has %d positions; a ring needs at least 4 (RFC 7946 §3.1.6)", ErrBadGeoJSON, id, pi, ri, len(coords))
			}
			*vertices += len(coords)
			if *vertices > MaxSectorVertices {
				return nil, nil, fmt.Errorf("%w: more than %d vertices in total", ErrTooLarge, MaxSectorVertices)
			}
			ring := make([][2]float64, len(coords))
			for ci, c := range coords {
				if len(c) < 2 {
					return nil, nil, fmt.Errorf("%w: sector %q polygon %d ring %d position %d has fewer than 2 numbers", ErrBadGeoJSON, id, pi, ri, ci)
				}
				lon, lat := c[0], c[1]
				if badNum(lon) || badNum(lat) || lon < -180 || lon > 180 || lat < -90 || lat > 90 {
					return nil, nil, fmt.Errorf("%w: sector %q polygon %d ring %d position %d [%v, %v] is out of range; positions are [longitude, latitude]", ErrBadGeoJSON, id, pi, ri, ci, lon, lat)
				}
				ring[ci] = [2]float64{lon, lat}
				if ri == 0 {
					p.min[0], p.min[1] = math.Min(p.min[0], lon), math.Min(p.min[1], lat)
					p.max[0], p.max[1] = math.Max(p.max[0], lon), math.Max(p.max[1], lat)
				}
			}
			if ring[0] != ring[len(ring)-1] {
				return nil, nil, fmt.Errorf("%w: sector %q polygon %d ring %d is not closed: first and last positions differ (RFC 7946 §3.1.6)", ErrBadGeoJSON, id, pi, ri)
			}
			p.rings = append(p.rings, ring)
		}
		a := (p.max[0] - p.min[0]) * (p.max[1] - p.min[1])
		s.Area += a
		if a >= bestArea {
			bestArea = a
			s.Centroid = Point{Lat: (p.min[1] + p.max[1]) / 2, Lon: (p.min[0] + p.max[0]) / 2}
		}
		parts = append(parts, p)
	}
	return s, parts, nil
}

// Lookup returns the sector containing p. If sectors overlap, the smallest
// (by bounding-box area) wins, so a district's sub-sector beats the
// district.
func (si *SectorIndex) Lookup(p Point) (*Sector, bool) {
	set := si.set.Load()
	var best *Sector
	pt := [2]float64{p.Lon, p.Lat}
	set.tr.Search(pt, pt, func(_, _ [2]float64, pa *part) bool {
		if (best == nil || pa.sector.Area < best.Area) && pa.contains(p.Lon, p.Lat) {
			best = pa.sector
		}
		return true
	})
	return best, best != nil
}

// Contains reports whether sector id contains p.
func (si *SectorIndex) Contains(id string, p Point) bool {
	set := si.set.Load()
	if set.byID[id] == nil {
		return false
	}
	found := false
	pt := [2]float64{p.Lon, p.Lat}
	set.tr.Search(pt, pt, func(_, _ [2]float64, pa *part) bool {
		if pa.sector.ID == id && pa.contains(p.Lon, p.Lat) {
			found = true
			return false
		}
		return true
	})
	return found
}

// Get returns a sector by id.
func (si *SectorIndex) Get(id string) (*Sector, bool) {
	s := si.set.Load().byID[id]
	return s, s != nil
}

// All returns the sectors sorted by id.
func (si *SectorIndex) All() []*Sector {
	out := append([]*Sector(nil), si.set.Load().order...)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Len is the number of loaded sectors.
func (si *SectorIndex) Len() int { return len(si.set.Load().order) }
