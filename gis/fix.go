package gis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Limits on outside input. The HTTP layer must also cap the request body
// with http.MaxBytesReader(MaxPayloadBytes) so a large body is never read.
const (
	// MaxPayloadBytes bounds one location body (OsmAnd JSON, OwnTracks).
	// Real payloads are 200–1,500 bytes.
	MaxPayloadBytes = 16 << 10
	// MaxQueryValueLen bounds each OsmAnd query value.
	MaxQueryValueLen = 128
	// MaxDeviceIDLen bounds device and unit identifiers.
	MaxDeviceIDLen = 64
)

// Unknown is the value of Speed, Heading, Accuracy and Battery when the
// device did not report them. -1 rather than NaN so a Fix always encodes to
// JSON.
const Unknown = -1

// Fix is one position report of a device.
type Fix struct {
	DeviceID string    `json:"dev,omitempty"`
	Lat      float64   `json:"lat"`
	Lon      float64   `json:"lon"`
	Time     time.Time `json:"t"`   // UTC; zero if the device sent none (Validate sets it to now)
	Speed    float64   `json:"spd"` // m/s, Unknown if not reported
	Heading  float64   `json:"hdg"` // degrees clockwise from true north 0..360, Unknown if not reported
	Altitude float64   `json:"alt"` // metres above the ellipsoid; 0 if not reported
	Accuracy float64   `json:"acc"` // horizontal, metres; Unknown if not reported
	Battery  float64   `json:"bat"` // percent 0..100, Unknown if not reported
	Stale    bool      `json:"stale,omitempty"`
}

// Point returns the position of the fix.
func (f Fix) Point() Point { return Point{Lat: f.Lat, Lon: f.Lon} }

func newFix() Fix {
	return Fix{Speed: Unknown, Heading: Unknown, Accuracy: Unknown, Battery: Unknown}
}

// FixRules are the time-dependent validation settings.
type FixRules struct {
	MaxFuture   time.Duration // default 5 min: device clocks a little ahead are tolerated
	StaleAfter  time.Duration // default 5 min: older fixes are stored but marked Stale
	MaxAccuracy float64       // default 10,000 m: worse fixes are rejected
}

func (r FixRules) withDefaults() FixRules {
	if r.MaxFuture <= 0 {
		r.MaxFuture = 5 * time.Minute
	}
	if r.StaleAfter <= 0 {
		r.StaleAfter = 5 * time.Minute
	}
	if r.MaxAccuracy <= 0 {
		r.MaxAccuracy = 10000
	}
	return r
}

// Validate checks ranges and the fix time against now: a fix more than
// MaxFuture ahead is rejected with ErrFutureFix, one older than StaleAfter is
// kept with Stale set. A zero Time becomes now. Time is converted to UTC.
func (f *Fix) Validate(now time.Time, r FixRules) error {
	r = r.withDefaults()
	if err := f.checkRanges(); err != nil {
		return err
	}
	if f.Accuracy > r.MaxAccuracy {
		return fmt.Errorf("%w: accuracy %.0f m is worse than the %.0f m limit; wait for a GPS fix", ErrBadFix, f.Accuracy, r.MaxAccuracy)
	}
	if f.Time.IsZero() {
		f.Time = now
	}
	f.Time = f.Time.UTC()
	if f.Time.Sub(now) > r.MaxFuture {
		return fmt.Errorf("%w: %s is %s ahead of the server clock (limit %s); fix the device clock",
			ErrFutureFix, f.Time.Format(time.RFC3339), f.Time.Sub(now).Round(time.Second), r.MaxFuture)
	}
	f.Stale = now.Sub(f.Time) > r.StaleAfter
	return nil
}

func badNum(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }

// checkRanges validates the time-independent fields.
func (f *Fix) checkRanges() error {
	if f.DeviceID == "" {
		return fmt.Errorf("%w: missing device id (id or deviceid)", ErrBadFix)
	}
	if len(f.DeviceID) > MaxDeviceIDLen {
		return fmt.Errorf("%w: device id longer than %d bytes", ErrBadFix, MaxDeviceIDLen)
	}
	if badNum(f.Lat) || f.Lat < -90 || f.Lat > 90 {
		return fmt.Errorf("%w: latitude %v outside -90..90", ErrBadFix, f.Lat)
	}
	if badNum(f.Lon) || f.Lon < -180 || f.Lon > 180 {
		return fmt.Errorf("%w: longitude %v outside -180..180", ErrBadFix, f.Lon)
	}
	if badNum(f.Speed) || (f.Speed < 0 && f.Speed != Unknown) || f.Speed > 350 {
		return fmt.Errorf("%w: speed %v m/s outside 0..350", ErrBadFix, f.Speed)
	}
	if badNum(f.Heading) || (f.Heading < 0 && f.Heading != Unknown) || f.Heading > 360 {
		return fmt.Errorf("%w: heading %v outside 0..360", ErrBadFix, f.Heading)
	}
	if badNum(f.Accuracy) || (f.Accuracy < 0 && f.Accuracy != Unknown) {
		return fmt.Errorf("%w: accuracy %v m is negative", ErrBadFix, f.Accuracy)
	}
	if badNum(f.Battery) || (f.Battery < 0 && f.Battery != Unknown) || f.Battery > 100 {
		return fmt.Errorf("%w: battery %v outside 0..100", ErrBadFix, f.Battery)
	}
	if badNum(f.Altitude) || f.Altitude < -12000 || f.Altitude > 100000 {
		return fmt.Errorf("%w: altitude %v m outside -12000..100000", ErrBadFix, f.Altitude)
	}
	if f.Time.Year() > 9999 || (!f.Time.IsZero() && f.Time.Year() < 2000) {
		return fmt.Errorf("%w: time %v is not a plausible fix time", ErrBadFix, f.Time)
	}
	return nil
}

