package intake

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// amlForm is an Android ELS-style AML POST from a Kcell subscriber in
// Almaty, fields in the order handsets send them.
const amlForm = "v=1&emergency_number=102&source=call&time=1764091438000" +
	"&location_latitude=43.23812&location_longitude=76.94512&location_time=1764091440123" +
	"&location_accuracy=14.2&location_source=GPS&location_altitude=812.4&location_floor=3" +
	"&location_vertical_accuracy=6.0&location_confidence=68&location_bearing=0&location_speed=0.0" +
	"&device_number=%2B77011234567&device_model=SM-A546E&device_imei=354773072099116" +
	"&device_imsi=401021234567890&cell_home_mcc=401&cell_home_mnc=02&cell_network_mcc=401" +
	"&cell_network_mnc=02&device_languages=kk-KZ%2Cru-RU"

func signed(t testing.TB, p *AMLParser, body string) []byte {
	t.Helper()
	return []byte(body + "&hmac=" + p.Sign([]byte(body)))
}

func TestAMLFormVectorFromPublishedLibrary(t *testing.T) {
	// Test vector published with the open-source aml-lib (Rust): key "AML",
	// HMAC-SHA1 over the body before "&hmac=".
	p, err := NewAMLParser(AMLConfig{HMACKey: []byte("AML")})
	if err != nil {
		t.Fatal(err)
	}
	body := "v=1&device_number=%2B33611223344&location_latitude=0.85732&location_longitude=-4.26325&location_time=1604912121000&location_accuracy=10.4&location_source=GPS&location_certainty=83&hmac=f64c70eb238bb239e00e8ac8c023bf2b5d3c41dd"
	f, err := p.ParseForm([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if f.DeviceNumber != "+33611223344" || f.Lat != 0.85732 || f.Confidence != 83 || f.Method != AMLMethodGNSS {
		t.Fatalf("fix = %+v", f)
	}
}

func TestAMLForm(t *testing.T) {
	for _, alg := range []string{"sha1", "sha256"} {
		t.Run(alg, func(t *testing.T) {
			p, err := NewAMLParser(AMLConfig{HMACKey: []byte("kuzet-aml-shared-key"), HMACAlgorithm: alg})
			if err != nil {
				t.Fatal(err)
			}
			f, err := p.ParseForm(signed(t, p, amlForm))
			if err != nil {
				t.Fatal(err)
			}
			if f.Transport != "https" || f.EmergencyNumber != "102" || f.Source != "call" ||
				f.Lat != 43.23812 || f.Lon != 76.94512 || f.Accuracy != 14.2 || f.Confidence != 68 ||
				f.Method != AMLMethodGNSS || *f.Altitude != 812.4 || *f.VerticalAccuracy != 6 || f.Floor != "3" ||
				f.DeviceNumber != "+77011234567" || f.IMEI != "354773072099116" || f.IMSI != "401021234567890" ||
				f.HomeMCC != "401" || f.NetworkMNC != "02" || len(f.Languages) != 2 || f.Languages[0] != "kk-KZ" {
				t.Fatalf("fix = %+v", f)
			}
			if !f.LocationTime.Equal(time.UnixMilli(1764091440123)) || !f.CallTime.Equal(time.UnixMilli(1764091438000)) {
				t.Fatalf("times %v %v", f.LocationTime, f.CallTime)
			}
		})
	}
}

func TestAMLFormELSFractionConfidence(t *testing.T) {
	p, _ := NewAMLParser(AMLConfig{HMACKey: []byte("k")})
	body := strings.Replace(amlForm, "location_confidence=68", "location_confidence=0.6827", 1)
	body = strings.Replace(body, "&location_time=1764091440123", "", 1) // optional in ELS
	f, err := p.ParseForm(signed(t, p, body))
	if err != nil || f.Confidence < 68.26 || f.Confidence > 68.28 || !f.LocationTime.IsZero() {
		t.Fatalf("fix = %+v %v", f, err)
	}
}

func TestAMLFormRejects(t *testing.T) {
	p, _ := NewAMLParser(AMLConfig{HMACKey: []byte("kuzet-aml-shared-key")})
	other, _ := NewAMLParser(AMLConfig{HMACKey: []byte("wrong-key")})
	mod := func(from, to string) []byte { return signed(t, p, strings.Replace(amlForm, from, to, 1)) }
	for _, tc := range []struct {
		name string
		body []byte
		want error
	}{
		{"wrong key", signed(t, other, amlForm), ErrBadHMAC},
		{"no hmac", []byte(amlForm), ErrBadHMAC},
		{"tampered", []byte(strings.Replace(string(signed(t, p, amlForm)), "43.23812", "43.23813", 1)), ErrBadHMAC},
		{"hmac not last", []byte("hmac=00&" + amlForm), ErrBadHMAC},
		{"hmac not hex", []byte(amlForm + "&hmac=zz"), ErrBadHMAC},
		{"too large", []byte(amlForm + strings.Repeat("&x=1", MaxAMLFormBytes)), ErrTooLarge},
		{"latitude range", mod("location_latitude=43.23812", "location_latitude=93.1"), ErrInvalid},
		{"latitude NaN", mod("location_latitude=43.23812", "location_latitude=NaN"), ErrInvalid},
		{"no longitude", mod("&location_longitude=76.94512", ""), ErrInvalid},
		{"negative accuracy", mod("location_accuracy=14.2", "location_accuracy=-1"), ErrInvalid},
		{"no accuracy", mod("&location_accuracy=14.2", ""), ErrInvalid},
		{"bad source", mod("location_source=GPS", "location_source=magic"), ErrInvalid},
		{"bad number", mod("device_number=%2B77011234567", "device_number=call-me"), ErrInvalid},
		{"bad imei", mod("device_imei=354773072099116", "device_imei=35477"), ErrInvalid},
		{"bad time", mod("location_time=1764091440123", "location_time=yesterday"), ErrInvalid},
		{"confidence over 100", mod("location_confidence=68", "location_confidence=140"), ErrInvalid},
		{"seconds not ms", mod("location_time=1764091440123", "location_time=1764091440"), ErrInvalid},
		{"version", mod("v=1", "v=x"), ErrUnsupportedVersion},
		{"repeated", signed(t, p, amlForm+"&location_latitude=1"), ErrMalformed},
		{"bad escape", signed(t, p, amlForm+"&x=%zz"), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := p.ParseForm(tc.body); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v; want %v", err, tc.want)
			}
		})
	}
}

