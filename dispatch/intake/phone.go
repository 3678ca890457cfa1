package intake

import (
	"fmt"
	"strings"
)

// NormalizePhone turns a caller number as a PBX, a handset or a citizen
// types it into E.164 ("+77011234567") so that an AML fix, a CTI call and a
// report from the same phone compare equal.
//
// The numbering plan is Kazakhstan's (shared with Russia): country code 7,
// national significant number of 10 digits, domestic trunk prefix 8. So
// "8 701 123 45 67", "+7 (701) 123-45-67", "77011234567" and "7011234567" all
// become "+77011234567". Other international numbers are accepted with a
// leading "+" or "00" and 8 to 15 digits (ITU-T E.164 §6.1).
func NormalizePhone(s string) (string, error) {
	if len(s) > 40 {
		return "", fmt.Errorf("%w: phone number longer than 40 characters", ErrInvalid)
	}
	var b strings.Builder
	plus := false
	for i, r := range strings.TrimSpace(s) {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0:
			plus = true
		case r == ' ' || r == '-' || r == '(' || r == ')' || r == '.':
		default:
			return "", fmt.Errorf("%w: phone number %q contains %q; use digits with an optional leading +", ErrInvalid, s, r)
		}
	}
	d := b.String()
	switch {
	case plus:
	case strings.HasPrefix(d, "00"):
		d = d[2:]
	case len(d) == 11 && d[0] == '8':
		d = "7" + d[1:]
	case len(d) == 11 && d[0] == '7':
	case len(d) == 10:
		d = "7" + d
	default:
		return "", fmt.Errorf("%w: phone number %q is neither +<country><number> nor a 10/11-digit Kazakhstan number", ErrInvalid, s)
	}
	if len(d) < 8 || len(d) > 15 || d[0] == '0' {
		return "", fmt.Errorf("%w: phone number %q must have 8 to 15 digits after the country code prefix (E.164)", ErrInvalid, s)
	}
	return "+" + d, nil
}
