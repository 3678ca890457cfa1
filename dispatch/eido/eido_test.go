package eido_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/kuzet/kuzet/dispatch"
	"github.com/kuzet/kuzet/dispatch/eido"
	"github.com/kuzet/kuzet/dispatch/journal/filejournal"
)

// schemaPath is NENA's published EIDO OpenAPI document, kept unchanged in
// testdata/nena with its source.
func schemaPath(t *testing.T) string {
	t.Helper()
	p := filepath.Join("testdata", "nena", "openapi.yaml")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("NENA's EIDO schema is missing from the repository: %v", err)
	}
	return p
}

// compileSchema converts the OpenAPI 3.0 component schemas to one JSON
// Schema (2020-12) document rooted at EmergencyIncidentDataObjectType:
// "#/components/schemas/X" references become "#/$defs/X". Two things in
// the published file need care, and both are counted so the test notices
// if the file changes:
//   - references to NIEM component files (Person, Organization, Vehicle,
//     Item), which are not shipped beside openapi.yaml, become {} (any
//     value); Kuzet's export uses none of those components;
//   - AgentType has "minItems: 1," which YAML reads as the string "1,";
//     it is read as the integer 1 the authors meant.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	raw, err := os.ReadFile(schemaPath(t))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("EIDO openapi.yaml: %v", err)
	}
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	external, fixed := 0, 0
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				if name, ok := strings.CutPrefix(ref, "#/components/schemas/"); ok {
					x["$ref"] = "#/$defs/" + name
				} else if !strings.HasPrefix(ref, "#") {
					external++
					return map[string]any{}
				}
			}
			for k, e := range x {
				if k == "minItems" {
					if s, ok := e.(string); ok && strings.TrimSuffix(s, ",") == "1" {
						fixed++
						x[k] = 1
						continue
					}
				}
				if k == "example" {
					continue
				}
				x[k] = walk(e)
			}
			return x
		case []any:
			for i := range x {
				x[i] = walk(x[i])
			}
		}
		return v
	}
	walk(schemas)
	if external != 5 || fixed != 1 {
		t.Fatalf("NENA's openapi.yaml changed: %d external NIEM references (want 5), %d minItems fixes (want 1); review compileSchema", external, fixed)
	}
	root := map[string]any{
		"$schema": "https://json-schema.org/draft/2020-12/schema",
		"$ref":    "#/$defs/EmergencyIncidentDataObjectType",
		"$defs":   schemas,
	}
	b, err := json.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	sdoc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("eido.json", sdoc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("eido.json")
	if err != nil {
		t.Fatalf("compiling the EIDO schema: %v", err)
	}
	return sch
}

func validate(sch *jsonschema.Schema, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return err
	}
	return sch.Validate(inst)
}

