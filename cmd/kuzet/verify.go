package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kuzet/kuzet/viewer/evidence"
)

func verifyCommand() command {
	return command{
		name:  "verify",
		usage: "PACKAGE --pubkey KEY",
		summary: "Verify an evidence package offline.\n\n" +
			"Checks the package (the ZIP file as exported) against the exporter's public key\n" +
			"KEY (a PEM file: GET /api/v1/export/pubkey, or kuzet export-key --public): the\n" +
			"signature over manifest.json, every file's size and SHA-256 against the manifest,\n" +
			"and the archive's structure. Needs no database and no network. Prints OK and\n" +
			"exits 0 when everything matches; otherwise names the file that does not and\n" +
			"exits 1.",
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			pubkey := fs.String("pubkey", "", "the exporter's public `KEY` file (PEM, required)")
			return func(ctx context.Context, args []string) error {
				// Flags may follow the package: kuzet verify PACKAGE --pubkey KEY.
				var pkgs []string
				for len(args) > 0 {
					if strings.HasPrefix(args[0], "-") {
						if err := fs.Parse(args); err != nil {
							return usageErrorf("%v", err)
						}
						args = fs.Args()
						continue
					}
					pkgs, args = append(pkgs, args[0]), args[1:]
				}
				if len(pkgs) != 1 {
					return usageErrorf("name one package")
				}
				if *pubkey == "" {
					return usageErrorf("--pubkey is required")
				}
				return runVerify(pkgs[0], *pubkey, os.Stdout)
			}
		},
	}
}

func runVerify(pkg, keyFile string, out io.Writer) error {
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	pub, err := evidence.ParsePublicKey(b)
	if err != nil {
		return fmt.Errorf("%s: %w", keyFile, err)
	}
	rep, err := evidence.VerifyFile(pkg, pub)
	if err != nil {
		return err
	}
	m := rep.Manifest
	fmt.Fprintf(out, "OK: %s is intact and signed by %s\n", pkg, m.SigningKey.Fingerprint)
	fmt.Fprintf(out, "export %s by %s at %s: %q\n", m.ExportID, m.Exporter.Username, m.ExportedAt.UTC().Format("2006-01-02 15:04:05 UTC"), m.Reason)
	if m.Incident != nil {
		fmt.Fprintf(out, "incident %d (%s, %s) at %s\n", m.Incident.ID, m.Incident.Type, m.Incident.Severity, m.Incident.Facility)
	}
	fmt.Fprintf(out, "footage %s to %s, %d camera(s), %d gap(s)\n", m.From.UTC().Format("2006-01-02 15:04:05"),
		m.To.UTC().Format("2006-01-02 15:04:05 UTC"), len(m.Cameras), len(m.Gaps))
	for _, f := range m.Files {
		fmt.Fprintf(out, "  %-40s %12d bytes  sha256 %s\n", f.Name, f.Size, f.SHA256)
	}
	return nil
}
