package config

import (
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// FieldError is a configuration value that was refused. Key is the dotted
// path of the field ("http.shutdown_timeout"); Line is the line in the YAML
// file (0 when the value came from the environment or a default).
type FieldError struct {
	Key    string
	Line   int
	Source string // "file" or the environment variable name
	Msg    string
}

func (e *FieldError) Error() string {
	switch {
	case e.Line > 0:
		return fmt.Sprintf("config key %q (line %d): %s", e.Key, e.Line, e.Msg)
	case e.Source != "" && e.Source != "file":
		return fmt.Sprintf("config key %q (from %s): %s", e.Key, e.Source, e.Msg)
	default:
		return fmt.Sprintf("config key %q: %s", e.Key, e.Msg)
	}
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	bytesType    = reflect.TypeOf(Bytes(0))
	urlType      = reflect.TypeOf(URL{})
)

// decodeNode copies a YAML node into v, refusing unknown keys and wrong types
// with the key path and line. Fields absent from the node keep their values
// (the defaults).
func decodeNode(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		return decodeNode(n.Content[0], v, path)
	}
	if n.Kind == yaml.AliasNode {
		return decodeNode(n.Alias, v, path)
	}
	if n.Tag == "!!null" {
		return nil
	}
	t := v.Type()
	switch {
	case t == durationType || t == bytesType || t == urlType:
		if n.Kind != yaml.ScalarNode {
			return &FieldError{Key: path, Line: n.Line, Msg: "expected a scalar value"}
		}
		return setScalar(v, n.Value, path, n.Line, "file")
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return &FieldError{Key: path, Line: n.Line, Msg: fmt.Sprintf("expected a mapping, got %s", kindName(n))}
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			idx, ok := fields[k.Value]
			key := join(path, k.Value)
			if !ok {
				return &FieldError{Key: key, Line: k.Line, Msg: "unknown key" + suggest(k.Value, fields)}
			}
			if err := decodeNode(val, v.Field(idx), key); err != nil {
				return err
			}
		}
		return nil
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return &FieldError{Key: path, Line: n.Line, Msg: fmt.Sprintf("expected a list, got %s", kindName(n))}
		}
		if len(n.Content) == 0 {
			v.Set(reflect.Zero(t)) // an empty list is the same as none
			return nil
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, item := range n.Content {
			if t.Elem().Kind() == reflect.Struct {
				s.Index(i).Set(defaultsFor(t.Elem()))
			}
			if err := decodeNode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			return &FieldError{Key: path, Line: n.Line, Msg: fmt.Sprintf("expected a mapping, got %s", kindName(n))}
		}
		m := reflect.MakeMap(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			ev := reflect.New(t.Elem()).Elem()
			if err := decodeNode(val, ev, join(path, k.Value)); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(k.Value), ev)
		}
		v.Set(m)
		return nil
	default:
		if n.Kind != yaml.ScalarNode {
			return &FieldError{Key: path, Line: n.Line, Msg: fmt.Sprintf("expected a %s, got %s", typeName(t), kindName(n))}
		}
		return setScalar(v, n.Value, path, n.Line, "file")
	}
}

// defaultsFor returns the zero value of a list element type, or its defaults
// when the type has a Defaults method.
func defaultsFor(t reflect.Type) reflect.Value {
	p := reflect.New(t)
	if d, ok := p.Interface().(interface{ setDefaults() }); ok {
		d.setDefaults()
	}
	return p.Elem()
}

// setScalar parses s into v according to v's type.
func setScalar(v reflect.Value, s, path string, line int, source string) error {
	bad := func(msg string) error { return &FieldError{Key: path, Line: line, Source: source, Msg: msg} }
	switch v.Type() {
	case durationType:
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return bad(fmt.Sprintf("invalid duration %q (use e.g. 500ms, 10s, 5m)", s))
		}
		if d < 0 {
			return bad(fmt.Sprintf("duration %q must not be negative", s))
		}
		v.SetInt(int64(d))
		return nil
	case bytesType:
		b, err := ParseBytes(s)
		if err != nil {
			return bad(err.Error())
		}
		v.SetInt(int64(b))
		return nil
	case urlType:
		u, err := ParseURL(s)
		if err != nil {
			return bad(err.Error())
		}
		v.Set(reflect.ValueOf(u))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return bad(fmt.Sprintf("expected true or false, got %q", s))
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, v.Type().Bits())
		if err != nil {
			return bad(fmt.Sprintf("expected an integer, got %q", s))
		}
		v.SetInt(i)
	case reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return bad(fmt.Sprintf("expected a number, got %q", s))
		}
		v.SetFloat(f)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return bad("cannot be set from a single value")
		}
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		v.Set(reflect.ValueOf(parts))
	default:
		return bad(fmt.Sprintf("unsupported type %s", v.Type()))
	}
	return nil
}

func yamlFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = i
	}
	return m
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "integer"
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	}
	return t.String()
}

// suggest names the closest known key, for typos.
func suggest(k string, fields map[string]int) string {
	best, bestD := "", 3
	for f := range fields {
		if d := editDistance(k, f); d < bestD {
			best, bestD = f, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev = cur
	}
	return prev[len(b)]
}

// Bytes is a size in bytes. In YAML and the environment it is an integer or
// an integer with a unit: 512KiB, 64MiB, 2GiB (also kB, MB, GB as powers of 10).
type Bytes int64

// ParseBytes parses a size such as "64MiB" or "1048576".
func ParseBytes(s string) (Bytes, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mul    int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	mul := int64(1)
	num := s
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			mul, num = u.mul, strings.TrimSpace(strings.TrimSuffix(s, u.suffix))
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mul {
		return 0, fmt.Errorf("invalid size %q (use bytes, or e.g. 512KiB, 64MiB, 2GiB)", s)
	}
	return Bytes(n * mul), nil
}

// URL is an absolute URL kept with its original text.
type URL struct {
	*url.URL
}

// ParseURL parses an absolute URL with a scheme and a host.
func ParseURL(s string) (URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return URL{}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return URL{}, fmt.Errorf("malformed URL: %s", redactURLError(err))
	}
	if u.Scheme == "" || (u.Host == "" && u.Opaque == "" && u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return URL{}, fmt.Errorf("malformed URL %q: needs a scheme and a host", Redact(s))
	}
	return URL{u}, nil
}

// String returns the URL, or "" when unset.
func (u URL) String() string {
	if u.URL == nil {
		return ""
	}
	return u.URL.String()
}

// Redacted returns the URL with any password replaced by "xxxxx".
func (u URL) Redacted() string {
	if u.URL == nil {
		return ""
	}
	return u.URL.Redacted()
}

// IsZero reports whether the URL is unset.
func (u URL) IsZero() bool { return u.URL == nil }

// Redact hides the password of a URL-looking string for messages.
func Redact(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	return s
}

func redactURLError(err error) string {
	var ue *url.Error
	if e, ok := err.(*url.Error); ok {
		ue = e
		return fmt.Sprintf("%s %q: %v", ue.Op, Redact(ue.URL), ue.Err)
	}
	return err.Error()
}