// scenario builds incidents through the real dispatch service: plain,
// with calls (PBX, AML), with units, with a citizen report and media,
// merged, and with a merge undone.
func scenario(t *testing.T) (*dispatch.Service, map[string]string) {
	t.Helper()
	j, err := filejournal.Open(filejournal.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := dispatch.New(dispatch.Config{Journal: j, TimerInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(); j.Close() })
	ctx := context.Background()
	ct := dispatch.Meta{Actor: dispatch.Actor{ID: "user:calltaker1"}}
	sup := dispatch.Meta{Actor: dispatch.Actor{ID: "user:supervisor1", Supervisor: true}}
	pbx := dispatch.Meta{Actor: dispatch.Actor{ID: "pbx"}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ids := map[string]string{}
	at := time.Date(2026, 11, 25, 17, 24, 0, 0, time.UTC)

	plain, err := svc.CreateIncident(ctx, ct, dispatch.NewIncident{Type: "NOISE", Location: dispatch.Location{Lat: 43.25, Lon: 76.92, Address: "Абай 52 <кв. 7>"}})
	must(err)
	ids["plain"] = plain.ID

	c, err := svc.PBXOffered(ctx, pbx, dispatch.PBXOffer{PBXCallID: "1732555440.17", CallerNumber: "+77012223344", Line: "102-1", Queue: "102", At: at})
	must(err)
	_, err = svc.AttachAML(ctx, pbx, c.ID, dispatch.AMLLocation{Location: dispatch.Location{Lat: 43.23812, Lon: 76.94512, Accuracy: 14}, Confidence: 68, Method: "GNSS", LocationTime: at, Transport: "https"})
	must(err)
	_, err = svc.PBXAnswered(ctx, pbx, "1732555440.17", "op.ainur", at.Add(4*time.Second))
	must(err)
	c, err = svc.UseAML(ctx, ct, c.ID)
	must(err)
	withCalls, err := svc.CreateIncident(ctx, ct, dispatch.NewIncident{Type: "ASSAULT", Location: *c.Location, CallIDs: []string{c.ID}, Narrative: "Two men beating a third <at the mall>"})
	must(err)
	_, err = svc.AddNote(ctx, ct, withCalls.ID, "Caller says one has a knife & a bat")
	must(err)
	ids["calls"] = withCalls.ID

	_, err = svc.RegisterUnit(ctx, sup, dispatch.UnitSpec{ID: "P101", CallSign: "Беркут-101", Agency: "police", Kind: "car", Capabilities: []string{"armed"}})
	must(err)
	_, err = svc.SetShift(ctx, sup, "P101", true)
	must(err)
	_, err = svc.RegisterUnit(ctx, sup, dispatch.UnitSpec{ID: "NG7", CallSign: "Сұңқар-7", Agency: "national_guard", Kind: "foot"})
	must(err)
	_, err = svc.SetShift(ctx, sup, "NG7", true)
	must(err)
	_, err = svc.Assign(ctx, sup, withCalls.ID, dispatch.AssignRequest{UnitIDs: []string{"P101", "NG7"}})
	must(err)
	_, err = svc.SetUnitStatus(ctx, dispatch.Meta{Actor: dispatch.Actor{ID: "device:tablet-1", UnitID: "P101"}}, "P101", dispatch.UnitStatusRequest{Status: dispatch.UnitEnRoute})
	must(err)
	_, err = svc.Clear(ctx, sup, withCalls.ID, "NG7", "not needed")
	must(err)
	ids["units"] = withCalls.ID

	rep, err := svc.ReceiveReport(ctx, dispatch.Meta{Actor: dispatch.Actor{ID: "citizen"}}, dispatch.NewReport{Channel: "telegram", Text: "Горит мусорный бак", Category: "fire",
		Queue: "102", Language: "ru", Location: &dispatch.Location{Lat: 43.24, Lon: 76.91, Source: "app"}, StatusHash: strings.Repeat("ab", 32),
		Media: []dispatch.MediaRef{{SHA256: strings.Repeat("0f", 32), Size: 23011, MIME: "image/jpeg", Kind: "image"}}})
	must(err)
	fromReport, err := svc.ReportToIncident(ctx, ct, rep.ID, dispatch.ReportIncident{Type: "VANDALISM"})
	must(err)
	ids["report"] = fromReport.ID

	dup, err := svc.CreateIncident(ctx, ct, dispatch.NewIncident{Type: "ASSAULT", Location: dispatch.Location{Lat: 43.2395, Lon: 76.9451}})
	must(err)
	_, err = svc.Merge(ctx, ct, withCalls.ID, dispatch.MergeRequest{Kind: "incident", ID: dup.ID, Reason: "same fight"})
	must(err)
	ids["merged"] = dup.ID

	undone, err := svc.CreateIncident(ctx, ct, dispatch.NewIncident{Type: "THEFT", Location: dispatch.Location{Lat: 43.2, Lon: 76.9}})
	must(err)
	in, err := svc.Merge(ctx, ct, plain.ID, dispatch.MergeRequest{Kind: "incident", ID: undone.ID})
	must(err)
	_, err = svc.UndoMerge(ctx, sup, plain.ID, in.Merges[0].ID, "different events")
	must(err)
	ids["undone"] = undone.ID
	_, err = svc.SetIncidentStatus(ctx, sup, undone.ID, dispatch.StatusChange{Status: dispatch.IncidentClosed, Disposition: "REPORT"})
	must(err)
	return svc, ids
}

func export(t *testing.T, svc *dispatch.Service, id string) *eido.Document {
	t.Helper()
	var doc *eido.Document
	var err error
	svc.View(func(st *dispatch.State) { doc, err = eido.Build(st, id, eido.Config{Agency: "102.police.kz"}) })
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestExportsValidateAgainstNENASchema validates every export the
// scenario produces against NENA's published schema.
func TestExportsValidateAgainstNENASchema(t *testing.T) {
	sch := compileSchema(t)
	svc, ids := scenario(t)
	all := []string{}
	for _, in := range svc.Incidents(dispatch.IncidentFilter{}) {
		all = append(all, in.ID)
	}
	if len(all) != 5 {
		t.Fatalf("scenario made %d incidents", len(all))
	}
	for _, id := range all {
		doc := export(t, svc, id)
		if err := validate(sch, doc); err != nil {
			b, _ := json.MarshalIndent(doc, "", " ")
			t.Errorf("export of %s does not validate: %v\n%s", id, err, b)
		}
	}
	// What each export must carry.
	calls := export(t, svc, ids["calls"])
	if len(calls.Calls) != 1 || calls.Calls[0].State != "callAnswered" || calls.Calls[0].CallBack == nil || len(calls.Calls[0].Locations) != 2 ||
		len(calls.Resources) != 2 || len(calls.Dispatches) != 2 || len(calls.Notes) != 2 || len(calls.Merges) != 1 || calls.Merges[0].Direction != "REPLACING" {
		t.Fatalf("incident with calls, units, notes and a merge: %+v", calls)
	}
	if !strings.Contains(calls.Notes[0].Text, "&amp;") {
		t.Fatalf("notes are HTML5 text; & must be escaped: %q", calls.Notes[0].Text)
	}
	merged := export(t, svc, ids["merged"])
	if len(merged.Merges) != 1 || merged.Merges[0].Direction != "REPLACED" || merged.Incident.Dispositions[0].Code != "DUPLICATE" {
		t.Fatalf("merged incident: %+v", merged)
	}
	plain := export(t, svc, ids["plain"])
	if len(plain.Links) != 1 || plain.Links[0].Direction != "UNLINK" || len(plain.Merges) != 0 {
		t.Fatalf("undone merge: %+v", plain)
	}
	rep := export(t, svc, ids["report"])
	if len(rep.Additional) != 2 || !strings.HasPrefix(rep.Additional[1].ByURL, "/api/v1/media/") {
		t.Fatalf("report and media: %+v", rep.Additional)
	}
	if !strings.Contains(plain.Locations[0].ByValue, "<gml:pos>43.250000 76.920000</gml:pos>") || plain.Locations[0].Description != "Абай 52 &lt;кв. 7&gt;" {
		t.Fatalf("PIDF-LO: %+v", plain.Locations[0])
	}
}

// TestSchemaCatchesBrokenExports shows the validation can fail: the same
// checks reject an export with a required field missing or a bad code.
func TestSchemaCatchesBrokenExports(t *testing.T) {
	sch := compileSchema(t)
	svc, ids := scenario(t)
	for name, breakIt := range map[string]func(m map[string]any){
		"no eidoVersion":     func(m map[string]any) { delete(m, "eidoVersion") },
		"wrong eidoVersion":  func(m map[string]any) { m["eidoVersion"] = "2.0" },
		"no agency":          func(m map[string]any) { delete(m, "agencyComponent") },
		"bad call direction": func(m map[string]any) { m["callComponent"].([]any)[0].(map[string]any)["direction"] = "sideways" },
		"bad timestamp":      func(m map[string]any) { m["lastUpdateTimeStamp"] = "yesterday" },
		"merge without code": func(m map[string]any) {
			delete(m["mergeComponent"].([]any)[0].(map[string]any), "incidentMergeDirectionCode")
		},
		"unit without status": func(m map[string]any) {
			delete(m["emergencyResourceComponent"].([]any)[0].(map[string]any), "primaryUnitStatusRegistryText")
		},
	} {
		b, _ := json.Marshal(export(t, svc, ids["calls"]))
		var m map[string]any
		json.Unmarshal(b, &m)
		breakIt(m)
		if err := validate(sch, m); err == nil {
			t.Errorf("%s: the schema accepted a broken export", name)
		}
	}
	// NENA's own sample validates with the converted schema.
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(schemaPath(t)), "sample-call-transfer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sample any
	json.Unmarshal(raw, &sample)
	if err := validate(sch, sample); err != nil {
		t.Errorf("NENA's sample does not validate against the converted schema: %v", err)
	}
	svc.View(func(st *dispatch.State) {
		if _, err := eido.Build(st, "no-such-incident", eido.Config{}); !errors.Is(err, dispatch.ErrNotFound) {
			t.Errorf("unknown incident: %v", err)
		}
	})
}
