// Command kuzet is the one Kuzet binary: the service, the demo, the camera
// simulator and the operator tools. It is the composition root: the only place
// that wires ingest, recorder, viewer, alerts and registry together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand of kuzet.
type command struct {
	name    string
	summary string
	// usage is the argument synopsis after the command name.
	usage string
	// flags registers the command's flags and returns the function that runs
	// it with the remaining arguments.
	flags func(fs *flag.FlagSet) func(ctx context.Context, args []string) error
}

// commands lists every subcommand; each lives in its own file.
func commands() []command {
	cs := []command{
		benchCommand(),
		camsimCommand(),
		serveCommand(),
		demoCommand(),
		migrateCommand(),
		auditCommand(),
		verifyChainCommand(),
		verifyCommand(),
		exportKeyCommand(),
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	return cs
}

// errUsage marks an error in the command line; it exits with status 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes kuzet with args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cs := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 {
			args = []string{args[1], "--help"}
		} else {
			topUsage(stdout, cs)
			if len(args) == 0 {
				return 2
			}
			return 0
		}
	}
	var cmd *command
	for i := range cs {
		if cs[i].name == args[0] {
			cmd = &cs[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "kuzet: unknown command %q\n\n", args[0])
		topUsage(stderr, cs)
		return 2
	}
	fs := flag.NewFlagSet("kuzet "+cmd.name, flag.ContinueOnError)
	runFn := cmd.flags(fs)
	usage := func(out io.Writer) {
		fmt.Fprintf(out, "Usage: kuzet %s %s\n\n%s\n", cmd.name, cmd.usage, cmd.summary)
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintf(out, "\nFlags:\n")
			fs.SetOutput(out)
			fs.PrintDefaults()
		}
	}
	// The flag package's own messages are silenced: errors and usage are
	// printed here, once, to the right stream.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "kuzet %s: %v\n\n", cmd.name, err)
		usage(stderr)
		return 2
	}
	if err := runFn(ctx, fs.Args()); err != nil {
		if errors.Is(err, errUsage) {
			fmt.Fprintf(stderr, "kuzet %s: %v\n\n", cmd.name, err)
			usage(stderr)
			return 2
		}
		fmt.Fprintf(stderr, "kuzet %s: %v\n", cmd.name, err)
		return 1
	}
	return 0
}

func topUsage(w io.Writer, cs []command) {
	fmt.Fprintf(w, "kuzet — video-surveillance ingest and alerting for correctional facilities\n\n")
	fmt.Fprintf(w, "Usage: kuzet COMMAND [flags] [args]\n\nCommands:\n")
	for _, c := range cs {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, firstLine(c.summary))
	}
	fmt.Fprintf(w, "\nRun 'kuzet COMMAND --help' for the flags of a command.\n")
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// usageErrorf returns an error that makes run print the command's usage.
func usageErrorf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}