func TestAMLConfig(t *testing.T) {
	if _, err := NewAMLParser(AMLConfig{}); !errors.Is(err, ErrConfig) {
		t.Fatalf("no key, not AllowUnsigned: %v", err)
	}
	if _, err := NewAMLParser(AMLConfig{HMACKey: []byte("k"), HMACAlgorithm: "md5"}); !errors.Is(err, ErrConfig) {
		t.Fatalf("md5: %v", err)
	}
	p, _ := NewAMLParser(AMLConfig{AllowUnsigned: true})
	if _, err := p.ParseForm([]byte(amlForm)); err != nil {
		t.Fatalf("unsigned on trusted link: %v", err)
	}
}

// amlSMS is a v1 SMS as an SMS gateway hands it over, ml counted.
const amlSMS = `A"ML=1;lt=+43.23812;lg=+076.94512;rd=50;top=20261125172400;lc=68;pm=G;si=401021234567890;ei=354773072099116;mcc=401;mnc=02;ml=129`

func TestAMLSMSv1(t *testing.T) {
	if len(amlSMS) != 129 {
		t.Fatalf("sample length %d; fix ml", len(amlSMS))
	}
	f, err := ParseAMLSMS(amlSMS+"\r\n", "87011234567")
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 11, 25, 17, 24, 0, 0, time.UTC)
	if f.Transport != "sms" || f.Version != "1" || f.Lat != 43.23812 || f.Lon != 76.94512 || f.Accuracy != 50 ||
		!f.LocationTime.Equal(want) || f.Confidence != 68 || f.Method != AMLMethodGNSS || f.IMSI != "401021234567890" ||
		f.IMEI != "354773072099116" || f.NetworkMCC != "401" || f.NetworkMNC != "02" || f.DeviceNumber != "+77011234567" ||
		f.MessageLength != 129 || !f.LengthOK {
		t.Fatalf("fix = %+v", f)
	}
	// The published aml-lib sample: a French handset, ml counted by the
	// handset as 126.
	f, err = ParseAMLSMS(`A"ML=1;lt=48.82639;lg=-2.36619;rd=52;top=20191112112928;lc=68;pm=G;si=208201771948415;ei=353472104343540;mcc=208;mnc=20;ml=126`, "")
	if err != nil || f.Lon != -2.36619 || !f.LengthOK || f.DeviceNumber != "" {
		t.Fatalf("aml-lib sample: %+v %v", f, err)
	}
	if f, err := ParseAMLSMS(strings.Replace(amlSMS, "rd=50", "rd=500", 1), ""); err != nil || f.LengthOK {
		t.Fatalf("length mismatch not reported: %+v %v", f, err)
	}
	// Google ELS reference examples: a null location and a Wi-Fi fix whose
	// ml is one less than its length (so ml is reported, not enforced).
	f, err = ParseAMLSMS(`A"ML=1;lt=+00.00000;lg=+000.00000;rd=N;top=20220131173734;lc=0;pm=N;si=234159000000000;ei=123456789012345;mcc=234;mnc=15;ml=127`, "")
	if err != nil || !f.NoLocation || f.Method != AMLMethodNone || !f.LengthOK || f.IMSI != "234159000000000" {
		t.Fatalf("ELS null location: %+v %v", f, err)
	}
	f, err = ParseAMLSMS(`A"ML=1;lt=+51.53321;lg=-0.12601;rd=14;top=20220131171748;lc=68;pm=W;si=234159000000000;ei=123456789012345;mcc=234;mnc=15;ml=126`, "")
	if err != nil || f.NoLocation || f.Lat != 51.53321 || f.Accuracy != 14 || f.LengthOK || f.MessageLength != 126 {
		t.Fatalf("ELS Wi-Fi fix: %+v %v", f, err)
	}
	for pm, m := range map[string]string{"W": AMLMethodWiFi, "C": AMLMethodCell, "N": AMLMethodNone, "F": AMLMethodFused} {
		f, err := ParseAMLSMS(strings.Replace(amlSMS, "pm=G", "pm="+pm, 1), "")
		if err != nil || f.Method != m || f.NoLocation != (pm == "N") {
			t.Fatalf("pm=%s: %+v %v", pm, f, err)
		}
	}
}

