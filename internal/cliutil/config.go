package cliutil

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
	"go.yaml.in/yaml/v3"
)

// ConfigFlag is the name of the flag that names a daemon's config file.
const ConfigFlag = "config"

// Check validates one value of a flag that urfave/cli takes as a plain string (a size, a URL,
// a CIDR list), so that a bad value is refused at start naming where it came from.
type Check func(string) error

// Daemon gives a daemon's own flags (not its subcommands') their two other sources: an
// environment variable each (EnvVar) and a YAML file named by --config whose keys are the flag
// names. A flag wins over the environment, which wins over the file, which wins over the
// default. checks run on every value that did not come from the default, and their errors name
// the flag, the variable, or the file and line.
func Daemon(app *cli.App, checks map[string]Check) {
	app.Flags = append(app.Flags, &cli.StringFlag{Name: ConfigFlag,
		Usage: "YAML file of settings whose keys are these flags' names (e.g. `p2p-listen: /ip4/0.0.0.0/tcp/65002`); flags and environment variables win over it"})
	for _, f := range app.Flags {
		env := reflect.ValueOf(f).Elem().FieldByName("EnvVars")
		if env.IsValid() && env.Len() == 0 {
			env.Set(reflect.ValueOf([]string{EnvVar(f.Names()[0])}))
		}
	}
	before := app.Before
	app.Before = func(c *cli.Context) error {
		if err := loadConfig(c, app.Name, app.Flags, checks); err != nil {
			return err
		}
		if before != nil {
			return before(c)
		}
		return nil
	}
}

// EnvVar is the environment variable of a daemon's flag: POUCH_ and the name in upper case,
// dashes made underscores (--p2p-listen: POUCH_P2P_LISTEN).
func EnvVar(flag string) string {
	return "POUCH_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// loadConfig sets, from the --config file, the flags that neither the command line nor the
// environment set, then runs checks on every value that was given.
func loadConfig(c *cli.Context, bin string, flags []cli.Flag, checks map[string]Check) error {
	fromFile := map[string]bool{}
	if path := c.String(ConfigFlag); path != "" {
		entries, err := readConfig(path, bin, flags)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if c.IsSet(e.key) {
				continue // a flag or its environment variable wins
			}
			fromFile[e.key] = true
			if len(e.values) == 0 && !e.list {
				e.values = []string{""} // "key:" or "key: " sets the empty value
			}
			for _, v := range e.values {
				if err := c.Set(e.key, v); err != nil {
					return fmt.Errorf("%s:%d: %s: %q is not %s", path, e.line, e.key, v, want(e.flag, unwrapFlagError(err).Error()))
				}
				if check := checks[e.key]; check != nil {
					if err := check(v); err != nil {
						return fmt.Errorf("%s:%d: %s: %w", path, e.line, e.key, err)
					}
				}
			}
		}
	}
	return checkFlags(c, checks, fromFile)
}

// CheckFlags runs checks on the values of the flags that were set (on the command line or in
// the environment), naming the flag or variable a bad value came from.
func CheckFlags(c *cli.Context, checks map[string]Check) error {
	return checkFlags(c, checks, nil)
}

func checkFlags(c *cli.Context, checks map[string]Check, skip map[string]bool) error {
	for _, name := range slices.Sorted(maps.Keys(checks)) {
		if skip[name] || !c.IsSet(name) {
			continue
		}
		for _, v := range flagValues(c, name) {
			if err := checks[name](v); err != nil {
				return fmt.Errorf("%s: %w", source(c, name), err)
			}
		}
	}
	return nil
}

// source names where a flag's value came from when the file did not give it: the environment
// variable when it holds the value, else the command line.
func source(c *cli.Context, name string) string {
	if env, ok := os.LookupEnv(EnvVar(name)); ok && env == c.String(name) {
		return "$" + EnvVar(name)
	}
	return "--" + name
}

// flagValues are the values of one flag: each element of a list flag, else its one value.
func flagValues(c *cli.Context, name string) []string {
	if l, ok := c.Value(name).(cli.StringSlice); ok {
		return l.Value()
	}
	return []string{c.String(name)}
}

// unwrapFlagError drops the standard flag package's "invalid value ... for flag -x: " prefix
// that c.Set adds, since the caller names the key and the value itself.
func unwrapFlagError(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && strings.HasPrefix(msg, "invalid ") {
		return errors.New(msg[i+2:])
	}
	return err
}

// configEntry is one key of a config file.
type configEntry struct {
	key    string
	flag   cli.Flag
	line   int
	values []string // a list's elements, or the one scalar
	list   bool     // written as a YAML sequence
}

// readConfig parses a config file: one YAML mapping from flag names to scalars, or to
// sequences of scalars for the flags that take a list. Anything else is an error naming the
// file and line.
func readConfig(path, bin string, flags []cli.Flag) ([]configEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", ConfigFlag, err)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // an empty file sets nothing
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("%s:%d: a second YAML document: a config file holds one mapping", path, extra.Line)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: want a mapping of %s's flag names to values", path, root.Line, bin)
	}
	known := map[string]cli.Flag{}
	for _, f := range flags {
		known[f.Names()[0]] = f
	}
	seen := map[string]int{}
	var out []configEntry
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		key := k.Value
		f, ok := known[key]
		switch {
		case k.Kind != yaml.ScalarNode:
			return nil, fmt.Errorf("%s:%d: a key must be a flag name", path, k.Line)
		case key == ConfigFlag:
			return nil, fmt.Errorf("%s:%d: %s: a config file cannot name another", path, k.Line, key)
		case !ok:
			return nil, fmt.Errorf("%s:%d: unknown key %q: the keys are %s's flags (see %s --help)", path, k.Line, key, bin, bin)
		case seen[key] > 0:
			return nil, fmt.Errorf("%s:%d: %s: given twice (first at line %d)", path, k.Line, key, seen[key])
		}
		seen[key] = k.Line
		_, isList := f.(*cli.StringSliceFlag)
		e := configEntry{key: key, flag: f, line: k.Line}
		switch v.Kind {
		case yaml.ScalarNode:
			if v.Tag != "!!null" {
				e.values = []string{v.Value}
			}
		case yaml.SequenceNode:
			if !isList {
				return nil, fmt.Errorf("%s:%d: %s: takes one value, not a list", path, v.Line, key)
			}
			e.list = true
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("%s:%d: %s: a list of plain values is expected", path, item.Line, key)
				}
				e.values = append(e.values, item.Value)
			}
		default:
			return nil, fmt.Errorf("%s:%d: %s: want a value, not a mapping", path, v.Line, key)
		}
		out = append(out, e)
	}
	return out, nil
}
