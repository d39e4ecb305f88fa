package viewer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kuzet/kuzet/registry"
)

// sqlMeta is a string full of SQL metacharacters.
const sqlMeta = `x'; DROP TABLE users; --" OR 1=1 /*`

// freeText are body fields and query parameters whose value is free text:
// SQL metacharacters there are data, stored or matched verbatim (checked in
// TestAPIFreeTextIsStoredVerbatim), not bad input.
var freeText = []string{"name", "description", "full_name", "risk_assessor", "display_name", "reason", "password",
	"actor", "action", "credentials"}

// apiSnapshot digests every registry table (not the audit log, which bad
// requests may legitimately extend with denials, nor sessions and login
// counters) so that a test can tell whether anything changed.
func apiSnapshot(t *testing.T, f *apiFixture) map[string]string {
	t.Helper()
	ctx := context.Background()
	rows, err := f.pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'
		AND table_name NOT IN ('audit_log', 'audit_chain_head', 'sessions', 'login_failures', 'kuzet_schema_migrations')`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	if len(tables) < 15 {
		t.Fatalf("only %d tables", len(tables))
	}
	out := map[string]string{}
	for _, tbl := range tables {
		q := fmt.Sprintf(`SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM %s t`, tbl)
		if tbl == "api_tokens" { // last_used_at moves as tokens are used
			q = `SELECT count(*) || ':' || coalesce(md5(string_agg((id, user_id, name, token_hash, expires_at, revoked_at)::text, '|' ORDER BY id)), '') FROM api_tokens`
		}
		var d string
		if err := f.pool.QueryRow(ctx, q).Scan(&d); err != nil {
			t.Fatal(err)
		}
		out[tbl] = d
	}
	return out
}

// badCase is one malformed request.
type badCase struct {
	name   string
	path   string
	body   any // nil, string or []byte (sent as is) or a value (sent as JSON)
	ct     string
	anyOK  bool // free text: 2xx acceptable, never 5xx
	status int  // when set, the exact status expected
}

// wrongValues are JSON values of the wrong type for a field of type t.
func wrongValues(t reflect.Type) []any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeFor[time.Time]():
		return []any{12345, "yesterday", "2025-13-45T99:00:00Z", true}
	case t.Kind() == reflect.String:
		return []any{12345, true, []string{"a"}, map[string]int{"a": 1}}
	case t.Kind() == reflect.Bool:
		return []any{"yes", 1}
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		return []any{"12", 1.5, 1e30, -1e30, true}
	case t.Kind() == reflect.Slice:
		el := t.Elem()
		switch el.Kind() {
		case reflect.Int64:
			return []any{"1", map[string]int{}, []string{"1"}, []float64{1.5}, []float64{1e30}}
		default:
			return []any{"a", map[string]int{}, []int{1}}
		}
	case t.Kind() == reflect.Struct:
		return []any{"a", 12, []int{}}
	}
	return []any{[]int{}}
}

// jsonFields lists the JSON fields of a body type with their Go types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = sf.Type
		}
	}
	return out
}

func with(base any, field string, v any) map[string]any {
	b, _ := json.Marshal(base)
	m := map[string]any{}
	_ = json.Unmarshal(b, &m)
	m[field] = v
	return m
}

// TestAPIBadInputGetsProblemsAndChangesNothing sends every route malformed
// JSON, wrong types, oversize bodies, SQL metacharacters in ids, enums,
// path and query parameters: every answer is a 4xx problem (never a 5xx)
// and no registry table changes.
func TestAPIBadInputGetsProblemsAndChangesNothing(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	matrix := authzMatrix()
	type base struct {
		rt   apiRoute
		path string
		body any
	}
	var bases []base
	for _, rt := range f.api.routes {
		row, ok := matrix[rt.method+" "+rt.path]
		if !ok {
			t.Fatalf("route %s %s has no request builder in the matrix", rt.method, rt.path)
		}
		role := registry.RoleAdmin
		if len(row.allow) > 0 {
			role = row.allow[0]
		}
		path, body := row.req(t, f, "f16", role, "all")
		bases = append(bases, base{rt, path, body})
	}
	before := apiSnapshot(t, f)
	var sent int
	for _, b := range bases {
		rt := b.rt
		key := rt.method + " " + rt.path
		p, rawQuery, _ := strings.Cut(b.path, "?")
		var cases []badCase
		if rt.body != nil {
			cases = append(cases,
				badCase{name: "truncated JSON", body: `{"a":`, status: 400},
				badCase{name: "unclosed", body: `{`, status: 400},
				badCase{name: "array", body: `[]`, status: 400},
				badCase{name: "null", body: `null`, status: 400},
				badCase{name: "string", body: `"x"`, status: 400},
				badCase{name: "two objects", body: `{}{}`, status: 400},
				badCase{name: "trailing garbage", body: `{} x`, status: 400},
				badCase{name: "empty", body: ``, status: 400},
				badCase{name: "not UTF-8", body: []byte("{\"name\":\"\xff\xfe\"}"), status: 400},
				badCase{name: "unknown field", body: with(b.body, "no_such_field", 1), status: 400},
				badCase{name: "text/plain", body: b.body, ct: "text/plain", status: 415},
				badCase{name: "form", body: "a=1", ct: "application/x-www-form-urlencoded", status: 415},
				badCase{name: "oversize", body: `{"description":"` + strings.Repeat("a", 1<<20) + `"}`, status: 413},
				badCase{name: "deeply nested", body: strings.Repeat(`{"a":`, 10000) + strings.Repeat("}", 10000), status: 400},
			)
			for field, ft := range jsonFields(rt.body) {
				for i, v := range wrongValues(ft) {
					cases = append(cases, badCase{name: fmt.Sprintf("%s wrong type %d", field, i), body: with(b.body, field, v)})
				}
				elem := ft
				for elem.Kind() == reflect.Pointer {
					elem = elem.Elem()
				}
				isText := elem.Kind() == reflect.String && elem != reflect.TypeFor[time.Time]()
				isTextList := elem.Kind() == reflect.Slice && elem.Elem().Kind() == reflect.String
				if (isText || isTextList) && !slices.Contains(freeText, field) {
					var v any = sqlMeta
					if isTextList {
						v = []string{sqlMeta}
					}
					cases = append(cases, badCase{name: field + " SQL metacharacters", body: with(b.body, field, v)})
				}
				if isText {
					cases = append(cases, badCase{name: field + " NUL", body: with(b.body, field, "a\x00b")},
						badCase{name: field + " too long", body: with(b.body, field, strings.Repeat("é", 30000))})
				}
			}
		}
		// Path parameters.
		for _, m := range pathParamRE.FindAllStringSubmatchIndex(rt.path, -1) {
			name := rt.path[m[2]:m[3]]
			for _, v := range []string{"abc", "0", "-1", "99999999999999999999", "1.5", url.PathEscape(sqlMeta), "%00",
				url.PathEscape("f16' OR '1'='1"), strings.Repeat("a", 300), "%C0%80", url.PathEscape("ф16")} {
				bad := rt.path[:m[0]] + v + rt.path[m[1]:]
				// Other parameters keep their base values.
				bad = fillLike(bad, p)
				if rawQuery != "" {
					bad += "?" + rawQuery
				}
				cases = append(cases, badCase{name: name + "=" + v, path: bad, body: b.body})
			}
		}
		// Query parameters.
		baseQ, _ := url.ParseQuery(rawQuery)
		for _, qp := range rt.query {
			vals := []string{sqlMeta, "\x00", strings.Repeat("9", 2000), "a b"}
			switch qp.typ {
			case "date-time":
				vals = append(vals, "notatime", "2025-02-30T00:00:00Z", "-1", "2025-01-01")
			case "integer":
				vals = append(vals, "-1", "abc", "1.5", "0x10")
			case "boolean":
				vals = append(vals, "yes", "1", "TRUE")
			default:
				vals = append(vals, "UPPER", "_x")
			}
			for _, v := range vals {
				q := url.Values{}
				for k, vs := range baseQ {
					q[k] = vs
				}
				q.Set(qp.name, v)
				anyOK := slices.Contains(freeText, qp.name) && v != "\x00" && len(v) < 1000
				cases = append(cases, badCase{name: qp.name + "=" + v, path: p + "?" + q.Encode(), body: b.body, anyOK: anyOK})
			}
			q := url.Values{}
			for k, vs := range baseQ {
				q[k] = vs
			}
			q[qp.name] = []string{"1", "2"}
			cases = append(cases, badCase{name: qp.name + " twice", path: p + "?" + q.Encode(), body: b.body})
		}
		cases = append(cases, badCase{name: "unknown query parameter", path: b.path + sep(b.path) + "where=1%3D1", body: b.body},
			badCase{name: "malformed query", path: b.path + sep(b.path) + "a=%zz", body: b.body})
		for _, c := range cases {
			path := c.path
			if path == "" {
				path = b.path
			}
			ct := c.ct
			if ct == "" {
				ct = "application/json"
			}
			tok := f.root
			if rt.access == accessPublic && rt.method == "POST" {
				tok = ""
			}
			r := f.do(t, tok, rt.method, path, c.body, "Content-Type", ct)
			sent++
			what := fmt.Sprintf("%s: %s", key, c.name)
			switch {
			case r.code >= 500:
				t.Errorf("%s: %d %s", what, r.code, r.body)
			case c.anyOK && r.code < 300:
			case c.status != 0 && r.code != c.status:
				t.Errorf("%s: %d, want %d: %.300s", what, r.code, c.status, r.body)
			default:
				apiProblemOK(t, what, r)
			}
		}
	}
	after := apiSnapshot(t, f)
	for tbl, d := range before {
		if after[tbl] != d {
			t.Errorf("table %s changed under bad input", tbl)
		}
	}
	t.Logf("%d bad requests over %d routes", sent, len(bases))
}

// fillLike replaces the remaining {param}s of pattern with the values at
// the same positions of the concrete path.
func fillLike(pattern, concrete string) string {
	ps, cs := strings.Split(pattern, "/"), strings.Split(concrete, "/")
	for i, s := range ps {
		if strings.HasPrefix(s, "{") && i < len(cs) {
			ps[i] = cs[i]
		}
	}
	return strings.Join(ps, "/")
}

func sep(path string) string {
	if strings.Contains(path, "?") {
		return "&"
	}
	return "?"
}

// TestAPIFreeTextIsStoredVerbatim: SQL metacharacters and other odd text in
// free-text fields are data, stored and returned unchanged.
func TestAPIFreeTextIsStoredVerbatim(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	text := sqlMeta + " \\ $1 %s ' \" ; -- 日本語 \u202e"
	r := f.do(t, f.root, "POST", "/api/v1/incidents", map[string]any{"facility": "f16", "type": "other", "severity": "minor",
		"start": f.t0, "description": text})
	if r.code != 201 {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	var inc registry.Incident
	r.json(t, &inc)
	var got registry.Incident
	f.do(t, f.root, "GET", fmt.Sprintf("/api/v1/incidents/%d", inc.ID), nil).json(t, &got)
	if got.Description != text {
		t.Fatalf("stored %q, want %q", got.Description, text)
	}
	var n int
	if err := f.pool.QueryRow(context.Background(), "SELECT count(*) FROM users").Scan(&n); err != nil || n == 0 {
		t.Fatalf("users table: %d %v", n, err)
	}
	// The same text as a query filter matches nothing and harms nothing.
	r = f.do(t, f.tokens["auditor"]["all"], "GET", "/api/v1/audit?actor="+url.QueryEscape(text), nil)
	var ap auditPage
	r.json(t, &ap)
	if r.code != 200 || len(ap.Items) != 0 {
		t.Fatalf("audit by odd actor: %d %+v", r.code, ap)
	}
}
