package config

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestLoadRefusesBadInput(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  []string
		want []string // substrings of the error
	}{
		{"unknown key with line", "log:\n  level: info\n  colour: red\n", nil, []string{`"log.colour"`, "line 3", "unknown key"}},
		{"typo suggests", "http:\n  lisen: 127.0.0.1:1\n", nil, []string{`"http.lisen"`, `did you mean "listen"`}},
		{"unknown top-level", "databse:\n  url: postgres://x/y\n", nil, []string{`"databse"`, "line 1"}},
		{"bad duration", "http:\n  shutdown_timeout: 10 seconds\n", nil, []string{`"http.shutdown_timeout"`, "line 2", "invalid duration"}},
		{"negative duration", "ingest:\n  read_timeout: -1s\n", nil, []string{`"ingest.read_timeout"`, "negative"}},
		{"wrong type int", "database:\n  max_conns: many\n", nil, []string{`"database.max_conns"`, "line 2", "integer"}},
		{"wrong type bool", "recorder:\n  enabled: sometimes\n", nil, []string{`"recorder.enabled"`, "true or false"}},
		{"mapping expected", "log: loud\n", nil, []string{`"log"`, "expected a mapping"}},
		{"bad size", "ingest:\n  gop_cache: 8 megs\n", nil, []string{`"ingest.gop_cache"`, "invalid size"}},
		{"malformed URL", "database:\n  url: 'postgres://[::1'\n", nil, []string{`"database.url"`, "line 2", "malformed URL"}},
		{"URL without host", "database:\n  url: localhost\n", nil, []string{`"database.url"`, "scheme"}},
		{"wrong URL scheme", "database:\n  url: mysql://h/db\n", nil, []string{`"database.url"`, "postgres://"}},
		{"not YAML", "log: [\n", nil, []string{"not valid YAML"}},
		{"bad enum", "log:\n  format: xml\n", nil, []string{`"log.format"`, `"xml" is not one of text, json`}},
		{"camera credentials in URL", "cameras:\n  - id: c1\n    facility: f16\n    url: rtsp://u:secret@h/x\n", nil, []string{`"cameras[0].url"`, "credentials"}},
		{"camera bad scheme", "cameras:\n  - id: c1\n    facility: f16\n    url: http://h/x\n", nil, []string{`"cameras[0].url"`, "rtsp://"}},
		{"duplicate camera", "cameras:\n  - {id: c1, facility: f16, url: 'rtsp://h/1'}\n  - {id: c1, facility: f16, url: 'rtsp://h/2'}\n", nil, []string{"duplicate camera id"}},
		{"env bad duration", "", []string{"KUZET_INGEST_READ_TIMEOUT=ten"}, []string{`"ingest.read_timeout"`, "KUZET_INGEST_READ_TIMEOUT", "invalid duration"}},
		{"env unknown key", "", []string{"KUZET_DATABSE_URL=postgres://h/d"}, []string{"KUZET_DATABSE_URL", "no such configuration key"}},
		{"s3 without bucket", "store:\n  kind: s3\n  s3:\n    endpoint: minio:9000\n", nil, []string{`"store.s3.bucket"`, "required"}},
		{"s3 endpoint with scheme", "store:\n  kind: s3\n  s3:\n    endpoint: http://minio:9000\n    bucket: b\n", nil, []string{`"store.s3.endpoint"`, "without a scheme"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.yaml != "" {
				path = filepath.Join(t.TempDir(), "kuzet.yaml")
				if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Load(path, tc.env)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestLoadAppliesFileThenEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kuzet.yaml")
	yml := `
http:
  listen: 0.0.0.0:9090
database:
  url: postgres://kuzet:filepass@db:5432/kuzet
store:
  kind: s3
  s3:
    endpoint: minio:9000
    bucket: footage
    multipart_threshold: 16MiB
cameras:
  - id: f16-c01
    facility: f16
    url: rtsp://10.0.0.1/s
`
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, []string{
		"KUZET_DATABASE_URL=postgres://kuzet:envpass@db2:5432/kuzet",
		"KUZET_INGEST_READ_TIMEOUT=15s",
		"KUZET_STORE_S3_SECRET_KEY=s3cret",
		"KUZET_SECRET_KEY=not-a-config-key-but-allowed",
		"PATH=/usr/bin",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Listen != "0.0.0.0:9090" || c.Database.URL.Host != "db2:5432" || c.Ingest.ReadTimeout != 15*time.Second ||
		c.Store.S3.SecretKey != "s3cret" || c.Store.S3.MultipartThreshold != 16<<20 {
		t.Fatalf("unexpected config: %+v", c)
	}
	if len(c.Cameras) != 1 || !c.Cameras[0].Enabled {
		t.Fatalf("camera defaults not applied: %+v", c.Cameras)
	}
	if c.Log.Level != "info" || c.Recorder.SegmentDuration != time.Minute {
		t.Fatal("defaults lost")
	}
	if strings.Contains(c.Database.URL.Redacted(), "envpass") {
		t.Fatal("password not redacted")
	}
}

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestExampleDocumentsEveryKey keeps deploy/kuzet.example.yaml in step with
// Config: it loads, and every key of Config appears in it (cameras' keys in
// the commented example).
func TestExampleDocumentsEveryKey(t *testing.T) {
	path := filepath.Join("..", "..", "deploy", "kuzet.example.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := Default()
	if err := Parse(b, &c); err != nil {
		t.Fatalf("example does not parse: %v", err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("example values differ from the defaults:\n got %+v\nwant %+v", c, Default())
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		t.Fatal(err)
	}
	inFile := map[string]bool{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			walk(n.Content[0], path)
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := join(path, n.Content[i].Value)
				inFile[k] = true
				walk(n.Content[i+1], k)
			}
		}
	}
	walk(&n, "")
	var missing []string
	var keys func(t reflect.Type, path string, inList bool)
	keys = func(t reflect.Type, path string, inList bool) {
		for name, i := range yamlFields(t) {
			k := join(path, name)
			f := t.Field(i).Type
			if inList {
				// Keys of list elements are documented in a commented example.
				if !strings.Contains(string(b), name+":") {
					missing = append(missing, k)
				}
				continue
			}
			if !inFile[k] {
				missing = append(missing, k)
			}
			if f.Kind() == reflect.Struct && f != urlType {
				keys(f, k, false)
			}
			if f.Kind() == reflect.Slice && f.Elem().Kind() == reflect.Struct {
				keys(f.Elem(), k, true)
			}
		}
	}
	keys(reflect.TypeOf(Config{}), "", false)
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("deploy/kuzet.example.yaml does not document: %s", strings.Join(missing, ", "))
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]Bytes{"0": 0, "1024": 1024, "4KiB": 4096, "64MiB": 64 << 20, "2GiB": 2 << 30, "5MB": 5e6, " 7 B": 7} {
		got, err := ParseBytes(in)
		if err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5GiB", "ten", "99999999999TiB"} {
		if _, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) accepted", in)
		}
	}
}

func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("..", "..", "deploy", "*.yaml"))
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("log: {level: debug}\ncameras: [{id: a, facility: b, url: 'rtsp://h'}]\n"))
	f.Add([]byte("a: &x {b: *x}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := Default()
		_ = Parse(b, &c) // must not panic
	})
}
