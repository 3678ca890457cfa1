package video

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Camera is a CCTV camera pulled over RTSP. RTSPURL and SubstreamURL may
// carry credentials: they are stored, but MarshalJSON, String and LogValue
// never show them; send Public() to browsers.
type Camera struct {
	ID           string
	Name         string
	Lat, Lon     float64 // WGS 84 degrees
	Heading      float64 // degrees clockwise from north the camera looks at
	FOV          float64 // horizontal field of view, degrees (0 = unknown)
	RTSPURL      string
	SubstreamURL string // an H.264 substream, used when the main stream is not H.264
	Agency       string
	Tags         []string
	Codec        string // hint: "h264", "h265" or "" (unknown; found at DESCRIBE)
}

// CameraPublic is what browsers and other packages may see of a camera.
type CameraPublic struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Lat          float64  `json:"lat"`
	Lon          float64  `json:"lon"`
	Heading      float64  `json:"heading"`
	FOV          float64  `json:"fov,omitempty"`
	Agency       string   `json:"agency,omitempty"`
	Tags         []string `json:"tags,omitempty"`
	Codec        string   `json:"codec,omitempty"`
	HasSubstream bool     `json:"has_substream,omitempty"`
	StreamID     string   `json:"stream"`
}

// Public returns the camera without its URLs.
func (c Camera) Public() CameraPublic {
	return CameraPublic{ID: c.ID, Name: c.Name, Lat: c.Lat, Lon: c.Lon, Heading: c.Heading, FOV: c.FOV,
		Agency: c.Agency, Tags: c.Tags, Codec: c.Codec, HasSubstream: c.SubstreamURL != "", StreamID: "camera:" + c.ID}
}

// MarshalJSON encodes the public view, so a Camera accidentally written to
// a browser or a log leaks no credentials.
func (c Camera) MarshalJSON() ([]byte, error) { return json.Marshal(c.Public()) }

// String shows the camera with credentials redacted.
func (c Camera) String() string {
	return fmt.Sprintf("camera %s %q at %.6f,%.6f url=%s", c.ID, c.Name, c.Lat, c.Lon, RedactURL(c.RTSPURL))
}

// LogValue keeps credentials out of slog output.
func (c Camera) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", c.ID), slog.String("name", c.Name), slog.String("url", RedactURL(c.RTSPURL)))
}

// RedactURL replaces the user info of a URL with "xxxxx".
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<unparseable url>"
	}
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
	return u.String()
}

// CameraPoint is what the geo index needs of a camera.
type CameraPoint struct {
	ID       string
	Lat, Lon float64
}

// Validate checks one camera record.
func (c *Camera) Validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: %s", ErrBadCamera, fmt.Sprintf(f, a...)) }
	switch {
	case c.ID == "" || len(c.ID) > 64 || strings.ContainsAny(c.ID, ":/?#% \t\r\n\x00"):
		return bad("id %q: 1..64 characters without ':/?#%%' or spaces", c.ID)
	case len(c.Name) > 200:
		return bad("name longer than 200 characters")
	case math.IsNaN(c.Lat) || c.Lat < -90 || c.Lat > 90:
		return bad("lat %v out of range -90..90", c.Lat)
	case math.IsNaN(c.Lon) || c.Lon < -180 || c.Lon > 180:
		return bad("lon %v out of range -180..180", c.Lon)
	case math.IsNaN(c.Heading) || c.Heading < 0 || c.Heading >= 360:
		return bad("heading %v out of range 0..<360", c.Heading)
	case math.IsNaN(c.FOV) || c.FOV < 0 || c.FOV > 360:
		return bad("fov %v out of range 0..360", c.FOV)
	}
	if err := checkRTSPURL(c.RTSPURL); err != nil {
		return bad("rtsp_url: %v", err)
	}
	if c.SubstreamURL != "" {
		if err := checkRTSPURL(c.SubstreamURL); err != nil {
			return bad("substream_url: %v", err)
		}
	}
	switch c.Codec {
	case "", "h264", "h265":
	default:
		return bad("codec %q: use h264, h265 or leave empty", c.Codec)
	}
	if len(c.Tags) > 32 {
		return bad("more than 32 tags")
	}
	return nil
}

func checkRTSPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL") // the parse error would echo the credentials
	}
	if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
		return fmt.Errorf("scheme %q: must be rtsp or rtsps", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	return nil
}

// MaxImportBytes limits a camera import file.
const MaxImportBytes = 16 << 20

// importCamera is the import and storage form, with credentials.
type importCamera struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Lat          float64  `json:"lat"`
	Lon          float64  `json:"lon"`
	Heading      float64  `json:"heading"`
	FOV          float64  `json:"fov"`
	RTSPURL      string   `json:"rtsp_url"`
	SubstreamURL string   `json:"substream_url,omitempty"`
	Agency       string   `json:"agency,omitempty"`
	Tags         []string `json:"tags,omitempty"`
	Codec        string   `json:"codec,omitempty"`
}

func (i importCamera) camera() Camera  { return Camera(i) }
func storedForm(c Camera) importCamera { return importCamera(c) }

// ImportError lists every bad row of an import.
type ImportError struct {
	Rows []RowError
}

// RowError is one bad row; Row counts from 1 and includes the CSV header.
type RowError struct {
	Row int
	Err error
}

func (e *ImportError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "video: %d bad camera rows:", len(e.Rows))
	for i, r := range e.Rows {
		if i == 20 {
			fmt.Fprintf(&b, " ... and %d more", len(e.Rows)-20)
			break
		}
		fmt.Fprintf(&b, " row %d: %v;", r.Row, r.Err)
	}
	return b.String()
}

func (e *ImportError) Unwrap() error { return ErrBadCamera }

// ParseCamerasJSON reads a JSON array of cameras ({"id","name","lat","lon",
// "heading","fov","rtsp_url","substream_url","agency","tags","codec"}).
// Every row is checked; all bad rows are reported in one *ImportError.
func ParseCamerasJSON(r io.Reader) ([]Camera, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxImportBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxImportBytes {
		return nil, fmt.Errorf("%w: more than %d bytes; split the file", ErrImportTooLarge, MaxImportBytes)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: want a JSON array of camera objects: %v", ErrBadCamera, err)
	}
	var out []Camera
	var ie ImportError
	seen := map[string]int{}
	for i, m := range raw {
		var ic importCamera
		dec := json.NewDecoder(bytes.NewReader(m))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ic); err != nil {
			ie.Rows = append(ie.Rows, RowError{i + 1, fmt.Errorf("%w: %v", ErrBadCamera, err)})
			continue
		}
		out = checkRow(out, &ie, seen, i+1, ic.camera())
	}
	if len(ie.Rows) > 0 {
		return nil, &ie
	}
	return out, nil
}

var csvColumns = []string{"id", "name", "lat", "lon", "heading", "fov", "rtsp_url", "substream_url", "agency", "tags", "codec"}

