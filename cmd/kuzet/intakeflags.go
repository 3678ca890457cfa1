package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// parseRate reads a rate limit written as "N/duration" (6/1m: a burst of
// 6, refilled at 6 per minute) into a burst and tokens per second.
func parseRate(s string) (burst int, perSecond float64, err error) {
	n, d, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, 0, fmt.Errorf("%q: write N/duration, e.g. 6/1m", s)
	}
	burst, err = strconv.Atoi(n)
	if err != nil || burst < 1 || burst > 10000 {
		return 0, 0, fmt.Errorf("%q: N must be a whole number from 1 to 10000", s)
	}
	dur, err := time.ParseDuration(d)
	if err != nil || dur <= 0 {
		return 0, 0, fmt.Errorf("%q: the duration must look like 30s, 1m or 1h", s)
	}
	return burst, float64(burst) / dur.Seconds(), nil
}
