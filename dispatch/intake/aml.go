package intake

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Advanced Mobile Location, ETSI TS 103 625 V1.3.1 (2023-03).
//
// A handset that dials an emergency number switches on its positioning and
// sends the fix to the PSAP either as an HTTPS form POST (clause 7.4, as
// forwarded by Google's ELS and Apple's endpoint) or as an SMS (clause 7.3)
// that an SMS gateway forwards as text. Both become one AMLFix.
//
// Field units follow the spec and Google's ELS references
// (developers.google.com/android/els/reference/http-spec and sms-spec):
// HTTPS times are Unix milliseconds, SMS v1 "top" is YYYYMMDDhhmmss UTC,
// accuracy is a radius in metres, HTTPS confidence a fraction 0..1 (ELS) or
// a percentage, SMS confidence a percentage.
//
// Google's ELS guidance is that endpoints answer 2xx even for messages
// they discard (the handset cannot fix them); the HTTP layer should log
// the error returned here and still answer 2xx to the handset path, but
// 401 for a bad HMAC so a misconfigured forwarder is noticed.

// Size limits. An AML SMS is one 160-character GSM message; two are allowed
// for gateways that concatenate. An HTTPS AML body is well under 1 KiB.
const (
	MaxAMLFormBytes = 4 << 10
	MaxAMLSMSBytes  = 320
)

// Positioning methods as AMLFix.Method.
const (
	AMLMethodGNSS    = "GNSS"
	AMLMethodWiFi    = "WIFI"
	AMLMethodCell    = "CELL"
	AMLMethodFused   = "FUSED"
	AMLMethodNone    = "NONE"
	AMLMethodUnknown = "UNKNOWN"
)

// AMLFix is one handset location from either AML transport.
type AMLFix struct {
	Transport       string    // "https" or "sms"
	Version         string    // "1" or "2" (SMS), "1"… (HTTPS v)
	EmergencyNumber string    // number dialled, e.g. "112", "102"; may be empty
	Source          string    // "call" or "sms" (HTTPS only)
	CallTime        time.Time // beginning of the emergency call; zero if not sent

	Lat, Lon     float64   // WGS 84 degrees
	LocationTime time.Time // when the handset computed the fix (UTC)
	// Accuracy is the radius in metres of the circle that holds the handset
	// with probability Confidence.
	Accuracy   float64
	Confidence float64 // percent 0..100; 0 means the handset did not say
	Method     string  // AMLMethod*
	// NoLocation is set when the handset says it has no position (SMS
	// pm=N or rd=N, Google ELS "null location"): Lat/Lon are then 0 and
	// must not be shown as a place. The message still tells the operator
	// that the caller's phone supports AML and which network it is on.
	NoLocation bool

	Altitude         *float64 // metres above WGS 84 ellipsoid
	VerticalAccuracy *float64 // metres
	Floor            string   // floor label as on a lift button

	// DeviceNumber is the handset's number in E.164: from device_number
	// (HTTPS) or from the SMS gateway's originating address (SMS).
	DeviceNumber string
	IMEI, IMSI   string
	HomeMCC      string
	HomeMNC      string
	NetworkMCC   string
	NetworkMNC   string
	Languages    []string // BCP 47 tags, most preferred first

	// SMS v1 only: the ml attribute and whether it equals the received
	// length. Handsets in the field disagree by a few characters, so a
	// mismatch is reported, not rejected; a truncated SMS loses its
	// trailing attributes and fails the required-field checks instead.
	MessageLength int
	LengthOK      bool
}

// AMLConfig configures AML HTTPS authentication. The spec (clause 7.4.3)
// lets the PSAP and the handset OS vendor agree a shared key; the hmac
// parameter is then the hex HMAC of the body as received, up to but not
// including "&hmac=", and it is the last parameter. Deployed endpoints use
// HMAC-SHA1; SHA-256 is offered for newer agreements.
type AMLConfig struct {
	HMACKey []byte
	// HMACAlgorithm is "sha1" (default) or "sha256".
	HMACAlgorithm string
	// AllowUnsigned accepts bodies without hmac when HMACKey is empty. It
	// exists for networks that deliver AML over a private link; with a key
	// set, an unsigned or wrongly signed body is always rejected.
	AllowUnsigned bool
}

// AMLParser parses and authenticates AML messages. It is stateless and safe
// for concurrent use.
type AMLParser struct {
	cfg     AMLConfig
	newHash func() hash.Hash
}

