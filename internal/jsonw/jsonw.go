// Package jsonw appends JSON values to byte slices without reflection, for
// the few answers on hot paths (recommendations, position batches) whose
// shape is fixed. What it writes decodes to the same values as
// encoding/json's output for the same Go values (TestMatchesEncodingJSON).
package jsonw

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

const hex = "0123456789abcdef"

// String appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// encoding/json does; control characters and U+2028/U+2029 are escaped.
func String(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Float appends f in the shortest form that reads back exactly. NaN and
// infinities, which JSON cannot hold, are written as null.
func Float(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return strconv.AppendFloat(b, f, 'e', -1, 64)
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// Fixed appends f rounded to d decimals (0 ≤ d ≤ 9), trailing zeros
// dropped: the number math.Round(f×10^d)/10^d, which reads back exactly
// (numbers too large for that, beyond 2^53 units of the last decimal, are
// written as Float writes them).
// Measured quantities (metres, seconds, degrees) need no more digits than
// they have, and this is about five times faster than Float. NaN and
// infinities are written as null.
func Fixed(b []byte, f float64, d int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	n := math.Round(f * pow10[d])
	if !(math.Abs(n) < 1<<53) {
		return Float(b, f)
	}
	i := int64(n)
	if i < 0 {
		b = append(b, '-')
		i = -i
	}
	p := int64(pow10[d])
	b = strconv.AppendInt(b, i/p, 10)
	frac := i % p
	if frac == 0 {
		return b
	}
	b = append(b, '.')
	for p /= 10; frac != 0; p /= 10 {
		b = append(b, byte('0'+frac/p))
		frac %= p
	}
	return b
}

// Int appends i.
func Int(b []byte, i int64) []byte { return strconv.AppendInt(b, i, 10) }

// Bool appends true or false.
func Bool(b []byte, v bool) []byte { return strconv.AppendBool(b, v) }

// Time appends t as an RFC 3339 string with nanoseconds, as
// time.Time.MarshalJSON does.
func Time(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// Key appends a comma when the object already has a member (b does not end
// in '{'), then "name": with name written as is: names are Go constants in
// the callers and must need no escaping.
func Key(b []byte, name string) []byte {
	if n := len(b); n > 0 && b[n-1] != '{' {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}
