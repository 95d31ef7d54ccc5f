package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// multiValue is a repeatable string flag that, unlike cli.StringSliceFlag,
// never splits a value at commas: hook commands and database URLs (MongoDB
// replica sets, for one) contain them.
type multiValue struct{ values []string }

func (m *multiValue) Set(v string) error {
	m.values = append(m.values, v)
	return nil
}

func (m *multiValue) String() string { return strings.Join(m.values, " ") }

func multiFlag(name, usage string) *cli.GenericFlag {
	return &cli.GenericFlag{Name: name, Usage: usage, Value: &multiValue{}}
}

// multiValues returns every value given for a multiFlag, in order.
func multiValues(c *cli.Context, name string) []string {
	if v, ok := c.Generic(name).(*multiValue); ok {
		return v.values
	}
	return nil
}
