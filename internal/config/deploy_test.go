package config

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestDeployFilesUseValidConfiguration keeps deploy/ runnable as far as
// configuration goes: every KUZET_ variable the compose file, the systemd
// unit and the Kubernetes manifests set is a real key with a valid value,
// and the Kubernetes config file passes the strict loader.
func TestDeployFilesUseValidConfiguration(t *testing.T) {
	root := filepath.Join("..", "..", "deploy")
	read := func(p string) []byte {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	var compose struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(read("compose/compose.yaml"), &compose); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	var env []string
	for k, v := range compose.Services["kuzet"].Environment {
		env = append(env, k+"="+v)
	}
	if len(env) == 0 {
		t.Fatal("compose.yaml: kuzet service sets no environment")
	}
	c := Default()
	if err := ApplyEnv(&c, env); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}

	sc := bufio.NewScanner(bytes.NewReader(read("systemd/kuzet.service")))
	var unitEnv []string
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Environment="); ok {
			unitEnv = append(unitEnv, v)
		}
	}
	c = Default()
	if err := ApplyEnv(&c, unitEnv); err != nil {
		t.Fatalf("kuzet.service: %v", err)
	}

	dec := yaml.NewDecoder(bytes.NewReader(read("kubernetes/kuzet.yaml")))
	found := false
	for {
		var doc struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if err := dec.Decode(&doc); err != nil {
			break
		}
		if doc.Kind == "ConfigMap" {
			c := Default()
			if err := Parse([]byte(doc.Data["kuzet.yaml"]), &c); err != nil {
				t.Fatalf("kubernetes ConfigMap kuzet.yaml: %v", err)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("kubernetes ConfigMap kuzet.yaml: %v", err)
			}
			found = true
		}
	}
	if !found {
		t.Fatal("kubernetes/kuzet.yaml has no ConfigMap with kuzet.yaml")
	}
}
