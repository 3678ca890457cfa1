// Package eido exports a dispatch incident as a NENA Emergency Incident
// Data Object (NENA-STA-021.1b, JSON form; schema in NENA's openapi.yaml,
// component EmergencyIncidentDataObjectType).
//
// How data moves: Build reads the dispatch projection (under the caller's
// read lock, dispatch.Service.View) and copies the incident, its calls,
// their callers, locations (incident, caller-typed and AML), assigned
// units, notes, linked citizen reports with their media, and merges into
// one Document. Every data component gets a prologue ($id, timestamp,
// owning agency). Nothing is looked up elsewhere, so an export is a pure
// function of the journal.
//
// Merges (§ mergeComponent): the surviving incident lists each incident
// merged into it with direction REPLACING; a merged incident lists the one
// it was merged into with REPLACED. A merge a supervisor undid is exported
// as a linkComponent with direction UNLINK, so the history stays visible.
package eido

import (
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"strings"
	"time"

	"github.com/kuzet/kuzet/dispatch"
)

// ErrNotFound reports an incident id that names no incident.
var ErrNotFound = errors.New("eido: incident not found")

// Config names the centre in the export.
type Config struct {
	Agency string // agency id, e.g. "102.police.kz"
	Issuer string // functional element that builds the EIDO
}

// Ref is an EIDO ReferenceType.
type Ref struct {
	Ref string `json:"$ref"`
}

// Prologue is the common prologue of every data component.
type Prologue struct {
	ID              string `json:"$id"`
	LastUpdate      string `json:"lastUpdateTimeStamp"`
	UpdatedByAgency Ref    `json:"updatedByAgencyReference"`
	UpdatedByAgent  *Ref   `json:"updatedByAgentReference,omitempty"`
}

// Document is EmergencyIncidentDataObjectType.
type Document struct {
	Prologue
	EIDOVersion string           `json:"eidoVersion"`
	Issuer      string           `json:"issuingElementIdentification"`
	Merges      []Merge          `json:"mergeComponent,omitempty"`
	Links       []Link           `json:"linkComponent,omitempty"`
	Incident    *Incident        `json:"incidentComponent,omitempty"`
	Calls       []Call           `json:"callComponent,omitempty"`
	Callbacks   []Callback       `json:"callbackComponent,omitempty"`
	Dispatches  []Dispatch       `json:"dispatchComponent,omitempty"`
	Notes       []Notes          `json:"notesComponent,omitempty"`
	Resources   []Resource       `json:"emergencyResourceComponent,omitempty"`
	Agencies    []Agency         `json:"agencyComponent"`
	Agents      []Agent          `json:"agentComponent,omitempty"`
	Additional  []AdditionalData `json:"additionalDataComponent,omitempty"`
	Locations   []Location       `json:"locationComponent,omitempty"`
}

// Merge is MergeInformationType.
type Merge struct {
	Prologue
	TrackingID string `json:"incidentTrackingIdentifier"`
	Direction  string `json:"incidentMergeDirectionCode"` // REPLACING, REPLACED
}

// Link is LinkInformationType.
type Link struct {
	Prologue
	TrackingID string `json:"incidentTrackingIdentifier"`
	Reason     string `json:"transactionReasonText,omitempty"`
	Direction  string `json:"linkDirectionCode"` // PARENT, CHILD, RELATED, UNLINK
}

// Incident is IncidentInformationType.
type Incident struct {
	Prologue
	TypeInternalCode  string        `json:"incidentTypeInternalCode"`
	TypeRegistryText  string        `json:"incidentTypeCommonRegistryText"`
	StatusInternal    []string      `json:"incidentStatusInternalText"`
	StatusRegistry    []string      `json:"incidentStatusCommonRegistryText"`
	InternalID        string        `json:"internalIncidentId"`
	Agents            []Ref         `json:"agentReference,omitempty"`
	Locations         []Ref         `json:"locationReference,omitempty"`
	PriorityInternal  string        `json:"incidentPriorityInternalText"`
	PriorityNumber    int           `json:"incidentCommonPriorityNumber"`
	BeatOrDispatchGrp string        `json:"beatOrDispatchGroupText,omitempty"`
	Dispositions      []Disposition `json:"dispositionComponent,omitempty"`
	NotesReference    []Ref         `json:"notesReference,omitempty"`
	DocumentIDs       []string      `json:"documentIdentification,omitempty"`
}

