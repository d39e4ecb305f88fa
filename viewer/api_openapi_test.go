package viewer

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/kuzet/kuzet/registry"
)

var updateOpenAPI = flag.Bool("update-openapi", false, "rewrite viewer/openapi.json from the route table")

// openAPIGen builds an OpenAPI 3.1 document from the route table, with
// schemas derived from the Go types by reflection.
type openAPIGen struct {
	schemas map[string]any
	inputs  map[reflect.Type]bool
}

var pathParamRE = regexp.MustCompile(`\{([a-z]+)\}`)

// integerParams are the path parameters that are numeric ids.
var integerParams = []string{"prisoner", "incident", "user", "token"}

func buildOpenAPI(routes []apiRoute) ([]byte, error) {
	g := &openAPIGen{schemas: map[string]any{}, inputs: map[reflect.Type]bool{}}
	for _, rt := range routes {
		if rt.body != nil {
			g.inputs[rt.body] = true
		}
	}
	g.schemas["Problem"] = g.component(typeOf[apiProblem]())
	paths := map[string]map[string]any{}
	for _, rt := range routes {
		op := map[string]any{
			"operationId": strings.ToLower(rt.method) + strings.ReplaceAll(strings.NewReplacer("{", "", "}", "", ".", "_", "-", "_").
				Replace(strings.TrimPrefix(rt.path, "/api/v1")), "/", "_"),
			"summary": rt.summary,
			"tags":    []string{strings.Split(strings.TrimPrefix(rt.path, "/api/v1/"), "/")[0]},
		}
		switch rt.access {
		case accessPublic:
			op["security"] = []any{}
		case accessAction:
			op["x-kuzet-action"] = string(rt.action)
		}
		var params []any
		for _, m := range pathParamRE.FindAllStringSubmatch(rt.path, -1) {
			s := map[string]any{"type": "string"}
			if slices.Contains(integerParams, m[1]) {
				s = map[string]any{"type": "integer", "format": "int64", "minimum": 1}
			}
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": s})
		}
		for _, q := range rt.query {
			s := map[string]any{"type": q.typ}
			if q.typ == "date-time" {
				s = map[string]any{"type": "string", "format": "date-time"}
			}
			params = append(params, map[string]any{"name": q.name, "in": "query", "required": q.required,
				"description": q.desc, "schema": s})
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.body != nil {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"application/json": map[string]any{"schema": g.schema(rt.body)}}}
		}
		ok := map[string]any{"description": http.StatusText(rt.status)}
		switch {
		case rt.resp != nil:
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": g.schema(rt.resp)}}
		case rt.path == "/api/v1/openapi.json":
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}
		}
		problem := map[string]any{"description": "RFC 9457 problem details", "content": map[string]any{
			"application/problem+json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}}
		op["responses"] = map[string]any{itoa(rt.status): ok, "4XX": problem, "5XX": problem}
		if paths[rt.path] == nil {
			paths[rt.path] = map[string]any{}
		}
		paths[rt.path][strings.ToLower(rt.method)] = op
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "Kuzet API", "version": "1",
			"description": "The /api/v1 JSON API of Kuzet. Authenticate with the session cookie from POST /api/v1/login " +
				"(and send the session's CSRF token in X-CSRF-Token with every state-changing request) or with an API token " +
				"(Authorization: Bearer kzt_...). Every route is authorised by the one policy of the registry " +
				"(x-kuzet-action names the action); errors are RFC 9457 problem details. Request bodies are capped at 1 MiB."},
		"paths": paths,
		"components": map[string]any{
			"schemas": g.schemas,
			"securitySchemes": map[string]any{
				"session": map[string]any{"type": "apiKey", "in": "cookie", "name": sessionCookie},
				"bearer":  map[string]any{"type": "http", "scheme": "bearer"},
			},
		},
		"security": []any{map[string]any{"session": []any{}}, map[string]any{"bearer": []any{}}},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func schemaName(t reflect.Type) string {
	name := t.Name()
	if i := strings.Index(name, "["); i >= 0 {
		inner := strings.TrimSuffix(name[i+1:], "]")
		inner = inner[strings.LastIndex(inner, ".")+1:]
		return inner + "List"
	}
	r := []rune(name)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

func (g *openAPIGen) schema(t reflect.Type) map[string]any {
	switch {
	case t == reflect.TypeFor[time.Time]():
		return map[string]any{"type": "string", "format": "date-time"}
	case t == reflect.TypeFor[registry.Role]():
		var roles []string
		for _, r := range registry.Roles() {
			roles = append(roles, string(r))
		}
		return map[string]any{"type": "string", "enum": roles}
	case t == reflect.TypeFor[registry.Action]():
		var acts []string
		for _, a := range registry.Actions() {
			acts = append(acts, string(a))
		}
		return map[string]any{"type": "string", "enum": acts}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.schema(t.Elem())
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Struct:
		name := schemaName(t)
		if _, ok := g.schemas[name]; !ok {
			g.schemas[name] = nil // break cycles
			g.schemas[name] = g.component(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	panic("openapi: unsupported type " + t.String())
}

// component is the object schema of a struct. Response fields are required
// unless omitempty; pointers there are nullable. Input fields are all
// optional (their create/change rules are in the route summaries and the
// validation errors).
func (g *openAPIGen) component(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	input := g.inputs[t]
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("json")
			if sf.Anonymous && tag == "" {
				walk(sf.Type)
				continue
			}
			if !sf.IsExported() || tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if name == "" {
				name = sf.Name
			}
			s := g.schema(sf.Type)
			if sf.Type.Kind() == reflect.Pointer && !input {
				if ty, ok := s["type"].(string); ok {
					s["type"] = []string{ty, "null"}
				} else {
					s = map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
				}
			}
			props[name] = s
			if !input && !strings.Contains(opts, "omitempty") {
				required = append(required, name)
			}
		}
	}
	walk(t)
	out := map[string]any{"type": "object", "properties": props}
	if input {
		out["additionalProperties"] = false
	}
	if len(required) > 0 {
		sort.Strings(required)
		out["required"] = required
	}
	return out
}

// TestOpenAPIDocumentIsGeneratedFromTheRoutes keeps viewer/openapi.json in
// step with the route table: run with -update-openapi to rewrite it.
func TestOpenAPIDocumentIsGeneratedFromTheRoutes(t *testing.T) {
	t.Parallel()
	a := &API{}
	want, err := buildOpenAPI(a.routeTable())
	if err != nil {
		t.Fatal(err)
	}
	if *updateOpenAPI {
		if err := os.WriteFile("openapi.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("rewrote viewer/openapi.json; run the tests again to embed it")
		return
	}
	if !bytes.Equal(openAPIDoc, want) {
		t.Fatal("viewer/openapi.json is out of step with the route table; run go test ./viewer -run TestOpenAPI -update-openapi")
	}
}

// TestOpenAPIDocumentMatchesTheMux checks the served document against what
// the mux actually routes: every documented operation reaches the handler
// registered for exactly that pattern, and every registered route is
// documented.
func TestOpenAPIDocumentMatchesTheMux(t *testing.T) {
	t.Parallel()
	a := &API{cfg: APIConfig{MaxBodyBytes: 1 << 20}}
	a.routes = a.routeTable()
	mux := http.NewServeMux()
	a.Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/openapi.json", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET openapi.json: %d %v", rec.Code, rec.Header())
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			key := strings.ToUpper(method) + " " + path
			documented = append(documented, key)
			var op struct {
				Parameters []struct{ Name, In string } `json:"parameters"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatal(err)
			}
			sample := pathParamRE.ReplaceAllStringFunc(path, func(m string) string {
				name := m[1 : len(m)-1]
				if !slices.ContainsFunc(op.Parameters, func(p struct{ Name, In string }) bool { return p.Name == name && p.In == "path" }) {
					t.Errorf("%s: path parameter %s not documented", key, name)
				}
				if slices.Contains(integerParams, name) {
					return "7"
				}
				return "sample-1"
			})
			_, pattern := mux.Handler(httptest.NewRequest(strings.ToUpper(method), sample, nil))
			if pattern != key {
				t.Errorf("documented %s: the mux routes %s %s to %q", key, strings.ToUpper(method), sample, pattern)
			}
		}
	}
	registered := a.Routes()
	slices.Sort(documented)
	slices.Sort(registered)
	if !slices.Equal(documented, registered) {
		t.Fatalf("documented and registered routes differ:\ndocumented %v\nregistered %v", documented, registered)
	}
}
