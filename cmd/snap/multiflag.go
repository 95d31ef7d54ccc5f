package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// multiValue is a repeatable string flag that keeps each value exactly as
// given. cli.StringSliceFlag does not: it trims white space around a value
// (a file named " x "), and copies a flag with an alias (--include, -i)
// through JSON, which turns a name that is not valid UTF-8 into U+FFFD, so
// that such a file could be neither excluded nor included. Nor does this
// split a value at commas: hook commands and database URLs (MongoDB
// replica sets, for one) contain them.
type multiValue struct{ values []string }

// multiSerial starts what Serialize returns: it begins with a NUL byte,
// which no command-line argument can hold, and separates the values with
// NULs.
const multiSerial = "\x00snap-values\x00"

func (m *multiValue) Set(v string) error {
	if rest, ok := strings.CutPrefix(v, multiSerial); ok {
		// The library copying the values to an alias of the flag.
		m.values = nil
		if rest != "" {
			m.values = strings.Split(rest, "\x00")
		}
		return nil
	}
	m.values = append(m.values, v)
	return nil
}

func (m *multiValue) String() string { return strings.Join(m.values, " ") }

// Serialize is what the library hands an alias of the flag (cli.Serializer).
func (m *multiValue) Serialize() string { return multiSerial + strings.Join(m.values, "\x00") }

func multiFlag(name, usage string, aliases ...string) *cli.GenericFlag {
	return &cli.GenericFlag{Name: name, Aliases: aliases, Usage: usage, Value: &multiValue{}}
}

// multiValues returns every value given for a multiFlag, in order.
func multiValues(c *cli.Context, name string) []string {
	if v, ok := c.Generic(name).(*multiValue); ok {
		return v.values
	}
	return nil
}
