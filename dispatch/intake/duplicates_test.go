package intake

import (
	"math"
	"testing"
	"time"
)

// offset moves a point north by m metres.
func north(lat, m float64) float64 { return lat + m/111195.0 }

func TestSecondCall150mTwoMinutesLaterIsFlagged(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 17, 24, 0, 0, time.UTC)
	first := DupItem{ID: "call-1", Time: t0, Lat: 43.23812, Lon: 76.94512, HasPoint: true, Number: "+77011234567",
		Text: "Драка у входа в ТРЦ Мега, двое избивают парня"}
	second := DupItem{ID: "call-2", Time: t0.Add(2 * time.Minute), Lat: north(43.23812, 150), Lon: 76.94512, HasPoint: true,
		Number: "+77479876543", Text: "Возле Меги дерутся, человек лежит"}
	far := DupItem{ID: "call-3", Time: t0.Add(time.Minute), Lat: north(43.23812, 2000), Lon: 76.94512, HasPoint: true,
		Number: "+77005554433", Text: "Угнали машину"}
	old := DupItem{ID: "call-4", Time: t0.Add(-30 * time.Minute), Lat: 43.23812, Lon: 76.94512, HasPoint: true}

	got := ScoreDuplicates(second, []DupItem{first, far, old}, DupConfig{})
	if len(got) != 1 || got[0].ID != "call-1" {
		t.Fatalf("candidates = %+v", got)
	}
	c := got[0]
	if math.Abs(c.DistanceM-150) > 1 || c.Gap != 2*time.Minute || c.Score < 0.4 || len(c.Reasons) == 0 {
		t.Fatalf("candidate = %+v", c)
	}
	t.Logf("score %.2f reasons %v", c.Score, c.Reasons)
}

func TestDuplicateSignals(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 17, 24, 0, 0, time.UTC)
	item := DupItem{ID: "new", Time: t0, Number: "+77011234567", Text: "Горит гараж во дворе дома 15 по улице Сейфуллина"}
	recent := []DupItem{
		{ID: "same-number", Time: t0.Add(-5 * time.Minute), Number: "+77011234567", Text: "алло"},
		{ID: "similar-text", Time: t0.Add(-3 * time.Minute), Text: "Пожар: горит гараж во дворе дома на Сейфуллина 15"},
		{ID: "unrelated", Time: t0.Add(-time.Minute), Text: "Потерял паспорт"},
		{ID: "new", Time: t0, Number: "+77011234567"}, // itself
	}
	got := ScoreDuplicates(item, recent, DupConfig{})
	if len(got) != 2 || got[0].ID != "same-number" || got[1].ID != "similar-text" {
		t.Fatalf("candidates = %+v", got)
	}
	if got[0].DistanceM != -1 {
		t.Fatal("distance without points")
	}
	// Signals add up: the same number, close and similar text outrank one signal.
	both := DupItem{ID: "both", Time: t0.Add(-time.Minute), Lat: 43.2, Lon: 76.9, HasPoint: true, Number: item.Number, Text: item.Text}
	item.Lat, item.Lon, item.HasPoint = 43.2, 76.9, true
	got = ScoreDuplicates(item, append(recent, both), DupConfig{Max: 1})
	if len(got) != 1 || got[0].ID != "both" || got[0].Score < 0.95 || len(got[0].Reasons) != 3 {
		t.Fatalf("combined = %+v", got)
	}
}

func TestSimilarTextCyrillic(t *testing.T) {
	if s := SimilarText("Горит гараж на Сейфуллина", "Пожар, горят гаражи, улица Сейфуллина"); s < 0.3 {
		t.Errorf("related Russian text similarity %.2f", s)
	}
	if s := SimilarText("Көлік апаты, Абай даңғылы", "Абай даңғылында көлік апаты болды"); s < 0.3 {
		t.Errorf("related Kazakh text similarity %.2f", s)
	}
	if s := SimilarText("Горит гараж", "Потерял паспорт"); s > 0.1 {
		t.Errorf("unrelated similarity %.2f", s)
	}
	if s := SimilarText("", "x"); s != 0 {
		t.Error("empty text")
	}
}

func BenchmarkScoreDuplicates(b *testing.B) {
	t0 := time.Date(2026, 11, 25, 17, 24, 0, 0, time.UTC)
	var recent []DupItem
	for i := 0; i < 200; i++ {
		recent = append(recent, DupItem{ID: "r", Time: t0.Add(-time.Duration(i) * 3 * time.Second),
			Lat: 43.2 + float64(i)*1e-4, Lon: 76.9, HasPoint: true, Text: "Драка у входа в торговый центр, двое избивают парня"})
	}
	item := DupItem{ID: "n", Time: t0, Lat: 43.21, Lon: 76.9, HasPoint: true, Text: "Возле торгового центра дерутся"}
	b.ReportAllocs()
	for b.Loop() {
		ScoreDuplicates(item, recent, DupConfig{})
	}
}