// Disposition is DispositionType.
type Disposition struct {
	Prologue
	Code    string `json:"dispositionCommonRegistryCode"`
	Primary bool   `json:"dispositionPrimaryIndicator"`
}

// Call is CallInformationType.
type Call struct {
	Prologue
	Queue        string   `json:"queueIdentifier,omitempty"`
	PrimaryType  string   `json:"standardPrimaryCallType"`
	LocalType    string   `json:"localCallType,omitempty"`
	Direction    string   `json:"direction"`
	Start        string   `json:"callStartTimestamp"`
	Answer       string   `json:"answerDate,omitempty"`
	State        string   `json:"callStateRegistryText"`
	Agents       []Ref    `json:"agentReference,omitempty"`
	CallBack     *Ref     `json:"callBackReference,omitempty"`
	Locations    []Ref    `json:"locationReference,omitempty"`
	Agencies     []Ref    `json:"agencyReference,omitempty"`
	RelatedCalls []string `json:"relatedCallIdentifier,omitempty"`
}

// Callback is CallbackType.
type Callback struct {
	Prologue
	URIs []string `json:"callBackInformationUri"`
}

// Dispatch is DispatchInformationType: one assignment of a unit.
type Dispatch struct {
	Prologue
	Agency    *Ref  `json:"agencyReference,omitempty"`
	Agent     *Ref  `json:"agentReference,omitempty"`
	Resources []Ref `json:"emergencyResourceReference"`
}

// Notes is NotesType.
type Notes struct {
	Prologue
	Text  string `json:"notesActionComments"`
	Agent *Ref   `json:"agentReference,omitempty"`
}

// Resource is EmergencyResourceType: a unit.
type Resource struct {
	Prologue
	TypeRegistry     string   `json:"emergencyResourceTypeCommonRegistryText"`
	TypeInternal     string   `json:"emergencyResourceTypeInternalText,omitempty"`
	Attributes       []string `json:"resourceAttributeRegistryText"`
	AttributesLocal  []string `json:"resourceAttributeInternalText,omitempty"`
	Name             string   `json:"emergencyResourceName"`
	PrimaryStatus    string   `json:"primaryUnitStatusRegistryText"`
	SecondaryStatus  []string `json:"secondaryUnitStatusRegistryText"`
	StatusInternal   []string `json:"unitStatusInternal,omitempty"`
	Agents           []Ref    `json:"agentReference"`
	ActiveOnIncident string   `json:"activeOnIncidentId,omitempty"`
}

// Agency is AgencyType.
type Agency struct {
	Prologue
	Roles  []string `json:"agencyRoleDescriptionRegistryText"`
	Types  []string `json:"agencyType"`
	Owning bool     `json:"incidentOwningAgencyIndicator"`
}

// Agent is AgentType.
type Agent struct {
	Prologue
	Roles  []string `json:"agentRoleRegistryText"`
	Agency Ref      `json:"agencyReference"`
}

// AdditionalData is AdditionalDataType: a citizen report and its media.
type AdditionalData struct {
	Prologue
	ByValue string `json:"additionalDataByValue,omitempty"`
	ByURL   string `json:"additionalDataByReferenceUrl,omitempty"`
	Purpose string `json:"urlPurpose,omitempty"`
}

// Location is LocationInformationType with the point as a PIDF-LO.
type Location struct {
	Prologue
	Type        string `json:"locationTypeDescriptionRegistryText"`
	ByValue     string `json:"locationByValue"`
	Description string `json:"locationDescriptionText,omitempty"`
}