const knot = 1852.0 / 3600 // m/s

// ParseOsmAndQuery parses the Traccar/OsmAnd HTTP protocol
// (https://www.traccar.org/osmand/): GET or form-encoded POST fields id or
// deviceid, lat, lon (or location=lat,lon), timestamp (unix seconds, unix
// milliseconds or ISO 8601, as Traccar accepts), speed in knots, bearing or
// heading, altitude, accuracy, batt. Ranges are checked; Validate does the
// time checks.
func ParseOsmAndQuery(q url.Values) (Fix, error) {
	f := newFix()
	n := 0
	for k, vs := range q {
		n += len(k)
		for _, v := range vs {
			n += len(v)
			if len(v) > MaxQueryValueLen {
				return f, fmt.Errorf("%w: value of %q longer than %d bytes", ErrTooLarge, k, MaxQueryValueLen)
			}
		}
	}
	if n > MaxPayloadBytes {
		return f, fmt.Errorf("%w: query of %d bytes (limit %d)", ErrTooLarge, n, MaxPayloadBytes)
	}
	f.DeviceID = q.Get("id")
	if f.DeviceID == "" {
		f.DeviceID = q.Get("deviceid")
	}
	var err error
	num := func(name string, dst *float64, scale float64) {
		if err != nil {
			return
		}
		v := q.Get(name)
		if v == "" {
			return
		}
		x, e := strconv.ParseFloat(v, 64)
		if e != nil || badNum(x) {
			err = fmt.Errorf("%w: %s=%q is not a number", ErrBadFix, name, v)
			return
		}
		*dst = x * scale
	}
	if loc := q.Get("location"); loc != "" && q.Get("lat") == "" {
		la, lo, ok := strings.Cut(loc, ",")
		if !ok {
			return f, fmt.Errorf("%w: location=%q is not lat,lon", ErrBadFix, loc)
		}
		q = cloneWith(q, "lat", la, "lon", lo)
	}
	if q.Get("lat") == "" || q.Get("lon") == "" {
		return f, fmt.Errorf("%w: lat and lon are required", ErrBadFix)
	}
	num("lat", &f.Lat, 1)
	num("lon", &f.Lon, 1)
	num("speed", &f.Speed, knot)
	num("heading", &f.Heading, 1)
	num("bearing", &f.Heading, 1)
	num("altitude", &f.Altitude, 1)
	num("accuracy", &f.Accuracy, 1)
	num("batt", &f.Battery, 1)
	if err != nil {
		return f, err
	}
	if ts := q.Get("timestamp"); ts != "" {
		if f.Time, err = parseOsmAndTime(ts); err != nil {
			return f, err
		}
	}
	return f, f.checkRanges()
}

func cloneWith(q url.Values, kv ...string) url.Values {
	c := make(url.Values, len(q)+2)
	for k, v := range q {
		c[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		c.Set(kv[i], strings.TrimSpace(kv[i+1]))
	}
	return c
}

// parseOsmAndTime follows Traccar's rule: an integer below 2^31 is unix
// seconds, a larger one unix milliseconds; anything else is an ISO 8601 /
// RFC 3339 date.
func parseOsmAndTime(s string) (time.Time, error) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		if i < 0 {
			return time.Time{}, fmt.Errorf("%w: timestamp=%q is negative", ErrBadFix, s)
		}
		if i < math.MaxInt32 {
			return time.Unix(i, 0).UTC(), nil
		}
		return time.UnixMilli(i).UTC(), nil
	}
	if x, err := strconv.ParseFloat(s, 64); err == nil && !badNum(x) && x >= 0 && x < math.MaxInt32 {
		sec, frac := math.Modf(x)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: timestamp=%q is neither unix seconds, unix milliseconds nor ISO 8601", ErrBadFix, s)
}

// traccarJSON is the body the Traccar Client apps (5.x+, built on
// transistorsoft background-geolocation) POST: speed in m/s, battery level
// as a fraction 0..1.
type traccarJSON struct {
	Location *struct {
		Timestamp string `json:"timestamp"`
		Coords    *struct {
			Latitude  *float64 `json:"latitude"`
			Longitude *float64 `json:"longitude"`
			Accuracy  *float64 `json:"accuracy"`
			Speed     *float64 `json:"speed"`
			Heading   *float64 `json:"heading"`
			Altitude  *float64 `json:"altitude"`
		} `json:"coords"`
		Battery *struct {
			Level      *float64 `json:"level"`
			IsCharging bool     `json:"is_charging"`
		} `json:"battery"`
	} `json:"location"`
	DeviceID json.RawMessage `json:"device_id"`
}

