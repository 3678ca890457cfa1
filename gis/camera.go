package gis

import (
	"fmt"
	"sync"

	"github.com/tidwall/rtree"
)

// Camera is a fixed CCTV camera (stream id "camera:<ID>" in video/).
type Camera struct {
	ID      string  `json:"id"`
	Lat     float64 `json:"lat"`
	Lon     float64 `json:"lon"`
	Heading float64 `json:"heading"` // degrees from north the camera looks at; Unknown for PTZ/dome
	FOV     float64 `json:"fov"`     // horizontal field of view, degrees; 0 if unknown
	Name    string  `json:"name,omitempty"`
}

func (c Camera) validate() error {
	if c.ID == "" || len(c.ID) > MaxDeviceIDLen {
		return fmt.Errorf("%w: camera id must be 1..%d bytes", ErrBadQuery, MaxDeviceIDLen)
	}
	if err := (Point{c.Lat, c.Lon}).Valid(); err != nil {
		return fmt.Errorf("camera %q: %w", c.ID, err)
	}
	if badNum(c.Heading) || badNum(c.FOV) || c.FOV < 0 || c.FOV > 360 {
		return fmt.Errorf("%w: camera %q heading/fov out of range", ErrBadQuery, c.ID)
	}
	return nil
}

// CameraHit is a camera with its distance from the query point.
type CameraHit struct {
	Camera
	Distance float64 `json:"distance_m"`
}

type camEntry struct {
	cam Camera
}

// CameraIndex is the in-process index of cameras (same R-tree search as
// units; cameras change rarely, so one RWMutex).
type CameraIndex struct {
	mu   sync.RWMutex
	tr   rtree.RTreeG[*camEntry]
	byID map[string]*camEntry
}

// NewCameraIndex returns an empty camera index.
func NewCameraIndex() *CameraIndex { return &CameraIndex{byID: make(map[string]*camEntry)} }

// Set adds or moves a camera.
func (ci *CameraIndex) Set(c Camera) error {
	if err := c.validate(); err != nil {
		return err
	}
	ci.mu.Lock()
	defer ci.mu.Unlock()
	if old := ci.byID[c.ID]; old != nil {
		p := [2]float64{old.cam.Lon, old.cam.Lat}
		ci.tr.Delete(p, p, old)
	}
	e := &camEntry{cam: c}
	p := [2]float64{c.Lon, c.Lat}
	ci.tr.Insert(p, p, e)
	ci.byID[c.ID] = e
	return nil
}

// Remove deletes a camera.
func (ci *CameraIndex) Remove(id string) {
	ci.mu.Lock()
	defer ci.mu.Unlock()
	if old := ci.byID[id]; old != nil {
		p := [2]float64{old.cam.Lon, old.cam.Lat}
		ci.tr.Delete(p, p, old)
		delete(ci.byID, id)
	}
}

// Len is the number of cameras.
func (ci *CameraIndex) Len() int {
	ci.mu.RLock()
	defer ci.mu.RUnlock()
	return len(ci.byID)
}

// Near returns the cameras within radius metres of p, nearest first, at most
// limit (0 = all).
func (ci *CameraIndex) Near(p Point, radius float64, limit int) ([]CameraHit, error) {
	if err := p.Valid(); err != nil {
		return nil, err
	}
	if badNum(radius) || radius <= 0 {
		return nil, fmt.Errorf("%w: camera radius must be > 0 metres", ErrBadQuery)
	}
	limA := metresToA(radius)
	o := newOrigin(p)
	var out []CameraHit
	ci.mu.RLock()
	defer ci.mu.RUnlock()
	ci.tr.Nearby(func(min, max [2]float64, _ *camEntry, item bool) float64 {
		if item {
			return o.pointA(min[1], min[0])
		}
		return boxLB(o.lat, o.lon, o.cosLat, min, max)
	}, func(_, _ [2]float64, e *camEntry, a float64) bool {
		if a > limA {
			return false
		}
		out = append(out, CameraHit{Camera: e.cam, Distance: hav2m(a)})
		return limit <= 0 || len(out) < limit
	})
	return out, nil
}
