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
	if os.Getenv("PATH") == "" {
		// Started with no PATH at all (env -i, some cron or container
		// setups): the dump tools and hooks are found where systemd's
		// services find them. Without it every tool was "not installed"
		// (found by an exploratory test).
		os.Setenv("PATH", defaultPath)
	}
	stopProfiles := startProfiles(os.Getenv)
	code := run(os.Args, newEnv())
	stopProfiles()
	os.Exit(code)
}

// defaultPath is the PATH snap runs with when it is given none: systemd's
// default for services.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
