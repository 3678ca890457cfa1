package web

import _ "embed"

// openAPI is the REST API's description, served at /api/v1/openapi.yaml and
// checked against the route table by TestOpenAPIMatchesRoutes.
//
//go:embed openapi.yaml
var openAPI []byte
