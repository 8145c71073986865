// Command ldm generates images with latent diffusion models in the Hugging
// Face diffusers formats, and trains, evaluates and applies them.
//
// Usage:
//
//	ldm <command> [flags] [arguments]
//
// Run "ldm help" for the list of commands and "ldm <command> -h" for the
// flags of one. Results go to files; progress and logs go to stderr. The
// exit code is 0 on success, 1 on failure, 2 for a usage error and 130 when
// interrupted.
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
	"syscall"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// env is what a command may touch: its streams, so tests can capture them.
type env struct {
	stdout, stderr io.Writer
	stderrIsTTY    bool
}

// usageError marks errors that should print usage and exit with code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdout: os.Stdout, stderr: os.Stderr, stderrIsTTY: isTerminal(os.Stderr)}
	os.Exit(run(ctx, e, os.Args[1:]))
}

// run executes one command line and returns the exit code.
func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				return run(ctx, e, []string{c.name, "-h"})
			}
		}
		printUsage(e.stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "ldm: unknown command %q\n\n", args[0])
		printUsage(e.stderr)
		return 2
	}
	err := runCommand(ctx, e, c, args[1:])
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "ldm %s: %s\nRun 'ldm %s -h' for usage.\n", c.name, ue.msg, c.name)
		return 2
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(e.stderr, "ldm %s: interrupted; nothing half-written was left behind\n", c.name)
		return 130
	default:
		fmt.Fprintf(e.stderr, "ldm %s: %v\n", c.name, err)
		return 1
	}
}

// internalError is a panic caught at the top of a command: a bug, since
// every user input is validated before use, reported as one line instead
// of a Go trace.
type internalError struct{ v any }

func (e internalError) Error() string {
	return fmt.Sprintf("internal error (a bug in ldm, please report it with the command line): %v", e.v)
}

// runCommand runs c, turning a panic on the command's own goroutine into
// an internalError as a last resort.
func runCommand(ctx context.Context, e *env, c *command, args []string) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = internalError{v}
		}
	}()
	return c.run(ctx, e, args)
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "ldm: latent diffusion in Go, in the Hugging Face diffusers formats.")
	fmt.Fprintln(w, "\nUsage: ldm <command> [flags] [arguments]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'ldm <command> -h' for the flags of a command.")
}

// newFlags makes a flag set that reports errors instead of exiting.
func newFlags(e *env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("ldm "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: ldm %s\n\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags, turning flag errors into usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}

// parseNoArgs is parse for commands that take flags alone. flag stops at
// the first argument that is not a flag, so every flag after a stray
// argument would be ignored: refuse it.
func parseNoArgs(fs *flag.FlagSet, args []string) error {
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (flags after it would be ignored)", fs.Arg(0))
	}
	return nil
}