func ts(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

type builder struct {
	cfg    Config
	st     *dispatch.State
	doc    *Document
	agents map[string]bool
}

func (b *builder) prologue(id string, t time.Time, agent string) Prologue {
	p := Prologue{ID: id, LastUpdate: ts(t), UpdatedByAgency: Ref{b.cfg.Agency}}
	if agent != "" {
		p.UpdatedByAgent = &Ref{b.agent(agent, t)}
	}
	return p
}

// agent adds an agent component once and returns its id.
func (b *builder) agent(actor string, t time.Time) string {
	id := strings.TrimPrefix(strings.TrimPrefix(actor, "user:"), "device:") + "@" + b.cfg.Agency
	if !b.agents[id] {
		b.agents[id] = true
		role := "Call Taking"
		switch {
		case actor == "system" || actor == "pbx" || actor == "aml" || actor == "citizen":
			role = "Automated System"
		case strings.HasPrefix(actor, "device:"):
			role = "Responder"
		}
		b.doc.Agents = append(b.doc.Agents, Agent{Prologue: Prologue{ID: id, LastUpdate: ts(t), UpdatedByAgency: Ref{b.cfg.Agency}},
			Roles: []string{role}, Agency: Ref{b.cfg.Agency}})
	}
	return id
}

func (b *builder) urn(kind, id string) string {
	return "urn:emergency:uid:" + kind + ":" + id + ":" + b.cfg.Agency
}

// location adds a location component and returns its reference.
func (b *builder) location(id, typ string, l dispatch.Location, t time.Time) Ref {
	method := map[string]string{"aml": "Handset", "gps": "GPS", "app": "Handset", "geocoder": "Derived", "operator": "Manual"}[l.Source]
	if method == "" {
		method = "Manual"
	}
	var desc strings.Builder
	xml.EscapeText(&desc, []byte(l.Address))
	pidf := fmt.Sprintf(`<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" xmlns:gml="http://www.opengis.net/gml" xmlns:gs="http://www.opengis.net/pidflo/1.0" entity="pres:%s"><tuple id="%s"><status><gp:geopriv><gp:location-info>`, id, "loc")
	if l.Accuracy > 0 {
		pidf += fmt.Sprintf(`<gs:Circle srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>%.6f %.6f</gml:pos><gs:radius uom="urn:ogc:def:uom:EPSG::9001">%.0f</gs:radius></gs:Circle>`, l.Lat, l.Lon, l.Accuracy)
	} else {
		pidf += fmt.Sprintf(`<gml:Point srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>%.6f %.6f</gml:pos></gml:Point>`, l.Lat, l.Lon)
	}
	pidf += fmt.Sprintf(`</gp:location-info><gp:usage-rules/><gp:method>%s</gp:method></gp:geopriv></status><timestamp>%s</timestamp></tuple></presence>`, method, ts(t))
	b.doc.Locations = append(b.doc.Locations, Location{Prologue: b.prologue(id, t, ""), Type: typ, ByValue: pidf, Description: desc.String()})
	return Ref{id}
}

var statusRegistry = map[dispatch.IncidentStatus]string{
	dispatch.IncidentNew: "Created", dispatch.IncidentQueued: "Queued", dispatch.IncidentDispatched: "Dispatched",
	dispatch.IncidentEnRoute: "Enroute", dispatch.IncidentOnScene: "OnScene", dispatch.IncidentClosed: "Closed",
}

var unitRegistry = map[dispatch.UnitStatus]string{
	dispatch.UnitAvailable: "Available", dispatch.UnitDispatched: "Dispatched", dispatch.UnitEnRoute: "Enroute",
	dispatch.UnitOnScene: "OnScene", dispatch.UnitTransporting: "Transporting", dispatch.UnitAtFacility: "AtFacility",
	dispatch.UnitOutOfService: "OutOfService", dispatch.UnitOffDuty: "OffDuty", dispatch.UnitEmergency: "Emergency",
}

// Build exports incident id (or its number) from st. The caller holds the
// projection's read lock (dispatch.Service.View).
func Build(st *dispatch.State, id string, cfg Config) (*Document, error) {
	if cfg.Agency == "" {
		cfg.Agency = "102.police.kz"
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "kuzet." + cfg.Agency
	}
	in := st.Incidents[id]
	if in == nil {
		in = st.IncidentByNumber(id)
	}
	if in == nil {
		return nil, fmt.Errorf("incident %s: %w (%w)", id, dispatch.ErrNotFound, ErrNotFound)
	}
	b := &builder{cfg: cfg, st: st, agents: map[string]bool{}}
	incURN := b.urn("incidentid", in.ID)
	b.doc = &Document{EIDOVersion: "1.0", Issuer: cfg.Issuer}
	b.doc.Prologue = b.prologue(incURN, in.UpdatedAt, in.CreatedBy)
	b.doc.Agencies = []Agency{{Prologue: Prologue{ID: cfg.Agency, LastUpdate: ts(in.CreatedAt), UpdatedByAgency: Ref{cfg.Agency}},
		Roles: []string{"CallReceiving", "Dispatching"}, Types: []string{"police"}, Owning: true}}

	inc := &Incident{
		Prologue:         b.prologue(b.urn("incidentinfo", in.ID), in.UpdatedAt, in.CreatedBy),
		TypeInternalCode: in.Type, TypeRegistryText: in.Type,
		StatusInternal: []string{string(in.Status)}, StatusRegistry: []string{statusRegistry[in.Status]},
		InternalID: in.Number, PriorityInternal: fmt.Sprintf("P%d", in.Priority), PriorityNumber: in.Priority,
		BeatOrDispatchGrp: in.Location.Sector,
	}
	inc.Agents = []Ref{{b.agent(in.CreatedBy, in.CreatedAt)}}
	inc.Locations = []Ref{b.location(b.urn("locationid", in.ID), "Incident", in.Location, in.UpdatedAt)}
	if in.Status == dispatch.IncidentClosed && in.Disposition != "" {
		at := in.UpdatedAt
		if in.ClosedAt != nil {
			at = *in.ClosedAt
		}
		inc.Dispositions = []Disposition{{Prologue: b.prologue(b.urn("dispositionid", in.ID), at, ""), Code: in.Disposition, Primary: true}}
	}

	// Calls, their callers and locations.
	for _, cid := range in.CallIDs {
		c := st.Calls[cid]
		if c == nil {
			continue
		}
		call := Call{Prologue: b.prologue(b.urn("callid", c.ID), c.ReceivedAt, c.Operator), Direction: "incoming",
			Start: ts(c.ReceivedAt), State: "callOffered", PrimaryType: "emergency", Queue: c.Queue, LocalType: string(c.Channel),
			Agencies: []Ref{{cfg.Agency}}}
		if c.Queue == dispatch.Queue1402 {
			call.PrimaryType = "nonEmergency"
		}
		if c.AnsweredAt != nil {
			call.Answer, call.State = ts(*c.AnsweredAt), "callAnswered"
			if c.Operator != "" {
				call.Agents = []Ref{{b.agent(c.Operator, *c.AnsweredAt)}}
			}
		}
		if c.EndedAt != nil {
			call.State = "callEnded"
		}
		if c.PBXCallID != "" {
			call.RelatedCalls = []string{"pbx:" + c.PBXCallID}
		}
		if c.CallerNumber != "" {
			cbID := b.urn("callbackid", c.ID)
			b.doc.Callbacks = append(b.doc.Callbacks, Callback{Prologue: b.prologue(cbID, c.ReceivedAt, ""), URIs: []string{"tel:" + c.CallerNumber}})
			call.CallBack = &Ref{cbID}
		}
		if c.Location != nil {
			call.Locations = append(call.Locations, b.location(b.urn("locationid", "call-"+c.ID), "Caller", *c.Location, c.ReceivedAt))
		}
		if c.AML != nil {
			call.Locations = append(call.Locations, b.location(b.urn("locationid", "aml-"+c.ID), "Device", c.AML.Location, c.AML.ReceivedAt))
		}
		b.doc.Calls = append(b.doc.Calls, call)
	}

	// Units and their assignments.
	seenUnit := map[string]bool{}
	for i, a := range in.Assignments {
		ref := b.urn("resourceid", a.UnitID)
		b.doc.Dispatches = append(b.doc.Dispatches, Dispatch{Prologue: b.prologue(b.urn("dispatchid", fmt.Sprintf("%s-%d", in.ID, i+1)), a.AssignedAt, a.AssignedBy),
			Agency: &Ref{cfg.Agency}, Agent: &Ref{b.agent(a.AssignedBy, a.AssignedAt)}, Resources: []Ref{{ref}}})
		if seenUnit[a.UnitID] {
			continue
		}
		seenUnit[a.UnitID] = true
		r := Resource{Prologue: b.prologue(ref, a.AssignedAt, ""), TypeRegistry: "Law Enforcement", Attributes: []string{},
			SecondaryStatus: []string{}, Agents: []Ref{}, Name: a.UnitID, PrimaryStatus: "Unknown"}
		if u := st.Units[a.UnitID]; u != nil {
			r.Name, r.TypeInternal, r.AttributesLocal = u.CallSign, u.Agency+"/"+u.Kind, u.Capabilities
			r.StatusInternal = []string{string(u.Status)}
			r.PrimaryStatus = unitRegistry[u.Status]
			r.Prologue.LastUpdate = ts(u.StatusAt)
			if u.IncidentID != "" {
				r.ActiveOnIncident = b.urn("incidentid", u.IncidentID)
			}
		}
		if a.ClearedAt != nil {
			r.SecondaryStatus = []string{"Cleared"}
		}
		b.doc.Resources = append(b.doc.Resources, r)
	}

	// Notes, as HTML5 text.
	for _, n := range in.Notes {
		nid := b.urn("notesid", n.ID)
		b.doc.Notes = append(b.doc.Notes, Notes{Prologue: b.prologue(nid, n.Time, n.Author), Text: html.EscapeString(n.Text), Agent: &Ref{b.agent(n.Author, n.Time)}})
		inc.NotesReference = append(inc.NotesReference, Ref{nid})
	}
	if in.Narrative != "" {
		nid := b.urn("notesid", "narrative-"+in.ID)
		b.doc.Notes = append(b.doc.Notes, Notes{Prologue: b.prologue(nid, in.UpdatedAt, in.CreatedBy), Text: html.EscapeString(in.Narrative)})
		inc.NotesReference = append(inc.NotesReference, Ref{nid})
	}

	// Citizen reports and their media.
	for _, rid := range in.ReportIDs {
		rp := st.Reports[rid]
		if rp == nil {
			continue
		}
		b.doc.Additional = append(b.doc.Additional, AdditionalData{Prologue: b.prologue(b.urn("additionaldataid", rp.ID), rp.ReceivedAt, ""),
			ByValue: html.EscapeString(rp.Text), Purpose: "citizen-report:" + rp.Channel})
		for _, m := range rp.Media {
			b.doc.Additional = append(b.doc.Additional, AdditionalData{Prologue: b.prologue(b.urn("additionaldataid", m.SHA256), rp.ReceivedAt, ""),
				ByURL: "/api/v1/media/" + m.SHA256, Purpose: m.Kind + ";" + m.MIME})
		}
		if rp.Location != nil {
			inc.Locations = append(inc.Locations, b.location(b.urn("locationid", "report-"+rp.ID), "Reported", *rp.Location, rp.ReceivedAt))
		}
		inc.DocumentIDs = append(inc.DocumentIDs, "report:"+rp.ID)
	}

	// Merges.
	for _, m := range in.Merges {
		if m.Kind != dispatch.MergeIncident {
			continue
		}
		if m.Undone != nil {
			b.doc.Links = append(b.doc.Links, Link{Prologue: b.prologue(b.urn("linkid", m.ID), *m.Undone, m.UndoneBy),
				TrackingID: b.urn("incidentid", m.SourceID), Direction: "UNLINK", Reason: "merge undone"})
			continue
		}
		b.doc.Merges = append(b.doc.Merges, Merge{Prologue: b.prologue(b.urn("mergeid", m.ID), m.At, m.By),
			TrackingID: b.urn("incidentid", m.SourceID), Direction: "REPLACING"})
	}
	if in.MergedInto != "" {
		if into := st.Incidents[in.MergedInto]; into != nil {
			for _, m := range into.Merges {
				if m.SourceID == in.ID && m.Undone == nil {
					b.doc.Merges = append(b.doc.Merges, Merge{Prologue: b.prologue(b.urn("mergeid", m.ID+"-replaced"), m.At, m.By),
						TrackingID: b.urn("incidentid", into.ID), Direction: "REPLACED"})
				}
			}
		}
	}
	b.doc.Incident = inc
	return b.doc, nil
}