// ParseCamerasCSV reads cameras from CSV with a header row naming the
// columns id,name,lat,lon,heading,fov,rtsp_url[,substream_url,agency,tags,codec]
// in any order; tags are separated by ';'.
func ParseCamerasCSV(r io.Reader) ([]Camera, error) {
	cr := csv.NewReader(io.LimitReader(r, MaxImportBytes+1))
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%w: reading CSV header: %v", ErrBadCamera, err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if !slices.Contains(csvColumns, h) {
			return nil, fmt.Errorf("%w: unknown CSV column %q; known: %s", ErrBadCamera, h, strings.Join(csvColumns, ","))
		}
		col[h] = i
	}
	for _, need := range []string{"id", "lat", "lon", "rtsp_url"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("%w: CSV header lacks column %q", ErrBadCamera, need)
		}
	}
	var out []Camera
	var ie ImportError
	seen := map[string]int{}
	for row := 2; ; row++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || cr.InputOffset() > MaxImportBytes {
				return nil, fmt.Errorf("%w: more than %d bytes; split the file", ErrImportTooLarge, MaxImportBytes)
			}
			ie.Rows = append(ie.Rows, RowError{row, fmt.Errorf("%w: %v", ErrBadCamera, err)})
			if len(ie.Rows) > 1000 {
				break
			}
			continue
		}
		if cr.InputOffset() > MaxImportBytes {
			return nil, fmt.Errorf("%w: more than %d bytes; split the file", ErrImportTooLarge, MaxImportBytes)
		}
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		c := Camera{ID: get("id"), Name: get("name"), RTSPURL: get("rtsp_url"), SubstreamURL: get("substream_url"),
			Agency: get("agency"), Codec: strings.ToLower(get("codec"))}
		if t := get("tags"); t != "" {
			for _, tag := range strings.Split(t, ";") {
				if tag = strings.TrimSpace(tag); tag != "" {
					c.Tags = append(c.Tags, tag)
				}
			}
		}
		var perr error
		num := func(name string, dst *float64) {
			s := get(name)
			if s == "" || perr != nil {
				return
			}
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				perr = fmt.Errorf("%w: %s %q is not a number", ErrBadCamera, name, s)
			}
			*dst = v
		}
		num("lat", &c.Lat)
		num("lon", &c.Lon)
		num("heading", &c.Heading)
		num("fov", &c.FOV)
		if perr != nil {
			ie.Rows = append(ie.Rows, RowError{row, perr})
			continue
		}
		out = checkRow(out, &ie, seen, row, c)
	}
	if len(ie.Rows) > 0 {
		return nil, &ie
	}
	return out, nil
}

func checkRow(out []Camera, ie *ImportError, seen map[string]int, row int, c Camera) []Camera {
	if err := c.Validate(); err != nil {
		ie.Rows = append(ie.Rows, RowError{row, err})
		return out
	}
	if prev, dup := seen[c.ID]; dup {
		ie.Rows = append(ie.Rows, RowError{row, fmt.Errorf("%w: id %q repeats row %d", ErrBadCamera, c.ID, prev)})
		return out
	}
	seen[c.ID] = row
	return append(out, c)
}

// Cameras is the camera registry: in memory, persisted to a JSON file
// (embedded mode) or to the Redis hash kuzet:video:cameras. mu guards
// byID; persistence happens under mu so file/hash order matches memory.
type Cameras struct {
	mu   sync.RWMutex
	byID map[string]Camera
	file string
	rdb  *redis.Client
}

const camerasRedisKey = "kuzet:video:cameras"

// NewCameras opens the registry. With rdb it reads and writes the Redis
// hash; otherwise, with dataDir, the file dataDir/cameras.json; with
// neither it lives in memory only.
func NewCameras(ctx context.Context, dataDir string, rdb *redis.Client) (*Cameras, error) {
	c := &Cameras{byID: map[string]Camera{}, rdb: rdb}
	switch {
	case rdb != nil:
		all, err := rdb.HGetAll(ctx, camerasRedisKey).Result()
		if err != nil {
			return nil, fmt.Errorf("video: load cameras from redis: %w", err)
		}
		for id, v := range all {
			var ic importCamera
			if err := json.Unmarshal([]byte(v), &ic); err != nil {
				return nil, fmt.Errorf("video: camera %q in redis: %w", id, err)
			}
			c.byID[id] = ic.camera()
		}
	case dataDir != "":
		c.file = filepath.Join(dataDir, "cameras.json")
		f, err := os.Open(c.file)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		cams, err := ParseCamerasJSON(f)
		if err != nil {
			return nil, fmt.Errorf("video: %s: %w", c.file, err)
		}
		for _, cam := range cams {
			c.byID[cam.ID] = cam
		}
	}
	return c, nil
}

