package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/kuzet/kuzet/viewer/evidence"
)

func exportKeyCommand() command {
	return command{
		name:  "export-key",
		usage: "[--public] FILE",
		summary: "Make the key that signs evidence exports.\n\n" +
			"Writes a new Ed25519 private key to FILE (PKCS #8 PEM, mode 600; an existing\n" +
			"file is never overwritten) and its public key to FILE.pub, and prints the public\n" +
			"key and its fingerprint. Point export.signing_key_file at FILE; hand the public\n" +
			"key to recipients through another channel than the packages. With --public,\n" +
			"prints the public key of the existing key in FILE.",
		flags: func(fset *flag.FlagSet) func(context.Context, []string) error {
			public := fset.Bool("public", false, "print the public key of an existing private key FILE")
			return func(ctx context.Context, args []string) error {
				if len(args) != 1 {
					return usageErrorf("name one key file")
				}
				if *public {
					return printPublicKey(args[0], os.Stdout)
				}
				return makeExportKey(args[0], os.Stdout)
			}
		},
	}
}

func makeExportKey(path string, out io.Writer) error {
	priv, pub, err := evidence.GenerateKey()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists: a signing key is never overwritten", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(priv); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(path+".pub", pub, 0o644); err != nil {
		return err
	}
	k, _ := evidence.ParsePublicKey(pub)
	fmt.Fprintf(out, "signing key written to %s, public key to %s.pub\nfingerprint %s\n\n%s", path, path, evidence.Fingerprint(k), pub)
	return nil
}

func printPublicKey(path string, out io.Writer) error {
	key, err := loadSigningKey(path)
	if err != nil {
		return err
	}
	pub := key.Public().(ed25519.PublicKey)
	b, err := evidence.PublicKeyPEM(pub)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s# fingerprint %s\n", b, evidence.Fingerprint(pub))
	return nil
}
