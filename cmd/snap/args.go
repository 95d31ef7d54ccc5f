package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// reorderArgs lets flags follow positional arguments ("snap restore latest
// --target /x"), which urfave/cli v2 does not parse on its own. For the
// command named on the line it moves every recognised flag (and its value)
// in front of the positional arguments, and puts "--" before those so that
// one that starts with '-' stays an argument. For create, anything after a
// "--" the user wrote is kept, after a "--" of its own, as the command's
// trailing arguments (the argv of --command); for the others it is more
// arguments.
//
// A flag that takes one value, given twice with different values ("-r A
// … -r B", "--keep-last 5 --keep-last 3"), is a usage error: the library
// would take the last one silently, and a script built by appending flags
// would run with a value its author did not see.
func reorderArgs(app *cli.App, args []string) ([]string, error) {
	if len(args) < 2 {
		return args, nil
	}
	out := []string{args[0]}
	rest := args[1:]
	seen := onceFlags{}
	// Global flags before the command name.
	flags := app.Flags
	for len(rest) > 0 && strings.HasPrefix(rest[0], "-") && rest[0] != "--" {
		n := flagArity(flags, rest[0])
		n = min(n, len(rest)-1)
		if err := seen.add(flags, rest[:1+n]); err != nil {
			return nil, err
		}
		out = append(out, rest[:1+n]...)
		rest = rest[1+n:]
	}
	if len(rest) == 0 {
		// Options and no command: the library prints its help and exits
		// 0, which a job reads as success. An empty variable
		// ('snap -r $REPO check') made the command the option's value.
		for i := 1; i < len(out); i++ {
			if flagArity(flags, out[i]) == 1 && i+1 < len(out) {
				if findCommand(app.Commands, out[i+1]) != nil {
					return nil, usagef("no command: %s took %q as its value (an empty variable before it?): give %s a value, then the command", out[i], out[i+1], out[i])
				}
				return nil, usagef("no command after %s %s: give one ('snap help' lists them)", out[i], out[i+1])
			}
		}
		// 'snap --json', 'snap -q' printed the help and exited 0 too
		// (found by an exploratory test). Only help, the version and the
		// shell's completion need no command.
		for _, a := range out[1:] {
			if a == "--help" || a == "-h" || a == "--version" || a == "-V" || a == "--generate-bash-completion" {
				return out, nil
			}
		}
		return nil, usagef("no command after %s: give one of %s (see 'snap --help')", strings.Join(out[1:], " "), commandNames(app.Commands))
	}
	cmds := app.Commands
	var cmd *cli.Command
	for len(rest) > 0 {
		c := findCommand(cmds, rest[0])
		if c == nil {
			break
		}
		cmd = c
		out = append(out, rest[0])
		rest = rest[1:]
		cmds = c.Subcommands
		if len(cmds) == 0 {
			break
		}
		// Flags of a parent command may sit between it and a subcommand.
		for len(rest) > 0 && strings.HasPrefix(rest[0], "-") && rest[0] != "--" && findCommand(cmds, rest[0]) == nil {
			n := min(flagArity(c.Flags, rest[0]), len(rest)-1)
			if err := seen.add(c.Flags, rest[:1+n]); err != nil {
				return nil, err
			}
			out = append(out, rest[:1+n]...)
			rest = rest[1+n:]
		}
	}
	if cmd == nil {
		return append(out, rest...), nil
	}
	var fl, pos, trailing []string
	dashdash := false
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			dashdash = true
			trailing = rest[i+1:]
			break
		}
		if a == "--help" || a == "-h" {
			// Help wherever it is asked for: with arguments left on the
			// line, the library takes the first for a help topic ("No
			// help topic for 'latest'").
			return append(out, "--help"), nil
		}
		if strings.HasPrefix(a, "-") && a != "-" && isKnownFlag(cmd.Flags, a) {
			n := flagArity(cmd.Flags, a)
			if i+n >= len(rest) {
				// Last on the line without its value: the "--" put before
				// the arguments would become its value ('restore latest
				// --target' restored into ./--; found by an exploratory
				// test).
				return nil, usagef("flag needs an argument: %s (give it a value, or leave it out)", a)
			}
			if err := seen.add(cmd.Flags, rest[i:i+1+n]); err != nil {
				return nil, err
			}
			fl = append(fl, primaryName(cmd.Flags, a))
			fl = append(fl, rest[i+1:i+1+n]...)
			i += n
			continue
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			fl = append(fl, a) // unknown: let the parser report it
			continue
		}
		pos = append(pos, a)
	}
	if dashdash && !cmd.HasName("create") {
		// Only create takes a command after "--" (--command NAME -- …);
		// for the others "--" ends the flags and what follows are
		// arguments ('snap run -- -job').
		pos, trailing, dashdash = append(pos, trailing...), nil, false
	}
	out = append(out, fl...)
	if len(pos) > 0 || dashdash {
		out = append(out, "--")
		out = append(out, pos...)
	}
	if dashdash {
		out = append(out, "--")
		out = append(out, trailing...)
	}
	return out, nil
}

