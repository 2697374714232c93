package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/posener/complete"
	"github.com/willabides/kongplete"

	"github.com/isobox/isobox/rootfs/image"
	"github.com/isobox/isobox/userns"
	"github.com/isobox/isobox/userns/state"
)

// Shell completion: kongplete answers the shell from isobox's own kong
// model when the shell runs isobox with COMP_LINE set (bash's `complete
// -C`, and zsh and fish through the scripts below), with predictors for
// the values kong does not know: network modes, capability and signal
// names, the caller's containers and images.

// CompletionCmd is `isobox completion SHELL`.
type CompletionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"bash, zsh or fish."`
}

func (c *CompletionCmd) Run() error {
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return err
	}
	switch c.Shell {
	case "bash":
		fmt.Printf("complete -C %s isobox\n", shellQuote(bin))
	case "zsh":
		fmt.Printf("autoload -U +X bashcompinit && bashcompinit\ncomplete -C %s isobox\n", shellQuote(bin))
	case "fish":
		fmt.Printf(`function __complete_isobox
    set -lx COMP_LINE (commandline -cp)
    test -z (commandline -ct)
    and set COMP_LINE "$COMP_LINE "
    %s
end
complete -f -c isobox -a "(__complete_isobox)"
`, shellQuote(bin))
	}
	return nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// completing reports whether the shell asks for completions.
func completing() bool { return os.Getenv("COMP_LINE") != "" }

// completeFor answers the shell, and exits.
func completeFor(parser *kong.Kong) {
	kongplete.Complete(parser,
		kongplete.WithPredictor("net", complete.PredictSet("slirp", "gvisor", "pasta", "none", "host")),
		kongplete.WithPredictor("caps", complete.PredictFunc(func(complete.Args) []string { return append(userns.AllCapNames(), "ALL") })),
		kongplete.WithPredictor("signals", complete.PredictSet(signalNames()...)),
		kongplete.WithPredictor("containers", complete.PredictFunc(containerNames)),
		kongplete.WithPredictor("images", complete.PredictFunc(imageNames)),
		kongplete.WithPredictor("rootfs", complete.PredictOr(complete.PredictDirs("*"), complete.PredictFunc(imageNames))),
		kongplete.WithExitFunc(os.Exit),
	)
}

func containerNames(complete.Args) []string {
	dir, err := state.Open()
	if err != nil {
		return nil
	}
	list, _ := dir.List()
	var out []string
	for _, i := range list {
		out = append(out, i.Name)
	}
	return out
}

func imageNames(complete.Args) []string {
	s, err := image.Open()
	if err != nil {
		return nil
	}
	imgs, _ := s.Images()
	var out []string
	for _, img := range imgs {
		out = append(out, img.Names...)
	}
	return out
}

func signalNames() []string {
	var out []string
	for _, n := range []string{"HUP", "INT", "QUIT", "KILL", "USR1", "USR2", "TERM", "CONT", "STOP", "WINCH", "ALRM", "PIPE"} {
		out = append(out, n, "SIG"+n)
	}
	return out
}
