package bridge

import (
	"fmt"
	"slices"
	"strings"
)

// ConfigReference returns the reference of every configuration key and
// every backend option as Markdown tables, generated from [Keys] and
// [Backends]: the README includes it, and a test keeps the two equal.
func ConfigReference() string {
	var b strings.Builder
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	value := func(o Option) string {
		if len(o.Values) > 0 {
			return cell(orList(o.Values))
		}
		return cell(o.Type.String())
	}
	flag := func(f string) string {
		if f == "" {
			return "(file only)"
		}
		return "`--" + f + "`"
	}
	for _, t := range []struct{ table, title string }{{"", "Top level"}, {"log", "`[log]`"}} {
		fmt.Fprintf(&b, "%s:\n\n| key | flag | value | default | |\n|---|---|---|---|---|\n", t.title)
		for _, k := range Keys() {
			if k.Table == t.table {
				fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", k.Name, flag(k.Flag), value(k.Option), cell(k.Default), cell(k.Doc))
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("`listen` (and `admin`) addresses take these options after `?`:\n\n| address | option | value | default | |\n|---|---|---|---|---|\n")
	done := map[string]bool{} // schemes that share their options are one row per option
	for i := range schemes {
		opts := fmt.Sprint(schemes[i].options)
		if len(schemes[i].options) == 0 || done[opts] {
			continue
		}
		done[opts] = true
		var names []string
		for j := range schemes {
			if sc := &schemes[j]; fmt.Sprint(sc.options) == opts {
				names = append(names, "`"+schemeNames(func(s *scheme) bool { return s == sc })+"`")
			}
		}
		for _, o := range schemes[i].options {
			fmt.Fprintf(&b, "| %s | `%s` | %s | %s | %s |\n", strings.Join(names, " "), o.Name, value(o), cell(o.Default), cell(o.Doc))
		}
	}
	b.WriteString("\n")
	b.WriteString("`[defaults]`, and a `[mount.\"PREFIX\"]` table of a kind that uses the setting:\n\n")
	b.WriteString("| key | flag | value | default | mounts | |\n|---|---|---|---|---|---|\n")
	for _, k := range Keys() {
		if k.Table != "defaults" {
			continue
		}
		var kinds []string
		for _, kind := range Backends() {
			if slices.Contains(kind.Settings, k.Name) {
				kinds = append(kinds, "`"+kind.Schemes[0]+"`")
			}
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s |\n", k.Name, flag(k.Flag), value(k.Option), cell(k.Default), strings.Join(kinds, " "), cell(k.Doc))
	}
	b.WriteString("\n`[mount.\"PREFIX\"]`: `backend = \"ADDRESS\"`, and its kind's options (also written after `?` in the address):\n\n")
	b.WriteString("| backend | option | value | default | |\n|---|---|---|---|---|\n")
	for _, kind := range Backends() {
		names := make([]string, len(kind.Schemes))
		for i, s := range kind.Schemes {
			names[i] = "`" + schemeNames(func(sc *scheme) bool { return sc.name == s }) + "`"
		}
		if len(kind.Options) == 0 {
			fmt.Fprintf(&b, "| %s | | | | %s |\n", strings.Join(names, " "), cell(kind.Summary))
		}
		for _, o := range kind.Options {
			fmt.Fprintf(&b, "| %s | `%s` | %s | %s | %s |\n", strings.Join(names, " "), o.Name, value(o), cell(o.Default), cell(o.Doc))
		}
	}
	b.WriteString("\nUpstream groups (`fastcgi`, `fastcgi+exec`, `scgi`, `http` backends): a comma-separated list of backends of one kind, such as `fastcgi://10.0.0.1:9000,fastcgi://10.0.0.2:9000?policy=round_robin`, or one backend with any of these options; they apply to the group, the kind's options to each backend:\n\n")
	b.WriteString("| option | value | default | |\n|---|---|---|---|\n")
	for _, o := range groupOptions() {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", o.Name, value(o), cell(o.Default), cell(o.Doc))
	}
	b.WriteString("\nIn the configuration file, `[[mount.\"PREFIX\".backend]]` tables may list a group's backends instead, each an `address` with options of its own:\n\n")
	b.WriteString("| option | value | default | |\n|---|---|---|---|\n")
	for _, o := range memberOptions() {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", o.Name, value(o), cell(o.Default), cell(o.Doc))
	}
	return b.String()
}
