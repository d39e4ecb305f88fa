package viewer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kuzet/kuzet/registry"
)

// apiProblem is an RFC 9457 problem details object.
type apiProblem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Errors lists the rejected fields of a validation problem.
	Errors []registry.FieldError `json:"errors,omitempty"`
}

// problemType is the type URI of a problem code.
func problemType(code string) string { return "urn:kuzet:problem:" + code }

func (a *API) problem(w http.ResponseWriter, r *http.Request, status int, code, detail string, fields ...registry.FieldError) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(apiProblem{Type: problemType(code), Title: http.StatusText(status), Status: status,
		Detail: detail, Instance: r.URL.Path, Errors: fields})
}

// internal answers 500 (or 503 for an unavailable audit log or hold) for a
// failure that is not the caller's fault, and logs it.
func (a *API) internal(w http.ResponseWriter, r *http.Request, what string, err error) {
	a.log.Error("api: "+what, "method", r.Method, "path", r.URL.Path, "err", err)
	a.problem(w, r, http.StatusInternalServerError, "internal", what+" failed")
}

// fail answers err from the registry with the matching problem.
func (a *API) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	var ve *registry.ValidationError
	var te *registry.ThrottleError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ve):
		a.problem(w, r, http.StatusUnprocessableEntity, "validation", "the input was not accepted", ve.Fields...)
	case errors.Is(err, registry.ErrNotFound):
		a.problem(w, r, http.StatusNotFound, "not-found", err.Error())
	case errors.Is(err, registry.ErrConflict):
		a.problem(w, r, http.StatusConflict, "conflict", what+": a record with that id or name already exists")
	case errors.Is(err, registry.ErrForbidden):
		a.problem(w, r, http.StatusForbidden, "forbidden", err.Error())
	case errors.As(err, &te):
		w.Header().Set("Retry-After", strconv.Itoa(int(te.RetryAfter.Seconds()+0.999)))
		a.problem(w, r, http.StatusTooManyRequests, "throttled", te.Error())
	case errors.Is(err, registry.ErrBadCredentials):
		a.problem(w, r, http.StatusUnauthorized, "unauthenticated", "invalid credentials")
	case errors.Is(err, registry.ErrAudit):
		a.log.Error("api: audit log unavailable; action refused", "what", what, "err", err)
		a.problem(w, r, http.StatusServiceUnavailable, "audit-unavailable", "the audit log cannot be written, so the action was refused")
	case errors.Is(err, registry.ErrHold):
		a.log.Error("api: legal hold failed; change refused", "what", what, "err", err)
		a.problem(w, r, http.StatusServiceUnavailable, "hold-unavailable", "the legal hold could not be placed or released, so the change was refused; try again")
	case errors.As(err, &mbe):
		a.problem(w, r, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("the body exceeds %d bytes", mbe.Limit))
	default:
		a.internal(w, r, what, err)
	}
}

func (a *API) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// apiBadRequest is a request the API refuses before looking at any record:
// malformed JSON, a wrong type, an oversize body, a bad parameter.
type apiBadRequest struct {
	status int
	code   string
	detail string
	field  string
}

func (e *apiBadRequest) Error() string { return e.detail }

func badParam(field, format string, a ...any) *apiBadRequest {
	return &apiBadRequest{status: http.StatusBadRequest, code: "bad-parameter", detail: fmt.Sprintf(format, a...), field: field}
}

func (a *API) refuse(w http.ResponseWriter, r *http.Request, err error) {
	var br *apiBadRequest
	if !errors.As(err, &br) {
		a.fail(w, r, "request", err)
		return
	}
	var fields []registry.FieldError
	if br.field != "" {
		fields = []registry.FieldError{{Field: br.field, Message: br.detail}}
	}
	a.problem(w, r, br.status, br.code, br.detail, fields...)
}

// readBody reads r's body, which must be declared application/json.
func readBody(r *http.Request) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return nil, &apiBadRequest{status: http.StatusUnsupportedMediaType, code: "unsupported-media-type",
			detail: "the body must be application/json"}
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &apiBadRequest{status: http.StatusRequestEntityTooLarge, code: "too-large",
				detail: fmt.Sprintf("the body exceeds %d bytes", mbe.Limit)}
		}
		return nil, &apiBadRequest{status: http.StatusBadRequest, code: "bad-body", detail: "the body could not be read"}
	}
	return b, nil
}

// decodeBody reads r's JSON body into v (see readBody and decodeJSON).
func decodeBody(r *http.Request, v any) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	return decodeJSON(b, v)
}

// decodeJSON decodes exactly one JSON object into v: unknown fields, a
// wrong type, trailing data or invalid UTF-8 are refused.
func decodeJSON(b []byte, v any) error {
	if !utf8.Valid(b) {
		return &apiBadRequest{status: http.StatusBadRequest, code: "malformed-json", detail: "the body is not valid UTF-8"}
	}
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return &apiBadRequest{status: http.StatusBadRequest, code: "malformed-json", detail: "the body must be a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		var pe *time.ParseError
		switch {
		case errors.As(err, &se):
			return &apiBadRequest{status: http.StatusBadRequest, code: "malformed-json", detail: fmt.Sprintf("malformed JSON at byte %d", se.Offset)}
		case errors.As(err, &te):
			field := te.Field
			return &apiBadRequest{status: http.StatusBadRequest, code: "wrong-type",
				detail: fmt.Sprintf("%s must be %s, not %s", orWhole(field), jsonKind(te.Type.Kind().String()), te.Value), field: field}
		case errors.As(err, &pe):
			return &apiBadRequest{status: http.StatusBadRequest, code: "wrong-type", detail: "times must be RFC 3339, like 2025-03-10T12:00:00Z"}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return &apiBadRequest{status: http.StatusBadRequest, code: "unknown-field", detail: "unknown field " + name, field: name}
		case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			return &apiBadRequest{status: http.StatusBadRequest, code: "malformed-json", detail: "the JSON ends early"}
		default:
			return &apiBadRequest{status: http.StatusBadRequest, code: "malformed-json", detail: "the body is not acceptable JSON: " + err.Error()}
		}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &apiBadRequest{status: http.StatusBadRequest, code: "malformed-json", detail: "data after the JSON object"}
	}
	return nil
}

