package main

import "testing"

func TestParseRate(t *testing.T) {
	if b, r, err := parseRate("6/1m"); err != nil || b != 6 || r != 0.1 {
		t.Fatalf("6/1m: %d %v %v", b, r, err)
	}
	for _, bad := range []string{"", "6", "0/1m", "x/1m", "6/", "6/-1s", "6/soon"} {
		if _, _, err := parseRate(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
