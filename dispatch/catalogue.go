package dispatch

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// IncidentType is one entry of the incident type catalogue.
type IncidentType struct {
	Code     string            `json:"code"`
	Label    map[string]string `json:"label"` // kk, ru, en
	Priority int               `json:"priority"`
	// Emergency types go to the 102 queue; the others to the 1402
	// non-emergency line.
	Emergency bool `json:"emergency"`
}

// Disposition is how an incident ended.
type Disposition struct {
	Code  string            `json:"code"`
	Label map[string]string `json:"label"`
}

// Catalogue holds the configurable lists: incident types, dispositions and
// the response-time target per priority.
type Catalogue struct {
	Types        []IncidentType `json:"types"`
	Dispositions []Disposition  `json:"dispositions"`
	// DispatchTarget[p-1] is how long an incident of priority p may wait
	// for its first unit before the unassigned-incident alert is raised.
	DispatchTarget []Duration `json:"dispatch_target"`

	types        map[string]IncidentType
	dispositions map[string]bool
}

// Duration is a time.Duration written as "90s" in JSON.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"90s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func l(kk, ru, en string) map[string]string { return map[string]string{"kk": kk, "ru": ru, "en": en} }

// DefaultCatalogue follows APCO common incident types and dispositions,
// with labels in Kazakh, Russian and English.
func DefaultCatalogue() *Catalogue {
	c := &Catalogue{
		Types: []IncidentType{
			{"SHOTS", l("Атыс", "Стрельба", "Shots fired"), 1, true},
			{"ASSAULT", l("Шабуыл, төбелес", "Нападение, драка", "Assault"), 1, true},
			{"ROBBERY", l("Тонау, қарақшылық", "Грабёж, разбой", "Robbery"), 1, true},
			{"DOMESTIC", l("Тұрмыстық зорлық-зомбылық", "Бытовое насилие", "Domestic violence"), 1, true},
			{"KIDNAP", l("Адам ұрлау", "Похищение человека", "Kidnapping"), 1, true},
			{"BURGLARY", l("Ұрлық (үйге кіру)", "Кража со взломом", "Burglary"), 2, true},
			{"TRAFFIC_INJURY", l("Зардап шеккендері бар ЖКО", "ДТП с пострадавшими", "Traffic collision with injuries"), 2, true},
			{"MISSING_PERSON", l("Із-түзсіз жоғалған адам", "Пропал человек", "Missing person"), 2, true},
			{"THEFT", l("Ұрлық", "Кража", "Theft"), 3, true},
			{"TRAFFIC", l("ЖКО", "ДТП без пострадавших", "Traffic collision"), 3, true},
			{"DISTURBANCE", l("Қоғамдық тәртіпті бұзу", "Нарушение общественного порядка", "Disturbance"), 3, true},
			{"SUSPICIOUS", l("Күдікті адам немесе зат", "Подозрительное лицо или предмет", "Suspicious person or object"), 3, true},
			{"VANDALISM", l("Мүлікті бүлдіру", "Порча имущества", "Vandalism"), 4, true},
			{"WELFARE_CHECK", l("Жағдайын тексеру", "Проверка состояния", "Welfare check"), 3, true},
			{"ALARM", l("Дабыл", "Сработка сигнализации", "Alarm"), 3, true},
			{"FRAUD", l("Алаяқтық", "Мошенничество", "Fraud"), 4, false},
			{"NOISE", l("Шу", "Шум", "Noise complaint"), 5, false},
			{"LOST_DOCUMENTS", l("Құжаттарды жоғалту", "Утеря документов", "Lost documents"), 5, false},
			{"INFO", l("Анықтама, сұрақ", "Справка, вопрос", "Information request"), 5, false},
			{"OTHER", l("Басқа", "Другое", "Other"), 3, true},
		},
		Dispositions: []Disposition{
			{"REPORT", l("Хаттама толтырылды", "Составлен протокол", "Report taken")},
			{"ARREST", l("Ұсталды", "Задержание", "Arrest")},
			{"WARNING", l("Ескерту жасалды", "Предупреждение", "Warning issued")},
			{"CITATION", l("Әкімшілік айыппұл", "Административный штраф", "Citation issued")},
			{"ASSISTED", l("Көмек көрсетілді", "Оказана помощь", "Assistance given")},
			{"GONE_ON_ARRIVAL", l("Келгенде ешкім жоқ", "На месте никого нет", "Gone on arrival")},
			{"UNFOUNDED", l("Расталмады", "Не подтвердилось", "Unfounded")},
			{"FALSE_ALARM", l("Жалған дабыл", "Ложный вызов", "False alarm")},
			{"REFERRED", l("Басқа қызметке берілді", "Передано другой службе", "Referred to another agency")},
			{"DUPLICATE", l("Қайталама", "Дубликат", "Duplicate")},
			{"CANCELLED", l("Тоқтатылды", "Отменено", "Cancelled")},
		},
		DispatchTarget: []Duration{
			Duration(60 * time.Second), Duration(2 * time.Minute), Duration(5 * time.Minute),
			Duration(15 * time.Minute), Duration(30 * time.Minute),
		},
	}
	if err := c.index(); err != nil {
		panic(err)
	}
	return c
}

// LoadCatalogue reads a catalogue from JSON and validates it.
func LoadCatalogue(r io.Reader) (*Catalogue, error) {
	var c Catalogue
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("catalogue: %w", err)
	}
	if err := c.index(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Catalogue) index() error {
	if len(c.Types) == 0 || len(c.Dispositions) == 0 {
		return fmt.Errorf("catalogue: needs at least one incident type and one disposition")
	}
	if len(c.DispatchTarget) != 5 {
		return fmt.Errorf("catalogue: dispatch_target needs 5 entries, one per priority")
	}
	c.types = make(map[string]IncidentType, len(c.Types))
	for _, t := range c.Types {
		if t.Code == "" || t.Priority < 1 || t.Priority > 5 {
			return fmt.Errorf("catalogue: type %q needs a code and a priority 1..5", t.Code)
		}
		c.types[t.Code] = t
	}
	c.dispositions = make(map[string]bool, len(c.Dispositions))
	for _, d := range c.Dispositions {
		c.dispositions[d.Code] = true
	}
	return nil
}

// Type returns the catalogue entry for code.
func (c *Catalogue) Type(code string) (IncidentType, bool) {
	t, ok := c.types[code]
	return t, ok
}

// Target returns the dispatch target for a priority.
func (c *Catalogue) Target(priority int) time.Duration {
	if priority < 1 || priority > len(c.DispatchTarget) {
		return time.Duration(c.DispatchTarget[len(c.DispatchTarget)-1])
	}
	return time.Duration(c.DispatchTarget[priority-1])
}
