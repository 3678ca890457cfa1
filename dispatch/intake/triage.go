package intake

import (
	"fmt"
	"strings"
)

// Queues. "102" is the police emergency line; "1402" is the non-emergency
// police information line (concept 2024–2028, section on the 1402 service).
const (
	Queue102  = "102"
	Queue1402 = "1402"
)

// Report and call categories. The set is open: a deployment may add its
// own through TriageConfig.
const (
	CatViolence       = "violence"
	CatRobbery        = "robbery"
	CatTheft          = "theft"
	CatFire           = "fire"
	CatAccidentInjury = "traffic_accident_injury"
	CatAccident       = "traffic_accident"
	CatDomestic       = "domestic_violence"
	CatMissingPerson  = "missing_person"
	CatWeapon         = "weapon"
	CatDrunkDriver    = "drunk_driver"
	CatPublicOrder    = "public_order"
	CatNoise          = "noise"
	CatLostDocuments  = "lost_documents"
	CatInformation    = "information_request"
	CatQuestion       = "general_question"
	CatOther          = "other"
)

// DefaultTriage is the category → queue table used when TriageConfig.Queues
// is empty. Anything that threatens life, health or property now goes to
// 102; the rest to 1402. Unknown categories go to 102: a wrong 102 costs
// an operator a minute, a wrong 1402 can cost a life.
var DefaultTriage = map[string]string{
	CatViolence: Queue102, CatRobbery: Queue102, CatTheft: Queue102, CatFire: Queue102,
	CatAccidentInjury: Queue102, CatDomestic: Queue102, CatMissingPerson: Queue102,
	CatWeapon: Queue102, CatDrunkDriver: Queue102, CatPublicOrder: Queue102,
	CatAccident:      Queue1402, // damage only: registration, no ambulance
	CatNoise:         Queue1402,
	CatLostDocuments: Queue1402, CatInformation: Queue1402, CatQuestion: Queue1402,
	CatOther: Queue102,
}

// defaultKeywords map word stems in kk, ru and en to categories, for text
// that arrives without a category (chat-bot, SMS). First match in the
// order of this slice wins, so the graver categories come first.
var defaultKeywords = []struct {
	cat   string
	stems []string
}{
	{CatWeapon, []string{"оруж", "пистолет", "нож", "стрел", "қару", "пышақ", "атыс", "gun", "knife", "shoot"}},
	{CatFire, []string{"пожар", "горит", "горят", "дым", "өрт", "жанып", "fire", "smoke", "burning"}},
	{CatAccidentInjury, []string{"сбил", "пострадав", "ранен", "соққан", "жарақат", "injur", "hit by"}},
	{CatDomestic, []string{"муж бьет", "муж бьёт", "жена бьет", "отбасы", "семейн", "domestic"}},
	{CatRobbery, []string{"ограб", "грабеж", "грабёж", "разбой", "тонап", "тонау", "robb", "mugg"}},
	{CatViolence, []string{"избив", "бьют", "драк", "напал", "ұрып", "төбелес", "шабуыл", "fight", "beat", "assault", "attack"}},
	{CatTheft, []string{"украл", "краж", "угнал", "ұрла", "stole", "theft", "stolen"}},
	{CatMissingPerson, []string{"пропал", "потерял ребен", "жоғалып кетті", "missing"}},
	{CatDrunkDriver, []string{"пьяный водител", "мас жүргізуші", "drunk driv"}},
	{CatAccident, []string{"дтп", "авария", "столкнов", "жол-көлік", "апат", "crash", "accident", "collision"}},
	{CatNoise, []string{"шум", "громк", "музык", "noise", "loud"}},
	{CatLostDocuments, []string{"потерял документ", "паспорт", "удостоверени", "құжат", "куәлік", "lost document", "passport", "id card"}},
	{CatInformation, []string{"справк", "анықтама", "certificate"}},
	{CatQuestion, []string{"вопрос", "подскажите", "как узнать", "сұрақ", "қалай", "question", "how do i"}},
}

// TriageConfig configures Triage.
type TriageConfig struct {
	// Queues maps category → Queue102 or Queue1402; empty uses DefaultTriage.
	Queues map[string]string
	// Default is the queue for categories not in Queues. Default Queue102.
	Default string
}

// Triage classifies calls and reports into the 102 or 1402 queue. It is
// read-only after construction and safe for concurrent use.
type Triage struct {
	queues map[string]string
	def    string
}

// NewTriage validates cfg.
func NewTriage(cfg TriageConfig) (*Triage, error) {
	t := &Triage{queues: cfg.Queues, def: cfg.Default}
	if len(t.queues) == 0 {
		t.queues = DefaultTriage
	}
	if t.def == "" {
		t.def = Queue102
	}
	for c, q := range t.queues {
		if q != Queue102 && q != Queue1402 {
			return nil, fmt.Errorf("%w: triage category %q maps to queue %q; use 102 or 1402", ErrConfig, c, q)
		}
	}
	if t.def != Queue102 && t.def != Queue1402 {
		return nil, fmt.Errorf("%w: triage default queue %q", ErrConfig, t.def)
	}
	return t, nil
}

// Queue returns the queue for a category. Operators may move an item
// afterwards; that is a dispatch command, not triage.
func (t *Triage) Queue(category string) string {
	if q, ok := t.queues[category]; ok {
		return q
	}
	return t.def
}

// Known reports whether the category is in the table.
func (t *Triage) Known(category string) bool {
	_, ok := t.queues[category]
	return ok
}

// CategoryFromText guesses a category from free text by keyword stems in
// Kazakh, Russian and English; CatOther when nothing matches. It is a
// hint for the operator, who sees the text.
func CategoryFromText(text string) string {
	l := " " + strings.ReplaceAll(strings.ToLower(text), "ё", "е") + " "
	for _, k := range defaultKeywords {
		for _, s := range k.stems {
			if strings.Contains(l, s) {
				return k.cat
			}
		}
	}
	return CatOther
}
