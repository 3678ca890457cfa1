package gis

import (
	"errors"
	"math"
	"net/url"
	"strings"
	"testing"
	"time"
)

var now0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestParseOsmAndQuery(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  Fix
	}{
		{"traccar client android, unix seconds",
			"id=862123456789012&timestamp=1764071990&lat=43.238949&lon=76.945465&speed=21.6&bearing=87.5&altitude=851.2&accuracy=8.0&batt=76.0&charge=false",
			Fix{DeviceID: "862123456789012", Lat: 43.238949, Lon: 76.945465, Time: time.Unix(1764071990, 0).UTC(),
				Speed: 21.6 * knot, Heading: 87.5, Altitude: 851.2, Accuracy: 8, Battery: 76}},
		{"deviceid and unix milliseconds, heading",
			"deviceid=unit-17&timestamp=1764071990123&lat=51.1605&lon=71.4704&heading=270",
			Fix{DeviceID: "unit-17", Lat: 51.1605, Lon: 71.4704, Time: time.UnixMilli(1764071990123).UTC(),
				Speed: Unknown, Heading: 270, Accuracy: Unknown, Battery: Unknown}},
		{"ISO 8601 timestamp",
			"id=42&timestamp=2026-11-25T11:59:50Z&lat=43.2&lon=76.9&speed=0",
			Fix{DeviceID: "42", Lat: 43.2, Lon: 76.9, Time: time.Date(2026, 11, 25, 11, 59, 50, 0, time.UTC),
				Speed: 0, Heading: Unknown, Accuracy: Unknown, Battery: Unknown}},
		{"location=lat,lon form and no timestamp",
			"id=42&location=43.25,76.95",
			Fix{DeviceID: "42", Lat: 43.25, Lon: 76.95, Speed: Unknown, Heading: Unknown, Accuracy: Unknown, Battery: Unknown}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseOsmAndQuery(q)
			if err != nil {
				t.Fatalf("ParseOsmAndQuery: %v", err)
			}
			if got.DeviceID != tt.want.DeviceID || !near(got.Lat, tt.want.Lat) || !near(got.Lon, tt.want.Lon) ||
				!got.Time.Equal(tt.want.Time) || !near(got.Speed, tt.want.Speed) || got.Heading != tt.want.Heading ||
				got.Altitude != tt.want.Altitude || got.Accuracy != tt.want.Accuracy || got.Battery != tt.want.Battery {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseOsmAndQueryBad(t *testing.T) {
	tests := []struct {
		query string
		want  error
		msg   string
	}{
		{"lat=43&lon=76", ErrBadFix, "device id"},
		{"id=1&lat=91&lon=76", ErrBadFix, "latitude"},
		{"id=1&lat=43&lon=-180.5", ErrBadFix, "longitude"},
		{"id=1&lat=NaN&lon=76", ErrBadFix, "not a number"},
		{"id=1&lat=43&lon=Inf", ErrBadFix, "not a number"},
		{"id=1&lon=76", ErrBadFix, "required"},
		{"id=1&lat=43&lon=76&timestamp=yesterday", ErrBadFix, "timestamp"},
		{"id=1&lat=43&lon=76&accuracy=-5", ErrBadFix, "accuracy"},
		{"id=1&lat=43&lon=76&batt=140", ErrBadFix, "battery"},
		{"id=1&lat=43&lon=76&x=" + strings.Repeat("a", 200), ErrTooLarge, "longer"},
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.query)
		_, err := ParseOsmAndQuery(q)
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: err %v, want %v mentioning %q", tt.query, err, tt.want, tt.msg)
		}
	}
}

// A body as sent by Traccar Client 9 (transistorsoft background geolocation).
const traccarClientBody = `{
  "location": {
    "timestamp": "2026-11-25T11:59:58.123Z",
    "coords": {"latitude": 43.238949, "longitude": 76.945465, "accuracy": 12.5, "speed": 8.3,
      "heading": 181.2, "altitude": 850.7, "speed_accuracy": 1.1, "heading_accuracy": 4, "altitude_accuracy": 3},
    "is_moving": true, "odometer": 15230.4, "event": "motionchange",
    "battery": {"level": 0.64, "is_charging": false},
    "activity": {"type": "in_vehicle"},
    "extras": {}
  },
  "device_id": "862123456789012"
}`

func TestParseOsmAndJSON(t *testing.T) {
	f, err := ParseOsmAndJSON([]byte(traccarClientBody))
	if err != nil {
		t.Fatal(err)
	}
	want := Fix{DeviceID: "862123456789012", Lat: 43.238949, Lon: 76.945465,
		Time: time.Date(2026, 11, 25, 11, 59, 58, 123e6, time.UTC), Speed: 8.3, Heading: 181.2, Altitude: 850.7, Accuracy: 12.5, Battery: 64}
	if f.DeviceID != want.DeviceID || f.Lat != want.Lat || f.Lon != want.Lon || !f.Time.Equal(want.Time) ||
		f.Speed != want.Speed || f.Heading != want.Heading || f.Accuracy != want.Accuracy || !near(f.Battery, 64) {
		t.Fatalf("got %+v\nwant %+v", f, want)
	}
	// iOS reports -1 for an unknown speed and heading; numeric device ids.
	f, err = ParseOsmAndJSON([]byte(`{"location":{"timestamp":"2026-11-25T11:59:58Z","coords":{"latitude":43.1,"longitude":76.8,"speed":-1,"heading":-1,"accuracy":65}},"device_id":12345}`))
	if err != nil {
		t.Fatal(err)
	}
	if f.Speed != Unknown || f.Heading != Unknown || f.DeviceID != "12345" || f.Battery != Unknown {
		t.Fatalf("unknowns: %+v", f)
	}
	for _, bad := range []string{
		`{"location":{"coords":{"latitude":43.1}},"device_id":"a"}`,
		`{"location":{"coords":{"latitude":143.1,"longitude":76}},"device_id":"a"}`,
		`{"location":{"coords":{"latitude":43.1,"longitude":76}}}`,
		`{"location":{"coords":{"latitude":"43.1","longitude":76}},"device_id":"a"}`,
		`[1,2,3]`,
		`{"location":{"timestamp":"soon","coords":{"latitude":43.1,"longitude":76}},"device_id":"a"}`,
	} {
		if _, err := ParseOsmAndJSON([]byte(bad)); !errors.Is(err, ErrBadFix) {
			t.Errorf("%s: err %v, want ErrBadFix", bad, err)
		}
	}
	if _, err := ParseOsmAndJSON(make([]byte, MaxPayloadBytes+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize: %v", err)
	}
}

// As sent by the OwnTracks Android app in HTTP mode.
const ownTracksBody = `{"_type":"location","acc":14,"alt":852,"batt":81,"bs":1,"conn":"m","created_at":1764071999,"lat":43.238949,"lon":76.945465,"m":1,"tid":"p7","tst":1764071990,"vac":3,"vel":36,"cog":93,"topic":"owntracks/officer7/phone"}`

func TestParseOwnTracks(t *testing.T) {
	f, err := ParseOwnTracks([]byte(ownTracksBody))
	if err != nil {
		t.Fatal(err)
	}
	if f.DeviceID != "p7" || f.Lat != 43.238949 || f.Lon != 76.945465 || !f.Time.Equal(time.Unix(1764071990, 0)) ||
		!near(f.Speed, 10) || f.Heading != 93 || f.Accuracy != 14 || f.Battery != 81 || f.Altitude != 852 {
		t.Fatalf("got %+v", f)
	}
	for _, typ := range []string{"lwt", "transition", "waypoint", "card"} {
		_, err := ParseOwnTracks([]byte(`{"_type":"` + typ + `","tst":1764071990}`))
		if !errors.Is(err, ErrNotLocation) {
			t.Errorf("%s: %v, want ErrNotLocation", typ, err)
		}
	}
	for _, bad := range []string{
		`{"_type":"location","lat":43.2,"tid":"p7","tst":1764071990}`,
		`{"_type":"location","lat":43.2,"lon":76.9,"tid":"p7"}`,
		`{"_type":"location","lat":-95,"lon":76.9,"tid":"p7","tst":1764071990}`,
		`{"_type":"location","lat":43.2,"lon":76.9,"tst":1764071990}`,
		`{"_type":"location","lat":43.2,"lon":76.9,"tid":"p7","tst":"now"}`,
	} {
		if _, err := ParseOwnTracks([]byte(bad)); !errors.Is(err, ErrBadFix) {
			t.Errorf("%s: %v, want ErrBadFix", bad, err)
		}
	}
}

func TestValidate(t *testing.T) {
	f := Fix{DeviceID: "d", Lat: 43, Lon: 76, Time: now0.Add(6 * time.Minute), Speed: Unknown, Heading: Unknown, Accuracy: 5, Battery: Unknown}
	if err := f.Validate(now0, FixRules{}); !errors.Is(err, ErrFutureFix) {
		t.Fatalf("far future: %v", err)
	}
	f.Time = now0.Add(2 * time.Minute) // small clock skew tolerated
	if err := f.Validate(now0, FixRules{}); err != nil || f.Stale {
		t.Fatalf("skew: %v stale=%v", err, f.Stale)
	}
	f.Time = now0.Add(-10 * time.Minute)
	if err := f.Validate(now0, FixRules{StaleAfter: 5 * time.Minute}); err != nil || !f.Stale {
		t.Fatalf("old: %v stale=%v", err, f.Stale)
	}
	f.Accuracy = 20000
	if err := f.Validate(now0, FixRules{}); !errors.Is(err, ErrBadFix) {
		t.Fatalf("accuracy: %v", err)
	}
	f = Fix{DeviceID: "d", Lat: 43, Lon: 76, Speed: Unknown, Heading: Unknown, Accuracy: Unknown, Battery: Unknown}
	if err := f.Validate(now0, FixRules{}); err != nil || !f.Time.Equal(now0) {
		t.Fatalf("zero time: %v %v", err, f.Time)
	}
}

func FuzzParseOsmAndQuery(f *testing.F) {
	f.Add("id=862123456789012&timestamp=1764071990&lat=43.238949&lon=76.945465&speed=21.6&bearing=87.5&altitude=851.2&accuracy=8.0&batt=76.0")
	f.Add("deviceid=u&timestamp=2026-11-25T11:59:50Z&location=43.2,76.9")
	f.Add("id=1&lat=1e308&lon=-0&timestamp=99999999999999999999")
	f.Fuzz(func(t *testing.T, s string) {
		q, err := url.ParseQuery(s)
		if err != nil {
			return
		}
		fx, err := ParseOsmAndQuery(q)
		if err == nil {
			checkParsed(t, fx)
		}
	})
}

func FuzzParseOsmAndJSON(f *testing.F) {
	f.Add([]byte(traccarClientBody))
	f.Add([]byte(`{"location":{"timestamp":"1764071990","coords":{"latitude":43.1,"longitude":76.8}},"device_id":1}`))
	f.Add([]byte(`{"location":null,"device_id":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fx, err := ParseOsmAndJSON(b)
		if err == nil {
			checkParsed(t, fx)
		}
	})
}

func FuzzParseOwnTracks(f *testing.F) {
	f.Add([]byte(ownTracksBody))
	f.Add([]byte(`{"_type":"lwt","tst":1}`))
	f.Add([]byte(`{"_type":"location","lat":0,"lon":0,"tst":0,"tid":"x","vel":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fx, err := ParseOwnTracks(b)
		if err == nil {
			checkParsed(t, fx)
		}
	})
}

// checkParsed asserts what every accepted fix must satisfy.
func checkParsed(t *testing.T, f Fix) {
	t.Helper()
	if f.DeviceID == "" || f.Lat < -90 || f.Lat > 90 || f.Lon < -180 || f.Lon > 180 || badNum(f.Speed) || badNum(f.Accuracy) {
		t.Fatalf("accepted invalid fix %+v", f)
	}
	if _, err := f.Time.MarshalJSON(); err != nil {
		t.Fatalf("accepted unencodable time %v", f.Time)
	}
}
