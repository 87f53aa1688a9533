package bridge

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// WriteConfig writes c as a configuration file, every key with its doc,
// defaults spelt out: what ferry check --print shows. [ParseConfig] reads
// it back to c (but Logger and Version, which files do not hold).
func WriteConfig(w io.Writer, c Config) error {
	var b strings.Builder
	b.WriteString("# ferry's configuration (ferry check --print): ferry serve --config FILE reads it.\n")
	table := ""
	for _, k := range Keys() {
		if k.Table != table {
			table = k.Table
			fmt.Fprintf(&b, "\n[%s]\n", table)
		}
		writeKey(&b, k.Option, k.Get(&c), true)
	}
	defaults := DefaultSettings()
	for _, m := range c.Mounts {
		fmt.Fprintf(&b, "\n[mount.%s]\n", tomlKey(m.Prefix))
		kind, _ := backendFor(m.Backend.Scheme)
		a := m.Backend
		a.Query = nil
		var opts []Option
		for name, vals := range m.Backend.Query {
			i := slices.IndexFunc(kind.allOptions(), func(o Option) bool { return o.Name == name })
			if i < 0 || len(vals) != 1 {
				if a.Query == nil {
					a.Query = make(map[string][]string)
				}
				a.Query[name] = vals // not an option of its kind: left for the loader to refuse
				continue
			}
			opts = append(opts, kind.allOptions()[i])
		}
		tables := len(m.FirstOptions) > 0 || slices.ContainsFunc(m.More, func(x Address) bool { return len(x.Query) > 0 })
		if !tables {
			backend := a.String()
			for _, x := range m.More {
				backend += "," + x.String()
			}
			b.WriteString("# where requests go\nbackend = " + tomlString(backend) + "\n")
		}
		for _, o := range kind.allOptions() {
			if slices.ContainsFunc(opts, func(p Option) bool { return p.Name == o.Name }) {
				writeKey(&b, o, m.Backend.Query[o.Name], false)
			}
		}
		for _, k := range Keys() {
			if k.st == nil || !slices.Contains(m.Own, k.Name) {
				continue
			}
			p := k.st(&m.Settings)
			if unset(k.Option, p) {
				p = k.st(&defaults)
			}
			writeKey(&b, k.Option, getValue(k.Option, p), true)
		}
		if tables {
			writeBackendTables(&b, m, a)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeBackendTables writes the backends of m's group as
// [[mount."PREFIX".backend]] tables, each with its own options; first is
// the first backend without the group's options.
func writeBackendTables(b *strings.Builder, m Mount, first Address) {
	for i, x := range append([]Address{first}, m.More...) {
		own := m.memberOwn(i)
		x.Query = nil
		fmt.Fprintf(b, "\n# backend %d of the group\n[[mount.%s.backend]]\naddress = %s\n", i+1, tomlKey(m.Prefix), tomlString(x.String()))
		for _, o := range memberOptions() {
			if own.Has(o.Name) {
				writeKey(b, o, own[o.Name], false)
			}
		}
	}
}

// writeKey writes one key, its doc above it, its value in the TOML type
// its option type is written in. With blankUnset, an empty text or
// address means unset, and is written as a comment.
func writeKey(b *strings.Builder, o Option, vals []string, blankUnset bool) {
	fmt.Fprintf(b, "# %s\n", o.Doc)
	name := tomlKey(o.Name)
	switch o.Type {
	case PositiveInt, Count:
		fmt.Fprintf(b, "%s = %s\n", name, tomlInt(vals[0]))
	case Bool:
		if v, err := strconv.ParseBool(vals[0]); err == nil {
			fmt.Fprintf(b, "%s = %t\n", name, v)
		} else {
			fmt.Fprintf(b, "%s = %s\n", name, tomlString(vals[0]))
		}
	case Size:
		if strings.Trim(vals[0], "0123456789") == "" {
			fmt.Fprintf(b, "%s = %s\n", name, tomlInt(vals[0]))
		} else {
			fmt.Fprintf(b, "%s = %s\n", name, tomlString(vals[0]))
		}
	case List, AddressList:
		if len(vals) == 0 && o.Type == AddressList {
			fmt.Fprintf(b, "# %s = []  (default: %s)\n", name, o.Default)
			return
		}
		quoted := make([]string, len(vals))
		for i, v := range vals {
			quoted[i] = tomlString(v)
		}
		fmt.Fprintf(b, "%s = [%s]\n", name, strings.Join(quoted, ", "))
	case Env:
		pairs := make([]string, len(vals))
		for i, kv := range vals {
			k, v, _ := strings.Cut(kv, "=")
			pairs[i] = tomlKey(k) + " = " + tomlString(v)
		}
		if len(pairs) == 0 {
			fmt.Fprintf(b, "%s = {}\n", name)
		} else {
			fmt.Fprintf(b, "%s = { %s }\n", name, strings.Join(pairs, ", "))
		}
	default:
		if vals[0] == "" && blankUnset {
			fmt.Fprintf(b, "# %s = \"\"  (default: %s)\n", name, o.Default)
			return
		}
		fmt.Fprintf(b, "%s = %s\n", name, tomlString(vals[0]))
	}
}

// tomlInt writes v, an integer as a mount's address or a flag spells it
// (strconv's "007", "+5"), as a TOML integer, which has no leading zeros or
// plus sign; what is not an integer is written as a string, for the loader
// to refuse with its line.
func tomlInt(v string) string {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return tomlString(v)
	}
	return strconv.FormatInt(n, 10)
}