// onceFlags holds the value each single-value flag was given on the
// command line so far, by the flag's name (so "-r" and "--repo" are one).
type onceFlags map[string]string

// add records one flag and its value (the argument after it, or what
// follows "="), and refuses a second, different value for a flag that
// takes one. Booleans and repeatable flags (--exclude, --tag) are free to
// repeat; so is the same value twice.
func (seen onceFlags) add(flags []cli.Flag, flagAndValue []string) error {
	f := lookupFlag(flags, flagAndValue[0])
	if _, isBool := f.(*cli.BoolFlag); f == nil || isBool || repeatable(f) {
		return nil
	}
	value := ""
	if _, v, ok := strings.Cut(flagAndValue[0], "="); ok {
		value = v
	} else if len(flagAndValue) > 1 {
		value = flagAndValue[1]
	}
	name := f.Names()[0]
	if value == "" && !emptyValueMeans[name] {
		if _, isString := f.(*cli.StringFlag); isString {
			// An empty variable ('--since "$SINCE"') was taken for the
			// option left out: list and find then read every snapshot,
			// --overwrite= meant always, create --host= the machine's
			// name (found by an exploratory test).
			return usagef("%s is empty: give it a value, or leave it out (an empty variable?)", dashed(name))
		}
	}
	if prev, ok := seen[name]; ok && prev != value {
		return usagef("%s given twice, as %q and as %q: give it once", dashed(name), prev, value)
	}
	seen[name] = value
	return nil
}

// emptyValueMeans holds the single-value options for which an empty value
// says something of its own: --group-by "" makes one group.
var emptyValueMeans = map[string]bool{"group-by": true}

// repeatable reports whether a flag collects every value it is given.
func repeatable(f cli.Flag) bool {
	switch f := f.(type) {
	case *cli.StringSliceFlag, *cli.IntSliceFlag, *cli.Int64SliceFlag, *cli.UintSliceFlag, *cli.Uint64SliceFlag, *cli.Float64SliceFlag:
		return true
	case *cli.GenericFlag:
		_, multi := f.Value.(*multiValue)
		return multi
	}
	return false
}

// commandNames lists the commands for a message: "init, create, list".
func commandNames(cmds []*cli.Command) string {
	var names []string
	for _, c := range cmds {
		if !c.Hidden && c.Name != "help" {
			names = append(names, c.Name)
		}
	}
	return strings.Join(names, ", ")
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

func flagName(arg string) (name string, hasValue bool) {
	name = strings.TrimLeft(arg, "-")
	if i := strings.IndexByte(name, '='); i >= 0 {
		return name[:i], true
	}
	return name, false
}

func lookupFlag(flags []cli.Flag, arg string) cli.Flag {
	name, _ := flagName(arg)
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// primaryName writes a repeatable flag given by an alias ("-e x") under
// its name ("--exclude x"), so that both forms can be mixed on one line:
// the library refuses "two forms of the same flag". Other flags are left
// as written.
func primaryName(flags []cli.Flag, arg string) string {
	f, ok := lookupFlag(flags, arg).(*cli.GenericFlag)
	if !ok {
		return arg
	}
	if _, multi := f.Value.(*multiValue); !multi {
		return arg
	}
	if _, value, hasValue := strings.Cut(arg, "="); hasValue {
		return "--" + f.Name + "=" + value
	}
	return "--" + f.Name
}

func isKnownFlag(flags []cli.Flag, arg string) bool { return lookupFlag(flags, arg) != nil }

// flagArity is how many following arguments a flag consumes: 0 for booleans
// and for "--flag=value", 1 otherwise.
func flagArity(flags []cli.Flag, arg string) int {
	if _, hasValue := flagName(arg); hasValue {
		return 0
	}
	f := lookupFlag(flags, arg)
	if f == nil {
		return 0
	}
	if _, ok := f.(*cli.BoolFlag); ok {
		return 0
	}
	return 1
}