// ParseOsmAndJSON parses the Traccar Client JSON body
// {"location":{"timestamp","coords":{...},"battery":{"level"}},"device_id"}.
// Negative speed, heading or accuracy mean "unknown" in that format.
func ParseOsmAndJSON(body []byte) (Fix, error) {
	f := newFix()
	if len(body) > MaxPayloadBytes {
		return f, fmt.Errorf("%w: body of %d bytes (limit %d)", ErrTooLarge, len(body), MaxPayloadBytes)
	}
	var in traccarJSON
	if err := json.Unmarshal(body, &in); err != nil {
		return f, fmt.Errorf("%w: body is not Traccar Client JSON: %v", ErrBadFix, err)
	}
	id, err := jsonID(in.DeviceID)
	if err != nil {
		return f, err
	}
	f.DeviceID = id
	if in.Location == nil || in.Location.Coords == nil || in.Location.Coords.Latitude == nil || in.Location.Coords.Longitude == nil {
		return f, fmt.Errorf("%w: location.coords.latitude and longitude are required", ErrBadFix)
	}
	c := in.Location.Coords
	f.Lat, f.Lon = *c.Latitude, *c.Longitude
	opt := func(p *float64, dst *float64) {
		if p != nil && *p >= 0 {
			*dst = *p
		}
	}
	opt(c.Speed, &f.Speed)
	opt(c.Heading, &f.Heading)
	opt(c.Accuracy, &f.Accuracy)
	if c.Altitude != nil {
		f.Altitude = *c.Altitude
	}
	if b := in.Location.Battery; b != nil && b.Level != nil && *b.Level >= 0 {
		f.Battery = *b.Level * 100
	}
	if ts := in.Location.Timestamp; ts != "" {
		if f.Time, err = parseOsmAndTime(ts); err != nil {
			return f, err
		}
	}
	return f, f.checkRanges()
}

// jsonID accepts a device id given as a JSON string or number.
func jsonID(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", fmt.Errorf("%w: missing device_id", ErrBadFix)
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("%w: device_id: %v", ErrBadFix, err)
		}
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", fmt.Errorf("%w: device_id must be a string or number", ErrBadFix)
	}
	return n.String(), nil
}

// ownTracks is the OwnTracks HTTP JSON message
// (https://owntracks.org/booklet/tech/json/#_typelocation): vel in km/h.
type ownTracks struct {
	Type  string   `json:"_type"`
	Lat   *float64 `json:"lat"`
	Lon   *float64 `json:"lon"`
	Tst   *int64   `json:"tst"`
	Acc   *float64 `json:"acc"`
	Vel   *float64 `json:"vel"`
	Cog   *float64 `json:"cog"`
	Alt   *float64 `json:"alt"`
	Batt  *float64 `json:"batt"`
	Tid   string   `json:"tid"`
	Topic string   `json:"topic"`
}

// ParseOwnTracks parses an OwnTracks HTTP message. Messages whose _type is
// not "location" return ErrNotLocation (answer 200 "[]"). DeviceID is tid,
// or topic when tid is absent (the HTTP layer normally binds by user and
// device headers instead).
func ParseOwnTracks(body []byte) (Fix, error) {
	f := newFix()
	if len(body) > MaxPayloadBytes {
		return f, fmt.Errorf("%w: body of %d bytes (limit %d)", ErrTooLarge, len(body), MaxPayloadBytes)
	}
	var in ownTracks
	if err := json.Unmarshal(body, &in); err != nil {
		return f, fmt.Errorf("%w: body is not OwnTracks JSON: %v", ErrBadFix, err)
	}
	if in.Type != "location" {
		return f, fmt.Errorf("%w: _type %q", ErrNotLocation, in.Type)
	}
	f.DeviceID = in.Tid
	if f.DeviceID == "" {
		f.DeviceID = in.Topic
	}
	if in.Lat == nil || in.Lon == nil {
		return f, fmt.Errorf("%w: lat and lon are required", ErrBadFix)
	}
	if in.Tst == nil {
		return f, fmt.Errorf("%w: tst is required", ErrBadFix)
	}
	if *in.Tst < 0 || *in.Tst > 1<<40 {
		return f, fmt.Errorf("%w: tst %d is not unix seconds", ErrBadFix, *in.Tst)
	}
	f.Lat, f.Lon = *in.Lat, *in.Lon
	f.Time = time.Unix(*in.Tst, 0).UTC()
	if in.Acc != nil {
		f.Accuracy = *in.Acc
	}
	if in.Vel != nil && *in.Vel >= 0 {
		f.Speed = *in.Vel / 3.6
	}
	if in.Cog != nil && *in.Cog >= 0 {
		f.Heading = *in.Cog
	}
	if in.Alt != nil {
		f.Altitude = *in.Alt
	}
	if in.Batt != nil && *in.Batt >= 0 {
		f.Battery = *in.Batt
	}
	return f, f.checkRanges()
}
