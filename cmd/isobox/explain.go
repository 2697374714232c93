package main

import (
	"fmt"
	"strings"

	"github.com/isobox/isobox/userns"
)

// explain prints the plan of a start: the steps userns.Explain derives
// from the same decisions Run executes, numbered, each with the commands a
// user of the article would type and a comment on what it gives.
func explain(o userns.Options, asJSON bool) error {
	steps, err := userns.Explain(o)
	if err != nil {
		return err
	}
	return printPlan(steps, asJSON, "isobox run")
}

// printPlan prints steps numbered, or as JSON.
func printPlan(steps []userns.PlanStep, asJSON bool, what string) error {
	if asJSON {
		return printJSON(map[string]any{"steps": steps})
	}
	fmt.Printf("# What `%s` does for these options, as the article's commands. Nothing was started.\n", what)
	fmt.Println("# $PID is the container's PID 1 on the host ($HOLDER the holder's); each step says which process takes it.")
	for i, s := range steps {
		fmt.Printf("\n%2d. [%s] # %s\n", i+1, s.Stage, s.Comment)
		for _, c := range s.Commands {
			fmt.Printf("    %s\n", strings.TrimSpace(c))
		}
	}
	return nil
}
