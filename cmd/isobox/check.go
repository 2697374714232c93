package main

import (
	"fmt"

	"github.com/isobox/isobox/userns"
)

// CheckCmd is `isobox check`.
type CheckCmd struct {
	JSON bool `name:"json" help:"Print the results as JSON."`
}

// Run exits 1, with no other message, when something run needs is
// missing: the report says what.
func (c *CheckCmd) Run() error {
	results := userns.Check()
	ok := true
	for _, r := range results {
		if r.Required && !r.OK {
			ok = false
		}
	}
	if c.JSON {
		if err := printJSON(results); err != nil {
			return err
		}
	} else {
		for _, r := range results {
			status := "ok  "
			switch {
			case !r.OK && r.Required:
				status = "FAIL"
			case !r.OK:
				status = "warn"
			}
			fmt.Printf("%s  %-46s %s\n", status, r.Name, r.Detail)
			if !r.OK && r.Fix != "" {
				fmt.Printf("      %-46s fix: %s\n", "", r.Fix)
			}
		}
	}
	if !ok {
		return commandExit(1)
	}
	return nil
}
