package intake

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"
	"unicode"
)

// DupItem is a call, report or incident as duplicate scoring sees it.
type DupItem struct {
	ID       string
	Time     time.Time
	Lat, Lon float64
	HasPoint bool
	Number   string // normalised E.164; empty if unknown
	Text     string
}

// DupConfig tunes ScoreDuplicates. Zero fields take the defaults.
type DupConfig struct {
	Radius   float64       // metres; default 300
	Window   time.Duration // default 10 minutes
	MinText  float64       // text similarity that counts; default 0.3
	MinScore float64       // candidates below are dropped; default 0.25
	Max      int           // most candidates returned; default 5
}

// DupCandidate is a likely duplicate with the reasons the operator sees.
type DupCandidate struct {
	ID        string
	Score     float64 // 0..1
	DistanceM float64 // -1 when either item has no point
	Gap       time.Duration
	Reasons   []string
}

// ScoreDuplicates ranks recent items that may describe the same event as
// item: close in space and time, the same caller number, or similar text.
// It is a pure function; the dispatch core passes the open incidents and
// calls of the last Window.
//
// Each signal gives a probability-like score and they combine as
// 1 − Π(1 − sᵢ), so two weak signals together outrank one: a caller
// ringing back from the same number (0.7) is a duplicate on its own;
// 150 m and 2 minutes apart scores 0.47; similar text adds to either.
func ScoreDuplicates(item DupItem, recent []DupItem, cfg DupConfig) []DupCandidate {
	return NewDupSet(recent).Score(item, cfg)
}

// DupSet is a set of recent items with their text tokens computed once,
// for scoring many new items against the same set (the intake queue
// scores every row against every recent item: tokenising once per set
// instead of once per pair is what keeps that linear in the text).
// It is read-only after NewDupSet and safe for concurrent use.
type DupSet struct {
	items  []DupItem
	tokens [][]uint64
}

// NewDupSet prepares recent for scoring.
func NewDupSet(recent []DupItem) *DupSet {
	d := &DupSet{items: recent, tokens: make([][]uint64, len(recent))}
	for i := range recent {
		d.tokens[i] = textTokens(recent[i].Text)
	}
	return d
}

// Score is ScoreDuplicates against the set.
func (d *DupSet) Score(item DupItem, cfg DupConfig) []DupCandidate {
	recent := d.items
	if cfg.Radius <= 0 {
		cfg.Radius = 300
	}
	if cfg.Window <= 0 {
		cfg.Window = 10 * time.Minute
	}
	if cfg.MinText <= 0 {
		cfg.MinText = 0.3
	}
	if cfg.MinScore <= 0 {
		cfg.MinScore = 0.25
	}
	if cfg.Max <= 0 {
		cfg.Max = 5
	}
	itemTokens := textTokens(item.Text)
	var out []DupCandidate
	for i, r := range recent {
		if r.ID == item.ID {
			continue
		}
		gap := item.Time.Sub(r.Time)
		if gap < 0 {
			gap = -gap
		}
		if gap > cfg.Window {
			continue
		}
		c := DupCandidate{ID: r.ID, DistanceM: -1, Gap: gap}
		miss := 1.0
		tf := 1 - float64(gap)/float64(cfg.Window) // 1 now … 0 at window
		far := false
		if item.HasPoint && r.HasPoint {
			// The great-circle distance is at least the meridian arc
			// between the latitudes, so most far pairs skip the
			// trigonometry; their distance is computed only if another
			// signal makes them a candidate.
			if math.Abs(item.Lat-r.Lat)*metresPerDegreeLat > cfg.Radius {
				far = true
			} else {
				c.DistanceM = HaversineM(item.Lat, item.Lon, r.Lat, r.Lon)
			}
			if !far && c.DistanceM <= cfg.Radius {
				df := 1 - c.DistanceM/cfg.Radius
				s := 0.2 + 0.6*df*(0.5+0.5*tf)
				miss *= 1 - s
				c.Reasons = append(c.Reasons, fmt.Sprintf("%.0f m and %s apart", c.DistanceM, gap.Round(time.Second)))
			}
		}
		if item.Number != "" && item.Number == r.Number {
			miss *= 1 - 0.7
			c.Reasons = append(c.Reasons, "same caller number "+r.Number)
		}
		if sim := tokenJaccard(itemTokens, d.tokens[i]); sim >= cfg.MinText {
			miss *= 1 - 0.6*sim
			c.Reasons = append(c.Reasons, fmt.Sprintf("similar text (%.0f%%)", sim*100))
		}
		c.Score = 1 - miss
		if c.Score >= cfg.MinScore {
			if far {
				c.DistanceM = HaversineM(item.Lat, item.Lon, r.Lat, r.Lon)
			}
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score > out[j].Score
		}
		return out[i].ID < out[j].ID
	})
	if len(out) > cfg.Max {
		out = out[:cfg.Max]
	}
	return out
}

// metresPerDegreeLat is the meridian arc of one degree on HaversineM's
// sphere (π·6371008.8/180 = 111195.08 m), rounded down so the bound in
// Score never rejects a pair Haversine would accept.
const metresPerDegreeLat = 111195

// HaversineM is the great-circle distance in metres (mean Earth radius);
// within a city the error against WGS 84 is under 0.5 %.
func HaversineM(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371008.8
	p1, p2 := lat1*math.Pi/180, lat2*math.Pi/180
	dp, dl := p2-p1, (lon2-lon1)*math.Pi/180
	a := math.Sin(dp/2)*math.Sin(dp/2) + math.Cos(p1)*math.Cos(p2)*math.Sin(dl/2)*math.Sin(dl/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(a)))
}

// textTokens returns the sorted, de-duplicated hashes of the tokens of
// text: each lower-cased word (letters and digits, any script) of three or
// more letters contributes its first five letters, which folds Russian and
// Kazakh inflection ("пожар", "пожара", "пожаре" → "пожар") well enough for
// a hint, plus its character trigrams, which catch typos and word order.
// Hashing to uint64 keeps scoring allocation-light; a collision at 64 bits
// among a few hundred tokens is negligible.
func textTokens(text string) []uint64 {
	out := make([]uint64, 0, len(text)/2)
	word := make([]rune, 0, 32)
	flush := func() {
		if len(word) >= 3 { // prepositions and particles carry no signal
			out = append(out, hashRunes('w', word[:min(5, len(word))]))
			for i := 0; i+3 <= len(word); i++ {
				out = append(out, hashRunes('t', word[i:i+3]))
			}
		}
		word = word[:0]
	}
	for _, r := range text {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			r = unicode.ToLower(r)
			if r == 'ё' {
				r = 'е'
			}
			word = append(word, r)
		} else {
			flush()
		}
	}
	flush()
	slices.Sort(out)
	return slices.Compact(out)
}

// hashRunes is FNV-1a over the runes with a kind prefix.
func hashRunes(kind rune, rs []rune) uint64 {
	h := (uint64(14695981039346656037) ^ uint64(kind)) * 1099511628211
	for _, r := range rs {
		h ^= uint64(r)
		h *= 1099511628211
	}
	return h
}

// tokenJaccard is the Jaccard index of two sorted token sets.
func tokenJaccard(a, b []uint64) float64 {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	inter, i, j := 0, 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] == b[j]:
			inter++
			i++
			j++
		case a[i] < b[j]:
			i++
		default:
			j++
		}
	}
	return float64(inter) / float64(len(a)+len(b)-inter)
}

// SimilarText is the token Jaccard similarity (0..1) of two texts.
func SimilarText(a, b string) float64 { return tokenJaccard(textTokens(a), textTokens(b)) }
