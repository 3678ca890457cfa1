package web

import (
	"net/http"
	"slices"

	"github.com/kuzet/kuzet/internal/auth"
)

// route is one endpoint: who may call it and what handles it.
type route struct {
	method, pattern string
	public          bool
	roles           []auth.Role
	handler         http.HandlerFunc
}

// Role groups, named for who they are in a 102 centre.
var (
	intake      = []auth.Role{auth.RoleCallTaker, auth.RoleDispatcher, auth.RoleSupervisor}
	dispatchers = []auth.Role{auth.RoleDispatcher, auth.RoleSupervisor}
	staff       = []auth.Role{auth.RoleCallTaker, auth.RoleDispatcher, auth.RoleSupervisor, auth.RoleViewer}
	field       = []auth.Role{auth.RoleOfficer, auth.RoleDevice}
	management  = []auth.Role{auth.RoleSupervisor, auth.RoleAdmin}
	everyone    = []auth.Role{auth.RoleCallTaker, auth.RoleDispatcher, auth.RoleSupervisor, auth.RoleViewer, auth.RoleOfficer, auth.RoleAdmin, auth.RoleDevice}
	// signedIn adds the gateway service accounts, which see nothing of
	// the dispatch picture but may check and end their own session.
	signedIn = append(slices.Clone(everyone), auth.RoleGateway)
)

func roles(groups ...[]auth.Role) []auth.Role {
	var out []auth.Role
	seen := map[auth.Role]bool{}
	for _, g := range groups {
		for _, r := range g {
			if !seen[r] {
				seen[r] = true
				out = append(out, r)
			}
		}
	}
	return out
}

// apiRoutes is the REST API. Officers and devices are further limited to
// their own unit and its incidents inside the handlers and the service.
func (s *Server) apiRoutes() []route {
	return []route{
		{method: "POST", pattern: "/api/v1/sessions", public: true, handler: s.signIn},
		{method: "DELETE", pattern: "/api/v1/sessions/current", roles: signedIn, handler: s.signOut},
		{method: "GET", pattern: "/api/v1/me", roles: signedIn, handler: s.me},
		{method: "GET", pattern: "/api/v1/catalogue", roles: everyone, handler: s.catalogue},

		{method: "GET", pattern: "/api/v1/calls", roles: staff, handler: s.listCalls},
		{method: "POST", pattern: "/api/v1/calls", roles: intake, handler: s.createCall},
		{method: "GET", pattern: "/api/v1/calls/{id}", roles: staff, handler: s.getCall},
		{method: "POST", pattern: "/api/v1/calls/{id}/answer", roles: intake, handler: s.answerCall},
		{method: "POST", pattern: "/api/v1/calls/{id}/end", roles: intake, handler: s.endCall},
		{method: "PUT", pattern: "/api/v1/calls/{id}/location", roles: intake, handler: s.locateCall},

		{method: "GET", pattern: "/api/v1/incidents", roles: roles(staff, field), handler: s.listIncidents},
		{method: "POST", pattern: "/api/v1/incidents", roles: intake, handler: s.createIncident},
		{method: "GET", pattern: "/api/v1/incidents/{id}", roles: roles(staff, field), handler: s.getIncident},
		{method: "PATCH", pattern: "/api/v1/incidents/{id}", roles: intake, handler: s.updateIncident},
		{method: "POST", pattern: "/api/v1/incidents/{id}/notes", roles: roles(intake, field), handler: s.addNote},
		{method: "POST", pattern: "/api/v1/incidents/{id}/status", roles: dispatchers, handler: s.incidentStatus},
		{method: "POST", pattern: "/api/v1/incidents/{id}/calls", roles: intake, handler: s.linkCall},
		{method: "POST", pattern: "/api/v1/incidents/{id}/assignments", roles: dispatchers, handler: s.assign},
		{method: "POST", pattern: "/api/v1/incidents/{id}/assignments/{unit}/ack", roles: roles(dispatchers, field), handler: s.acknowledge},
		{method: "DELETE", pattern: "/api/v1/incidents/{id}/assignments/{unit}", roles: roles(dispatchers, field), handler: s.clearAssignment},

		{method: "GET", pattern: "/api/v1/units", roles: everyone, handler: s.listUnits},
		{method: "POST", pattern: "/api/v1/units", roles: management, handler: s.registerUnit},
		{method: "GET", pattern: "/api/v1/units/{id}", roles: everyone, handler: s.getUnit},
		{method: "PUT", pattern: "/api/v1/units/{id}", roles: management, handler: s.updateUnit},
		{method: "POST", pattern: "/api/v1/units/{id}/status", roles: roles(dispatchers, field), handler: s.unitStatus},
		{method: "POST", pattern: "/api/v1/units/{id}/shift", roles: roles(dispatchers, field), handler: s.unitShift},
		{method: "POST", pattern: "/api/v1/units/{id}/devices", roles: management, handler: s.addDevice},

		{method: "GET", pattern: "/api/v1/alerts", roles: staff, handler: s.listAlerts},
		{method: "GET", pattern: "/api/v1/users", roles: []auth.Role{auth.RoleAdmin}, handler: s.listUsers},
		{method: "POST", pattern: "/api/v1/users", roles: []auth.Role{auth.RoleAdmin}, handler: s.addUser},

		{method: "GET", pattern: "/api/v1/stream", public: true, handler: s.stream}, // authenticates itself: browsers cannot send headers on WebSocket
	}
}
