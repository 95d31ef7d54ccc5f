package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// readPassword finds the repository password: --password-file or
// SNAP_PASSWORD_FILE, SNAP_PASSWORD, --password-command or
// SNAP_PASSWORD_COMMAND, else a prompt without echo when a person is at the
// terminal. confirm asks twice (for init).
func readPassword(c *cli.Context, e *env, confirm bool) (string, error) {
	st, err := settingsFrom(c, e)
	if err != nil {
		return "", err
	}
	return passwordFrom(e, st.passwordFile, "SNAP_PASSWORD", st.passwordCommand, confirm, "repository")
}

func passwordFrom(e *env, file, envVar, command string, confirm bool, what string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("password file: %w", err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return "", fmt.Errorf("password file %s is empty", file)
		}
		return pw, nil
	}
	if pw := e.getenv(envVar); pw != "" {
		return pw, nil
	}
	if command != "" {
		cmd := exec.Command("sh", "-c", command)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("password command %q failed: %v %s", command, err, strings.TrimSpace(stderr.String()))
		}
		pw := strings.TrimRight(string(out), "\r\n")
		if pw == "" {
			return "", fmt.Errorf("password command %q printed nothing", command)
		}
		return pw, nil
	}
	f, ok := e.stdin.(*os.File)
	if !e.stdinTTY || !ok {
		// envVar names the family: SNAP_PASSWORD, SNAP_TO_PASSWORD (copy's
		// target), SNAP_NEW_PASSWORD (snap key).
		flag := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(strings.TrimSuffix(envVar, "PASSWORD"), "SNAP_")), "_", "-")
		return "", usagef("no %s password: use --%spassword-file, %s_FILE, %s or %s_COMMAND", what, flag, envVar, envVar, envVar)
	}
	fmt.Fprintf(e.stderr, "enter %s password: ", what)
	pw, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(e.stderr)
	if err != nil {
		return "", err
	}
	if confirm {
		fmt.Fprintf(e.stderr, "enter the password again: ")
		again, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", err
		}
		if string(again) != string(pw) {
			return "", fmt.Errorf("the passwords do not match")
		}
	}
	if len(pw) == 0 {
		return "", fmt.Errorf("empty password")
	}
	return string(pw), nil
}
