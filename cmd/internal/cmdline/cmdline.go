// Package cmdline is what isobox's binaries share around kong: parse, run the
// chosen command, and turn its error into one "isobox: ..." line (and a
// hint) on stderr and an exit status. It owns no command.
package cmdline

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/alecthomas/kong"
)

// ExitSetup is the status of isobox's own failures (podman's 125).
const ExitSetup = 125

// exitCoder is any error that carries the exit status to use.
type exitCoder interface{ ExitCode() int }

// silent is an error that says nothing: the container command's own exit
// status, already reported by the command itself.
type silent interface{ Silent() }

// exitNow is how kong's own exits (--help, --version) unwind to Run.
type exitNow int

// Run parses args with parser and runs the chosen command, with the
// values bind returns once the flags are parsed (a logger at the parsed
// level, say). hint, if set, adds an "isobox: hint:" line for an error.
// A command line kong refuses exits with parseFail (125, or runc's 1 for
// `isobox oci`).
func Run(parser *kong.Kong, args []string, stderr io.Writer, bind func() []any, hint func(error) string, parseFail int) (code int) {
	parser.Exit = func(code int) { panic(exitNow(code)) }
	defer func() {
		if r := recover(); r != nil {
			n, ok := r.(exitNow)
			if !ok {
				panic(r)
			}
			code = int(n)
		}
	}()
	ctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "isobox: %s\n", OneLine(err.Error()))
		return parseFail
	}
	err = ctx.Run(bind()...)
	if err == nil {
		return 0
	}
	code = ExitSetup
	var ec exitCoder
	if errors.As(err, &ec) {
		code = ec.ExitCode()
	}
	var quiet silent
	if !errors.As(err, &quiet) {
		fmt.Fprintf(stderr, "isobox: %s\n", OneLine(err.Error()))
		if hint != nil {
			if h := hint(err); h != "" {
				fmt.Fprintf(stderr, "isobox: hint: %s\n", h)
			}
		}
	}
	return code
}

// OneLine folds a message onto one line.
func OneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
