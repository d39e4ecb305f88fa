package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/jackc/pgx/v5"

	"github.com/kuzet/kuzet/registry"
)

// errAuditBroken is returned when the audit chain does not verify; the
// message names the first bad row.
var errAuditBroken = errors.New("audit log tampered with")

func auditCommand() command {
	return command{
		name:  "audit",
		usage: "verify [--database URL] [--config FILE]",
		summary: "Check the audit log's hash chain.\n\n" +
			"verify walks every row in order and checks the numbering, each row's hash and its\n" +
			"link to the row before; a broken chain names the first bad row and exits 1.\n" +
			"On success it prints the last row and its hash: keep them, so that a chain\n" +
			"rewritten from an earlier row can be told apart later.",
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			db := addDatabaseFlags(fs)
			return func(ctx context.Context, args []string) error {
				if len(args) == 0 || args[0] != "verify" {
					return usageErrorf("want the subcommand verify")
				}
				// Flags may follow the subcommand too.
				if err := fs.Parse(args[1:]); err != nil {
					return usageErrorf("%v", err)
				}
				if fs.NArg() > 0 {
					return usageErrorf("unexpected argument %q", fs.Arg(0))
				}
				return runAuditVerify(ctx, db, os.Stdout)
			}
		},
	}
}

func runAuditVerify(ctx context.Context, db databaseFlags, out io.Writer) error {
	pool, err := db.open(ctx, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer pool.Close()
	// One snapshot for the whole walk, so that rows appended meanwhile do
	// not look like a mismatch with the chain head.
	var res registry.VerifyResult
	err = pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		res, err = registry.VerifyAudit(ctx, tx)
		return err
	})
	var ce *registry.ChainError
	if errors.As(err, &ce) {
		fmt.Fprintf(out, "audit log BROKEN: %d rows verified before row %d\nrow %d: %s\n", res.Rows, ce.Seq, ce.Seq, ce.Problem)
		return fmt.Errorf("%w: first bad row %d", errAuditBroken, ce.Seq)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "audit log OK: %d rows; last row %d, hash %s\n", res.Rows, res.HeadSeq, hex.EncodeToString(res.HeadHash))
	return nil
}
