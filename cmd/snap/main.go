// Command snap is a content-addressed, deduplicating backup tool for
// directories and database dumps. See docs/usage.md.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := limitMemory(os.Getenv); err != nil {
		fmt.Fprintf(os.Stderr, "snap: %v\n", err)
		os.Exit(exitUsage)
	}
	stopProfiles := startProfiles(os.Getenv)
	code := run(os.Args, newEnv())
	stopProfiles()
	os.Exit(code)
}
