package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=…"; otherwise
// it is the module version the binary was built from, or "dev".
var version = ""

// Main holds what a command run needs from its environment, so tests can run
// the whole binary in-process.
type Main struct {
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	// OnListen, when set, is called with the server's base URL once it
	// accepts connections; tests and the demo use it.
	OnListen func(url string)
}

// NewMain returns a Main wired to the process's stdio and environment.
func NewMain() *Main {
	return &Main{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
}

// errUsage marks errors that come from bad command-line use; they exit 2.
var errUsage = errors.New("usage error")

// errSilentFailure exits 1 for a command that has already said what failed
// (a verification that found problems).
var errSilentFailure = errors.New("failed")

const usage = `lethe is a privacy engine for application backends.

Usage:
  lethe serve [flags]                       run the server (SQLite in ./lethe-data by default)
  lethe demo [--data-dir DIR]               start a server and show what it does, step by step
  lethe keys create --name N --role R [--expires D]
  lethe keys list
  lethe keys revoke KEY_ID
  lethe keys rotate-master [--data-dir DIR] [--key-store DSN] [--rewrap-only]
  lethe keys rotate-tenant --tenant T [--data-dir DIR] [--key-store DSN]
  lethe audit verify [--key KEY] [--checkpoint FILE]...
  lethe audit export --subject ID [--out FILE]
  lethe audit verify-proof --key KEY FILE
  lethe audit key
  lethe datamap validate|check|import-fides|schema [--manifest PATH]
  lethe plan erase --subject ID [--manifest PATH]   dry run of an erasure across the data map
  lethe request create|list|show|approve|retry|done|extend|cancel|reject   data-subject requests
  lethe forget replay --manifest PATH     after restoring a system, erase the forgotten again
  lethe version

Run 'lethe COMMAND -h' for a command's flags. Docs: docs/ in the repository.
`

// Run runs the command in args and returns the process exit code.
func (m *Main) Run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = m.serve(ctx, args[1:])
	case "demo":
		err = m.demo(ctx, args[1:])
	case "keys":
		err = m.keys(ctx, args[1:])
	case "audit":
		err = m.audit(ctx, args[1:])
	case "datamap":
		err = m.datamap(ctx, args[1:])
	case "plan":
		err = m.plan(ctx, args[1:])
	case "request":
		err = m.request(ctx, args[1:])
	case "forget":
		err = m.forget(ctx, args[1:])
	case "version", "--version":
		fmt.Fprintf(m.Stdout, "lethe %s (%s)\n", binaryVersion(), runtime.Version())
	case "help", "-h", "--help":
		fmt.Fprint(m.Stdout, usage)
	default:
		fmt.Fprintf(m.Stderr, "lethe: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var coded interface{ ExitCode() int } // a command's own exit status (request wait)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(m.Stderr, "lethe %s: %v\n", args[0], err)
		return 2
	case errors.As(err, &coded):
		fmt.Fprintf(m.Stderr, "lethe %s: %v\n", args[0], err)
		return coded.ExitCode()
	case errors.Is(err, errSilentFailure):
		return 1
	default:
		fmt.Fprintf(m.Stderr, "lethe %s: %v\n", args[0], err)
		return 1
	}
}

func binaryVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// usageErrorf returns an error that exits 2.
func usageErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// newFlagSet returns a FlagSet that reports errors instead of exiting.
func (m *Main) newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("lethe "+name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	return fs
}

// commandFlags is newFlagSet for a command whose usage is help, then its
// flags.
func (m *Main) commandFlags(name, help string) *flag.FlagSet {
	fs := m.newFlagSet(name)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), help)
		fs.PrintDefaults()
	}
	return fs
}

// manifestFlag binds --manifest, the data map (see Main.manifestPath).
func manifestFlag(fs *flag.FlagSet) *string {
	return fs.String("manifest", "", "the data map: a YAML file or a directory of them (env LETHE_DATAMAP; default ./lethe.yaml)")
}

// parse parses args and turns a flag error into a usage error.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}