func TestAMLSMSv2(t *testing.T) {
	f, err := ParseAMLSMS(`A"ML=2;en=102;et=1764091438;lo=43.23812,76.94512,35.5;lt=2;lc=68;lz=812.4,6.0;ls=W;ei=354773072099116;nc=40102;hc=40102;lg=kk-KZ`, "+77011234567")
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != "2" || f.EmergencyNumber != "102" || f.Accuracy != 35.5 || f.Method != AMLMethodWiFi ||
		!f.LocationTime.Equal(time.Unix(1764091440, 0)) || *f.Altitude != 812.4 || f.NetworkMCC != "401" ||
		f.NetworkMNC != "02" || f.Languages[0] != "kk-KZ" {
		t.Fatalf("fix = %+v", f)
	}
	f, err = ParseAMLSMS(`A"ML=2;en=112;et=1593187189;lo=-37.42175,-122.08461,2000.1;lt=-9999;lc=68;lz=-100.1,100.1;ls=G;ei=358239059042542;nc=310260;hc=310260;lg=en-US`, "")
	if err != nil || !f.LocationTime.IsZero() || f.NetworkMNC != "260" {
		t.Fatalf("published v2 sample: %+v %v", f, err)
	}
}

func TestAMLSMSMalformed(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       error
	}{
		{"no header", `ML=1;lt=43.2;lg=76.9;rd=50`, ErrMalformed},
		{"plain text", `Помогите, меня ограбили`, ErrMalformed},
		{"version 9", `A"ML=9;lt=43.2`, ErrUnsupportedVersion},
		{"no equals", `A"ML=1;lt;lg=76.9;rd=50;top=20261125172400`, ErrMalformed},
		{"repeated", `A"ML=1;lt=43.2;lt=43.3;lg=76.9;rd=50;top=20261125172400`, ErrMalformed},
		{"lat range", strings.Replace(amlSMS, "lt=+43.23812", "lt=+143.23812", 1), ErrInvalid},
		{"lon text", strings.Replace(amlSMS, "lg=+076.94512", "lg=east", 1), ErrInvalid},
		{"truncated", amlSMS[:40], ErrInvalid},
		{"bad top", strings.Replace(amlSMS, "top=20261125172400", "top=2026-11-25", 1), ErrInvalid},
		{"bad pm", strings.Replace(amlSMS, "pm=G", "pm=Q", 1), ErrInvalid},
		{"bad imsi", strings.Replace(amlSMS, "si=401021234567890", "si=abc", 1), ErrInvalid},
		{"bad mnc", strings.Replace(amlSMS, "mnc=02", "mnc=2", 1), ErrInvalid},
		{"lc over 100", strings.Replace(amlSMS, "lc=68", "lc=168", 1), ErrInvalid},
		{"oversize", amlSMS + strings.Repeat(";x=1", 100), ErrTooLarge},
		{"v2 lo short", `A"ML=2;lo=43.2,76.9`, ErrInvalid},
		{"v2 nc", `A"ML=2;lo=43.2,76.9,10;nc=4010`, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseAMLSMS(tc.text, ""); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v; want %v", err, tc.want)
			}
		})
	}
	if _, err := ParseAMLSMS(amlSMS, "not-a-number"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad sender: %v", err)
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time      { return c.t }
func (c *fakeClock) Add(d time.Duration) { c.t = c.t.Add(d) }

func TestAMLMatcher(t *testing.T) {
	clk := &fakeClock{time.Date(2026, 11, 25, 17, 24, 0, 0, time.UTC)}
	m, err := NewAMLMatcher(AMLMatcherConfig{Wait: time.Minute, MaxPending: 3, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	calls, _ := NewCallTracker(CallTrackerConfig{})
	fix, err := ParseAMLSMS(amlSMS, "8 701 123 45 67")
	if err != nil {
		t.Fatal(err)
	}

	// 1. AML before the PBX offers the call: it waits.
	if _, ok, err := m.Offer(fix, calls); ok || err != nil {
		t.Fatalf("no call yet: ok=%v err=%v", ok, err)
	}
	clk.Add(5 * time.Second)
	ev := decodeCTI(t, ctiOffered) // caller_number "8 701 123 45 67" normalises the same way
	if _, err := calls.Apply(ev); err != nil {
		t.Fatal(err)
	}
	got := m.TakePending(ev.CallerNumber)
	if len(got) != 1 || got[0].Lat != 43.23812 {
		t.Fatalf("pending for call = %+v", got)
	}
	if m.Pending() != 0 {
		t.Fatal("taken fix still pending")
	}

	// 2. AML while the call is live: attaches at once.
	id, ok, err := m.Offer(fix, calls)
	if !ok || err != nil || id != ev.CallID {
		t.Fatalf("live call: id=%q ok=%v err=%v", id, ok, err)
	}

	// 3. Expiry and bound.
	other := fix
	other.DeviceNumber = "+77770000001"
	m.Offer(other, calls)
	clk.Add(61 * time.Second)
	if n := m.Pending(); n != 0 {
		t.Fatalf("expired fix still pending: %d", n)
	}
	for i := 0; i < 5; i++ {
		f := fix
		f.DeviceNumber = "+7777000000" + string(rune('0'+i))
		m.Offer(f, calls)
		clk.Add(time.Second)
	}
	if n := m.Pending(); n != 3 {
		t.Fatalf("pending = %d; want bound 3", n)
	}
	if len(m.TakePending("+77770000000")) != 0 || len(m.TakePending("+77770000004")) != 1 {
		t.Fatal("oldest not evicted first")
	}
	noNum := fix
	noNum.DeviceNumber = ""
	if _, _, err := m.Offer(noNum, calls); !errors.Is(err, ErrInvalid) {
		t.Fatalf("fix without number: %v", err)
	}
}

// announcer is a CallFinder that, when asked, plays the journal listener
// of a call announced at that moment: it takes the waiting fixes first.
type announcer struct {
	m    *AMLMatcher
	took []AMLFix
}

func (a *announcer) CallByNumber(n string) (string, bool) {
	a.took = append(a.took, a.m.TakePending(n)...)
	return "call-1", true
}

// TestAMLMatcherRace: Offer stores the fix before it asks for the call, so
// a call announced at the same moment gets the fix exactly once: here the
// announcement wins and Offer reports the fix as waiting (not attached by
// it); Keep puts taken fixes back for a refused call.
func TestAMLMatcherRace(t *testing.T) {
	m, _ := NewAMLMatcher(AMLMatcherConfig{})
	fix, err := ParseAMLSMS(amlSMS, "8 701 123 45 67")
	if err != nil {
		t.Fatal(err)
	}
	a := &announcer{m: m}
	if _, ok, err := m.Offer(fix, a); ok || err != nil {
		t.Fatalf("announcement took the fix, Offer must not also attach it: ok=%v err=%v", ok, err)
	}
	if len(a.took) != 1 || m.Pending() != 0 {
		t.Fatalf("announcer took %d, %d still pending; want exactly one handed over", len(a.took), m.Pending())
	}
	m.Keep(a.took)
	if !m.HasPending(fix.DeviceNumber) || m.Pending() != 1 {
		t.Fatal("kept fix not waiting again")
	}
}

func FuzzAMLForm(f *testing.F) {
	p, _ := NewAMLParser(AMLConfig{HMACKey: []byte("kuzet-aml-shared-key")})
	f.Add(string(signed(f, p, amlForm)))
	f.Add(amlForm)
	f.Add("v=1&location_latitude=1&location_longitude=2&location_time=1764091440123&location_accuracy=3")
	f.Add("v=1&hmac=")
	unsigned, _ := NewAMLParser(AMLConfig{AllowUnsigned: true})
	f.Fuzz(func(t *testing.T, body string) {
		for _, pp := range []*AMLParser{p, unsigned} {
			fix, err := pp.ParseForm([]byte(body))
			if err != nil {
				continue
			}
			if fix.Lat < -90 || fix.Lat > 90 || fix.Lon < -180 || fix.Lon > 180 || fix.Accuracy < 0 {
				t.Fatalf("accepted out-of-range fix %+v", fix)
			}
		}
	})
}

func FuzzAMLSMS(f *testing.F) {
	f.Add(amlSMS, "87011234567")
	f.Add(`A"ML=2;en=102;et=1764091438;lo=43.23812,76.94512,35.5;lt=2;lc=68;lz=812.4,6.0;ls=W;ei=354773072099116;nc=40102;hc=40102;lg=kk-KZ`, "")
	f.Add(`A"ML=1;`, "")
	f.Add(`A"ML=1;lt=;lg=`, "+7")
	f.Fuzz(func(t *testing.T, text, sender string) {
		fix, err := ParseAMLSMS(text, sender)
		if err != nil {
			return
		}
		if fix.Lat < -90 || fix.Lat > 90 || fix.Lon < -180 || fix.Lon > 180 || fix.Accuracy < 0 || fix.Confidence > 100 {
			t.Fatalf("accepted out-of-range fix %+v", fix)
		}
	})
}