// Get returns a camera with its credentials (for the RTSP puller).
func (c *Cameras) Get(id string) (Camera, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	cam, ok := c.byID[id]
	return cam, ok
}

// Fetch returns a camera for a new pull. With Redis it reads the record
// from the shared hash and updates this node's copy, so a camera imported,
// changed or deleted through another node is seen here at the next viewer
// (Get and List serve this node's copy, loaded at start and kept by Put and
// Delete on this node).
func (c *Cameras) Fetch(ctx context.Context, id string) (Camera, bool, error) {
	if c.rdb == nil {
		cam, ok := c.Get(id)
		return cam, ok, nil
	}
	v, err := c.rdb.HGet(ctx, camerasRedisKey, id).Result()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case errors.Is(err, redis.Nil):
		delete(c.byID, id)
		return Camera{}, false, nil
	case err != nil:
		return Camera{}, false, fmt.Errorf("video: read camera %q from redis: %w", id, err)
	}
	var ic importCamera
	if err := json.Unmarshal([]byte(v), &ic); err != nil {
		return Camera{}, false, fmt.Errorf("video: camera %q in redis: %w", id, err)
	}
	c.byID[id] = ic.camera()
	return ic.camera(), true, nil
}

// List returns all cameras sorted by id.
func (c *Cameras) List() []Camera {
	c.mu.RLock()
	out := make([]Camera, 0, len(c.byID))
	for _, cam := range c.byID {
		out = append(out, cam)
	}
	c.mu.RUnlock()
	slices.SortFunc(out, func(a, b Camera) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Points returns id and position of every camera for the geo index.
func (c *Cameras) Points() []CameraPoint {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]CameraPoint, 0, len(c.byID))
	for _, cam := range c.byID {
		out = append(out, CameraPoint{cam.ID, cam.Lat, cam.Lon})
	}
	return out
}

// Put validates and stores cameras (insert or replace), all or none.
func (c *Cameras) Put(ctx context.Context, cams ...Camera) error {
	for i := range cams {
		if err := cams[i].Validate(); err != nil {
			return fmt.Errorf("camera %d (%s): %w", i+1, cams[i].ID, err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rdb != nil {
		vals := make([]any, 0, 2*len(cams))
		for _, cam := range cams {
			b, _ := json.Marshal(storedForm(cam))
			vals = append(vals, cam.ID, b)
		}
		if err := c.rdb.HSet(ctx, camerasRedisKey, vals...).Err(); err != nil {
			return fmt.Errorf("video: store cameras: %w", err)
		}
	}
	prev := make(map[string]Camera, len(c.byID)+len(cams))
	for k, v := range c.byID {
		prev[k] = v
	}
	for _, cam := range cams {
		c.byID[cam.ID] = cam
	}
	if err := c.saveFile(); err != nil {
		c.byID = prev
		return err
	}
	return nil
}

// Delete removes a camera; deleting an unknown id is not an error.
func (c *Cameras) Delete(ctx context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rdb != nil {
		if err := c.rdb.HDel(ctx, camerasRedisKey, id).Err(); err != nil {
			return fmt.Errorf("video: delete camera: %w", err)
		}
	}
	old, had := c.byID[id]
	delete(c.byID, id)
	if err := c.saveFile(); err != nil {
		if had {
			c.byID[id] = old
		}
		return err
	}
	return nil
}

// saveFile writes the file atomically (temp file, fsync, rename). Called
// with mu held.
func (c *Cameras) saveFile() error {
	if c.file == "" {
		return nil
	}
	list := make([]importCamera, 0, len(c.byID))
	for _, cam := range c.byID {
		list = append(list, storedForm(cam))
	}
	slices.SortFunc(list, func(a, b importCamera) int { return strings.Compare(a.ID, b.ID) })
	data, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.file), 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.file), ".cameras-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil { // the file holds camera passwords
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), c.file)
}