func orWhole(field string) string {
	if field == "" {
		return "the body"
	}
	return field
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	}
	if strings.HasPrefix(goKind, "int") || strings.HasPrefix(goKind, "uint") {
		return "an integer"
	}
	if strings.HasPrefix(goKind, "float") {
		return "a number"
	}
	return goKind
}

// Query and path parameters.

func pathInt(r *http.Request, name string) (int64, error) {
	s := r.PathValue(name)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, badParam(name, "%s must be a positive integer", name)
	}
	return n, nil
}

func pathCode(r *http.Request, name string) (string, error) {
	s := r.PathValue(name)
	if !registry.ValidFacilityID(s) {
		return "", badParam(name, "%s must be 1-32 lower-case letters, digits or -", name)
	}
	return s, nil
}

func pathCamera(r *http.Request, name string) (string, error) {
	s := r.PathValue(name)
	if !registry.ValidCameraID(s) {
		return "", badParam(name, "%s must be 1-64 letters, digits, - or _", name)
	}
	return s, nil
}

// apiQuery reads query parameters, collecting the first error.
type apiQuery struct {
	r   *http.Request
	err error
}

func (q *apiQuery) fail(err error) {
	if q.err == nil {
		q.err = err
	}
}

func (q *apiQuery) get(name string) (string, bool) {
	vs, ok := q.r.URL.Query()[name]
	if !ok {
		return "", false
	}
	if len(vs) != 1 {
		q.fail(badParam(name, "%s given more than once", name))
		return "", false
	}
	return vs[0], true
}

// oneOf is an optional parameter from a fixed set.
func (q *apiQuery) oneOf(name string, allowed []string) string {
	v, ok := q.get(name)
	if !ok {
		return ""
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	q.fail(badParam(name, "%s must be one of %s", name, strings.Join(allowed, ", ")))
	return ""
}

func (q *apiQuery) code(name string) string {
	v, ok := q.get(name)
	if ok && !registry.ValidFacilityID(v) {
		q.fail(badParam(name, "%s must be 1-32 lower-case letters, digits or -", name))
		return ""
	}
	return v
}

func (q *apiQuery) time(name string, required bool) time.Time {
	v, ok := q.get(name)
	if !ok {
		if required {
			q.fail(badParam(name, "%s is required (RFC 3339)", name))
		}
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || t.Year() < 1970 || t.Year() > 9999 {
		q.fail(badParam(name, "%s must be an RFC 3339 time, like 2025-03-10T12:00:00Z", name))
		return time.Time{}
	}
	return t.UTC()
}

func (q *apiQuery) boolean(name string) *bool {
	v, ok := q.get(name)
	if !ok {
		return nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil || (v != "true" && v != "false") {
		q.fail(badParam(name, "%s must be true or false", name))
		return nil
	}
	return &b
}

func (q *apiQuery) text(name string, maxLen int, required bool) string {
	v, ok := q.get(name)
	if !ok || v == "" {
		if required {
			q.fail(badParam(name, "%s is required", name))
		}
		return ""
	}
	if !utf8.ValidString(v) || strings.ContainsRune(v, 0) || utf8.RuneCountInString(v) > maxLen {
		q.fail(badParam(name, "%s must be UTF-8 text of at most %d characters", name, maxLen))
		return ""
	}
	return v
}

func (q *apiQuery) integer(name string, minV, maxV int64) (int64, bool) {
	v, ok := q.get(name)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < minV || n > maxV {
		q.fail(badParam(name, "%s must be an integer from %d to %d", name, minV, maxV))
		return 0, false
	}
	return n, true
}

// page reads limit (1-500, default 50) and offset (0-1000000).
func (q *apiQuery) page() registry.Page {
	p := registry.Page{Limit: 50}
	if n, ok := q.integer("limit", 1, 500); ok {
		p.Limit = int(n)
	}
	if n, ok := q.integer("offset", 0, 1_000_000); ok {
		p.Offset = int(n)
	}
	return p
}

// pageParams are the query parameters of q.page, for the OpenAPI document.
func pageParams() []apiParam {
	return []apiParam{
		{name: "limit", typ: "integer", desc: "most items returned, 1-500 (default 50)"},
		{name: "offset", typ: "integer", desc: "items skipped (default 0)"},
	}
}

// apiList is one page of a list.
type apiList[T any] struct {
	Items  []T `json:"items"`
	Limit  int `json:"limit"`
	Offset int `json:"offset"`
	// NextOffset is the offset of the next page, null on the last.
	NextOffset *int `json:"next_offset"`
}

func listOf[T any](items []T, p registry.Page) apiList[T] {
	if items == nil {
		items = []T{}
	}
	l := apiList[T]{Items: items, Limit: p.Limit, Offset: p.Offset}
	if len(items) == p.Limit {
		n := p.Offset + p.Limit
		l.NextOffset = &n
	}
	return l
}
