package viewer

import (
	_ "embed"
	"net/http"

	"github.com/kuzet/kuzet/registry"
)

// openAPIDoc is the OpenAPI 3.1 description of /api/v1. It is generated from
// the route table by the tests (go test ./viewer -run TestOpenAPI -update),
// which fail when the two drift apart.
//
//go:embed openapi.json
var openAPIDoc []byte

func (a *API) openAPI(w http.ResponseWriter, r *http.Request, _ registry.Principal) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openAPIDoc)
}
