package jsonw

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

func decode(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%q is not JSON: %v", b, err)
	}
	return v
}

// TestMatchesEncodingJSON: strings (with quotes, controls, invalid UTF-8,
// line separators, Kazakh letters), floats over the whole range and times
// decode to what encoding/json's output decodes to.
func TestMatchesEncodingJSON(t *testing.T) {
	strs := []string{"", "plain", `q"uo\te`, "tab\tnl\ncr\r\x00\x1f\x7f", "bad\xff\xfeutf8", "Қазақ ұлттық ұлан", "\u2028\u2029", "<&>"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		n := rng.IntN(12)
		bs := make([]byte, n)
		for i := range bs {
			bs[i] = byte(rng.IntN(256))
		}
		strs = append(strs, string(bs))
	}
	for _, s := range strs {
		want, _ := json.Marshal(s)
		if got := String(nil, s); !reflect.DeepEqual(decode(t, got), decode(t, want)) {
			t.Fatalf("String(%q) = %s, encoding/json %s", s, got, want)
		}
	}
	floats := []float64{0, -0.0, 1, -1, 0.1, 1e-7, 1e-6, 123456789.123, 1e20, 1e21, 5e-324, math.MaxFloat64, 43.238949, 76.889709}
	for range 2000 {
		floats = append(floats, math.Float64frombits(rng.Uint64()))
	}
	for _, f := range floats {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			if got := string(Float(nil, f)); got != "null" {
				t.Fatalf("Float(%v) = %s", f, got)
			}
			continue
		}
		want, _ := json.Marshal(f)
		if got := Float(nil, f); !reflect.DeepEqual(decode(t, got), decode(t, want)) {
			t.Fatalf("Float(%v) = %s, encoding/json %s", f, got, want)
		}
	}
	for _, f := range floats {
		for d := range 10 {
			got := Fixed(nil, f, d)
			if math.IsNaN(f) || math.IsInf(f, 0) {
				if string(got) != "null" {
					t.Fatalf("Fixed(%v, %d) = %s", f, d, got)
				}
				continue
			}
			want := f
			if n := math.Round(f * pow10[d]); math.Abs(n) < 1<<53 {
				want = n / pow10[d]
			}
			var back float64
			if err := json.Unmarshal(got, &back); err != nil || back != want {
				t.Fatalf("Fixed(%v, %d) = %s, reads back %v (%v), want %v", f, d, got, back, err, want)
			}
		}
	}
	for _, c := range []struct {
		f    float64
		d    int
		want string
	}{{1234.5678, 1, "1234.6"}, {-0.04, 1, "0"}, {43.2389491, 7, "43.2389491"}, {0.5, 0, "1"}, {-2.25, 1, "-2.3"}, {10.100, 3, "10.1"}, {7, 2, "7"}} {
		if got := string(Fixed(nil, c.f, c.d)); got != c.want {
			t.Fatalf("Fixed(%v, %d) = %s, want %s", c.f, c.d, got, c.want)
		}
	}
	for _, tm := range []time.Time{{}, time.Date(2026, 11, 29, 19, 1, 2, 345678900, time.UTC), time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("ALMT", 5*3600))} {
		want, _ := json.Marshal(tm)
		if got := Time(nil, tm); string(got) != string(want) {
			t.Fatalf("Time(%v) = %s, encoding/json %s", tm, got, want)
		}
	}
	b := append([]byte(nil), '{')
	b = Key(b, "a")
	b = Int(b, -7)
	b = Key(b, "b")
	b = Bool(b, true)
	b = append(b, '}')
	if string(b) != `{"a":-7,"b":true}` {
		t.Fatalf("object: %s", b)
	}
}
