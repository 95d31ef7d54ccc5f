// Command snap is a content-addressed, deduplicating backup tool for
// directories and database dumps. See docs/usage.md.
package main

import (
	"os"
)

func main() {
	limitMemory(os.Getenv)
	stopProfiles := startProfiles(os.Getenv)
	code := run(os.Args, newEnv())
	stopProfiles()
	os.Exit(code)
}