// NewAMLParser validates cfg.
func NewAMLParser(cfg AMLConfig) (*AMLParser, error) {
	p := &AMLParser{cfg: cfg}
	switch strings.ToLower(cfg.HMACAlgorithm) {
	case "", "sha1":
		p.newHash = sha1.New
	case "sha256":
		p.newHash = sha256.New
	default:
		return nil, fmt.Errorf("%w: AML HMACAlgorithm %q; use sha1 or sha256", ErrConfig, cfg.HMACAlgorithm)
	}
	if len(cfg.HMACKey) == 0 && !cfg.AllowUnsigned {
		return nil, fmt.Errorf("%w: AML needs an HMACKey, or AllowUnsigned for a trusted private link", ErrConfig)
	}
	return p, nil
}

// Sign returns the hmac parameter value for body; tests and the AML
// simulator use it.
func (p *AMLParser) Sign(body []byte) string {
	m := hmac.New(p.newHash, p.cfg.HMACKey)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// verify checks the trailing hmac parameter in constant time.
func (p *AMLParser) verify(body []byte) error {
	var msg, tag []byte
	if i := bytes.LastIndex(body, []byte("&hmac=")); i >= 0 {
		msg, tag = body[:i], body[i+len("&hmac="):]
	} else if bytes.HasPrefix(body, []byte("hmac=")) {
		return fmt.Errorf("%w: hmac must be the last parameter", ErrBadHMAC)
	}
	if len(p.cfg.HMACKey) == 0 {
		return nil // AllowUnsigned, checked in NewAMLParser
	}
	if tag == nil {
		return fmt.Errorf("%w: no hmac parameter; the sender must sign with the agreed key", ErrBadHMAC)
	}
	if bytes.IndexByte(tag, '&') >= 0 {
		return fmt.Errorf("%w: hmac must be the last parameter", ErrBadHMAC)
	}
	got := make([]byte, hex.DecodedLen(len(tag)))
	if _, err := hex.Decode(got, tag); err != nil {
		return fmt.Errorf("%w: hmac is not hex", ErrBadHMAC)
	}
	m := hmac.New(p.newHash, p.cfg.HMACKey)
	m.Write(msg)
	if !hmac.Equal(got, m.Sum(nil)) {
		return fmt.Errorf("%w: hmac does not match; check the shared key and algorithm", ErrBadHMAC)
	}
	return nil
}

// ParseForm authenticates and parses an AML HTTPS body
// (application/x-www-form-urlencoded, TS 103 625 clause 7.4). body must be
// the bytes exactly as received: the HMAC covers them, not a re-encoding.
// Unknown parameters are ignored (vendors add device_model, location_bearing
// and others); repeated parameters are rejected.
func (p *AMLParser) ParseForm(body []byte) (AMLFix, error) {
	var f AMLFix
	if len(body) > MaxAMLFormBytes {
		return f, fmt.Errorf("%w: AML body over %d bytes", ErrTooLarge, MaxAMLFormBytes)
	}
	if err := p.verify(body); err != nil {
		return f, err
	}
	q, err := url.ParseQuery(string(body))
	if err != nil {
		return f, fmt.Errorf("%w: AML body is not form-encoded: %v", ErrMalformed, err)
	}
	if len(q) > 64 {
		return f, fmt.Errorf("%w: AML body has %d parameters", ErrTooLarge, len(q))
	}
	for k, v := range q {
		if len(v) > 1 {
			return f, fmt.Errorf("%w: AML parameter %s repeated", ErrMalformed, k)
		}
	}
	get := func(k string) string { return strings.TrimSpace(q.Get(k)) }
	f.Transport = "https"
	f.Version = get("v")
	if !isDigits(f.Version, 1, 2) {
		return f, fmt.Errorf("%w: AML v %q", ErrUnsupportedVersion, f.Version)
	}
	if f.EmergencyNumber = get("emergency_number"); f.EmergencyNumber != "" && !isDigits(f.EmergencyNumber, 2, 6) {
		return f, fmt.Errorf("%w: emergency_number %q: 2 to 6 digits", ErrInvalid, f.EmergencyNumber)
	}
	switch f.Source = strings.ToLower(get("source")); f.Source {
	case "", "call", "sms":
	default:
		return f, fmt.Errorf("%w: source %q: call or sms", ErrInvalid, f.Source)
	}
	if f.CallTime, err = msTime("time", get("time"), false); err != nil {
		return f, err
	}
	if f.Lat, err = coord("location_latitude", get("location_latitude"), 90); err != nil {
		return f, err
	}
	if f.Lon, err = coord("location_longitude", get("location_longitude"), 180); err != nil {
		return f, err
	}
	if f.LocationTime, err = msTime("location_time", get("location_time"), false); err != nil {
		return f, err
	}
	if f.Accuracy, err = number("location_accuracy", get("location_accuracy"), 0, 1e5, true); err != nil {
		return f, err
	}
	switch strings.ToLower(get("location_source")) {
	case "gps", "gnss":
		f.Method = AMLMethodGNSS
	case "wifi":
		f.Method = AMLMethodWiFi
	case "cell":
		f.Method = AMLMethodCell
	case "fused":
		f.Method = AMLMethodFused
	case "", "unknown":
		f.Method = AMLMethodUnknown
	default:
		return f, fmt.Errorf("%w: location_source %q: gps, wifi, cell, fused or unknown", ErrInvalid, get("location_source"))
	}
	conf := get("location_confidence")
	if conf == "" {
		conf = get("location_certainty") // name used by early Android ELS
	}
	if f.Confidence, err = number("location_confidence", conf, 0, 100, false); err != nil {
		return f, err
	}
	if f.Confidence > 0 && f.Confidence <= 1 {
		// Android ELS sends a fraction (0.6827); ETSI and the SMS form a
		// percentage. Normalise to percent.
		f.Confidence *= 100
	}
	if f.Altitude, err = optNumber("location_altitude", get("location_altitude"), -1000, 20000); err != nil {
		return f, err
	}
	if f.VerticalAccuracy, err = optNumber("location_vertical_accuracy", get("location_vertical_accuracy"), 0, 1e5); err != nil {
		return f, err
	}
	if f.Floor = get("location_floor"); len(f.Floor) > 16 || !utf8.ValidString(f.Floor) {
		return f, fmt.Errorf("%w: location_floor longer than 16 bytes", ErrInvalid)
	}
	if n := get("device_number"); n != "" {
		if f.DeviceNumber, err = NormalizePhone(n); err != nil {
			return f, fmt.Errorf("device_number: %w", err)
		}
	}
	if err := f.setIDs(get("device_imei"), get("device_imsi"), get("cell_home_mcc"), get("cell_home_mnc"),
		get("cell_network_mcc"), get("cell_network_mnc"), get("device_languages")); err != nil {
		return f, err
	}
	return f, nil
}

func (f *AMLFix) setIDs(imei, imsi, hmcc, hmnc, nmcc, nmnc, langs string) error {
	if imei != "" && !isDigits(imei, 14, 16) {
		return fmt.Errorf("%w: IMEI %q: 14 to 16 digits", ErrInvalid, imei)
	}
	if imsi != "" && !isDigits(imsi, 6, 15) {
		return fmt.Errorf("%w: IMSI %q: 6 to 15 digits", ErrInvalid, imsi)
	}
	for _, m := range []struct {
		name, v  string
		min, max int
	}{
		{"home MCC", hmcc, 3, 3}, {"home MNC", hmnc, 2, 3}, {"network MCC", nmcc, 3, 3}, {"network MNC", nmnc, 2, 3},
	} {
		if m.v != "" && !isDigits(m.v, m.min, m.max) {
			return fmt.Errorf("%w: %s %q: %d to %d digits", ErrInvalid, m.name, m.v, m.min, m.max)
		}
	}
	f.IMEI, f.IMSI, f.HomeMCC, f.HomeMNC, f.NetworkMCC, f.NetworkMNC = imei, imsi, hmcc, hmnc, nmcc, nmnc
	if langs != "" {
		for _, t := range strings.Split(langs, ",") {
			t = strings.TrimSpace(t)
			if !isLangTag(t) || len(f.Languages) >= 10 {
				return fmt.Errorf("%w: language list %q: up to 10 BCP 47 tags, comma separated", ErrInvalid, langs)
			}
			f.Languages = append(f.Languages, t)
		}
	}
	return nil
}

// ParseAMLSMS parses the text of an AML SMS (TS 103 625 clause 7.3 and
// annex B): attributes "key=value" separated by ";", starting with the
// header A"ML=<version>. sender is the originating address the SMS gateway
// saw (the handset's MSISDN; the SMS body does not carry it); it may be
// empty if the gateway withholds it.
//
// Version 1: lt, lg (degrees), rd (radius m), top (time of positioning,
// YYYYMMDDhhmmss UTC), lc (confidence %), pm (G GNSS, W Wi-Fi, C cell,
// F fused, N none, U unknown), si (IMSI), ei (IMEI), mcc, mnc, ml (message
// length). Version 2: en (emergency number), et (call start, Unix s),
// lo (lat,lon,radius), lt (fix time offset from et, s), lc, lz
// (altitude,vertical accuracy), ls (method), ei, nc/hc (network/home
// MCC+MNC), lg (languages).
func ParseAMLSMS(text, sender string) (AMLFix, error) {
	var f AMLFix
	if len(text) > MaxAMLSMSBytes {
		return f, fmt.Errorf("%w: AML SMS over %d bytes", ErrTooLarge, MaxAMLSMSBytes)
	}
	text = strings.TrimRight(text, " \r\n\t\x00")
	if !strings.HasPrefix(text, `A"ML=`) {
		return f, fmt.Errorf("%w: AML SMS must start with the header A\"ML=", ErrMalformed)
	}
	attrs := map[string]string{}
	for _, part := range strings.Split(text, ";") {
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok || k == "" {
			return f, fmt.Errorf("%w: AML SMS attribute %q is not key=value", ErrMalformed, trunc(part, 20))
		}
		if _, dup := attrs[k]; dup {
			return f, fmt.Errorf("%w: AML SMS attribute %s repeated", ErrMalformed, k)
		}
		attrs[k] = v
	}
	f.Transport = "sms"
	f.Version = attrs[`A"ML`]
	if sender != "" {
		n, err := NormalizePhone(sender)
		if err != nil {
			return f, fmt.Errorf("SMS sender: %w", err)
		}
		f.DeviceNumber = n
	}
	var err error
	switch f.Version {
	case "1":
		err = f.smsV1(attrs, len(text))
	case "2":
		err = f.smsV2(attrs)
	default:
		return f, fmt.Errorf("%w: AML SMS version %q; 1 and 2 are supported", ErrUnsupportedVersion, trunc(f.Version, 8))
	}
	return f, err
}

func (f *AMLFix) smsV1(a map[string]string, length int) error {
	var err error
	if f.Lat, err = coord("lt", a["lt"], 90); err != nil {
		return err
	}
	if f.Lon, err = coord("lg", a["lg"], 180); err != nil {
		return err
	}
	if a["rd"] == "N" {
		f.NoLocation = true
	} else if f.Accuracy, err = number("rd", a["rd"], 0, 1e5, true); err != nil {
		return err
	}
	if top := a["top"]; top != "" {
		t, err := time.Parse("20060102150405", top)
		if err != nil {
			return fmt.Errorf("%w: top %q: YYYYMMDDhhmmss UTC", ErrInvalid, trunc(top, 20))
		}
		f.LocationTime = t.UTC()
	} else {
		return fmt.Errorf("%w: top (time of positioning) is required", ErrInvalid)
	}
	if f.Confidence, err = number("lc", a["lc"], 0, 100, false); err != nil {
		return err
	}
	if f.Method, err = smsMethod("pm", a["pm"]); err != nil {
		return err
	}
	if f.Method == AMLMethodNone || f.NoLocation {
		f.NoLocation, f.Lat, f.Lon, f.Accuracy = true, 0, 0, 0
	}
	if err := f.setIDs(a["ei"], a["si"], "", "", a["mcc"], a["mnc"], ""); err != nil {
		return err
	}
	if ml := a["ml"]; ml != "" {
		if !isDigits(ml, 1, 3) {
			return fmt.Errorf("%w: ml %q: message length in digits", ErrInvalid, trunc(ml, 8))
		}
		f.MessageLength, _ = strconv.Atoi(ml)
		f.LengthOK = f.MessageLength == length
	}
	return nil
}

func (f *AMLFix) smsV2(a map[string]string) error {
	if en := a["en"]; en != "" {
		if !isDigits(strings.TrimPrefix(en, "+"), 2, 15) {
			return fmt.Errorf("%w: en %q: digits", ErrInvalid, trunc(en, 20))
		}
		f.EmergencyNumber = en
	}
	if et := a["et"]; et != "" {
		s, err := strconv.ParseInt(et, 10, 64)
		if err != nil || s < 946684800 || s > 4102444800 {
			return fmt.Errorf("%w: et %q: Unix seconds", ErrInvalid, trunc(et, 20))
		}
		f.CallTime = time.Unix(s, 0).UTC()
	}
	lo := strings.Split(a["lo"], ",")
	if len(lo) != 3 {
		return fmt.Errorf("%w: lo must be latitude,longitude,radius", ErrInvalid)
	}
	var err error
	if f.Lat, err = coord("lo latitude", lo[0], 90); err != nil {
		return err
	}
	if f.Lon, err = coord("lo longitude", lo[1], 180); err != nil {
		return err
	}
	if f.Accuracy, err = number("lo radius", lo[2], 0, 1e5, true); err != nil {
		return err
	}
	if lt := a["lt"]; lt != "" && !f.CallTime.IsZero() {
		off, err := strconv.ParseInt(lt, 10, 64)
		if err != nil {
			return fmt.Errorf("%w: lt %q: seconds relative to et", ErrInvalid, trunc(lt, 20))
		}
		// Offsets beyond an hour are the handset's "unknown" marker (-9999
		// is seen in published samples) or a fix too old to use; leave the
		// fix time unset rather than invent one.
		if off >= -3600 && off <= 3600 {
			f.LocationTime = f.CallTime.Add(time.Duration(off) * time.Second)
		}
	}
	if f.Confidence, err = number("lc", a["lc"], 0, 100, false); err != nil {
		return err
	}
	if lz := a["lz"]; lz != "" {
		alt, vacc, ok := strings.Cut(lz, ",")
		if !ok {
			return fmt.Errorf("%w: lz must be altitude,vertical accuracy", ErrInvalid)
		}
		if f.Altitude, err = optNumber("lz altitude", alt, -1000, 20000); err != nil {
			return err
		}
		if f.VerticalAccuracy, err = optNumber("lz vertical accuracy", vacc, 0, 1e5); err != nil {
			return err
		}
	}
	if f.Method, err = smsMethod("ls", a["ls"]); err != nil {
		return err
	}
	split := func(name, v string) (string, string, error) {
		if v == "" {
			return "", "", nil
		}
		if !isDigits(v, 5, 6) {
			return "", "", fmt.Errorf("%w: %s %q: MCC+MNC, 5 or 6 digits", ErrInvalid, name, trunc(v, 10))
		}
		return v[:3], v[3:], nil
	}
	nmcc, nmnc, err := split("nc", a["nc"])
	if err != nil {
		return err
	}
	hmcc, hmnc, err := split("hc", a["hc"])
	if err != nil {
		return err
	}
	return f.setIDs(a["ei"], "", hmcc, hmnc, nmcc, nmnc, a["lg"])
}

func smsMethod(name, v string) (string, error) {
	switch strings.ToUpper(v) {
	case "G":
		return AMLMethodGNSS, nil
	case "W":
		return AMLMethodWiFi, nil
	case "C":
		return AMLMethodCell, nil
	case "F":
		return AMLMethodFused, nil
	case "N":
		return AMLMethodNone, nil
	case "U", "":
		return AMLMethodUnknown, nil
	}
	return "", fmt.Errorf("%w: %s %q: G, W, C, F, N or U", ErrInvalid, name, trunc(v, 8))
}

func coord(name, v string, lim float64) (float64, error) {
	if v == "" {
		return 0, fmt.Errorf("%w: %s is required", ErrInvalid, name)
	}
	x, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(x) || math.Abs(x) > lim {
		return 0, fmt.Errorf("%w: %s %q: decimal degrees within ±%g", ErrInvalid, name, trunc(v, 20), lim)
	}
	return x, nil
}

func number(name, v string, min, max float64, required bool) (float64, error) {
	if v == "" {
		if required {
			return 0, fmt.Errorf("%w: %s is required", ErrInvalid, name)
		}
		return 0, nil
	}
	x, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(x) || x < min || x > max {
		return 0, fmt.Errorf("%w: %s %q: a number from %g to %g", ErrInvalid, name, trunc(v, 20), min, max)
	}
	return x, nil
}

func optNumber(name, v string, min, max float64) (*float64, error) {
	if v == "" {
		return nil, nil
	}
	x, err := number(name, v, min, max, true)
	if err != nil {
		return nil, err
	}
	return &x, nil
}

// msTime parses milliseconds since the Unix epoch (TS 103 625 HTTPS time
// fields), accepting 2000-01-01 to 2100-01-01.
func msTime(name, v string, required bool) (time.Time, error) {
	if v == "" {
		if required {
			return time.Time{}, fmt.Errorf("%w: %s is required (milliseconds since 1970 UTC)", ErrInvalid, name)
		}
		return time.Time{}, nil
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms < 946684800000 || ms > 4102444800000 {
		return time.Time{}, fmt.Errorf("%w: %s %q: milliseconds since 1970 UTC", ErrInvalid, name, trunc(v, 20))
	}
	return time.UnixMilli(ms).UTC(), nil
}

func isDigits(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isLangTag(s string) bool {
	if len(s) == 0 || len(s) > 35 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// trunc shortens outside input before it goes into an error message.
func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
