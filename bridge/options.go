package bridge

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// OptionType is the type of an option's value.
type OptionType int

// Option types.
const (
	// String is any text, the empty text included.
	String OptionType = iota
	// PositiveInt is a whole number above zero.
	PositiveInt
	// Duration is a positive Go duration: "10s", "1m30s".
	Duration
	// FileMode is an octal permission mode: "0660".
	FileMode
	// Bool is true or false.
	Bool
	// Count is a whole number, zero or more.
	Count
	// Size is a byte count: 1048576, 512K, 10M, 1G (powers of 1024), or
	// 1KiB, 1MB (SI spellings, powers of 1000 for KB, MB, GB).
	Size
	// Timeout is a Go duration where zero or less means none.
	Timeout
	// List is a list of texts.
	List
	// Env is a set of NAME=value variables.
	Env
	// AddressType is an address in ferry's spelling ([Address]).
	AddressType
	// AddressList is a list of addresses.
	AddressList
	// HeaderName is an HTTP header name: "X-Request-Id".
	HeaderName
)

var optionTypeNames = [...]string{String: "text", PositiveInt: "a positive number", Duration: "a duration such as 10s",
	FileMode: "an octal mode such as 0660", Bool: "true or false", Count: "a whole number, 0 or more",
	Size: "a size such as 1048576, 512K, 10M or 1GiB", Timeout: "a duration such as 30s (0: none)",
	List: "a list of names", Env: "a table of NAME = \"value\"", AddressType: "an address",
	AddressList: "a list of addresses", HeaderName: "a header name such as X-Request-Id"}

// String names the type as error messages do.
func (t OptionType) String() string {
	if int(t) < len(optionTypeNames) {
		return optionTypeNames[t]
	}
	return "OptionType(" + strconv.Itoa(int(t)) + ")"
}

// Option is one option an address takes after "?": declared once per kind
// of back (or front), and read from there by the parser, the checks and the
// help text.
type Option struct {
	// Name is the key, such as "max_conns".
	Name string
	// Type is the type of the value.
	Type OptionType
	// Values, if not empty, lists the only values allowed.
	Values []string
	// Max, if positive, is the largest value a number may have.
	Max int64
	// Default describes the value used when the option is absent.
	Default string
	// Doc says what the option does, in one sentence.
	Doc string
	// Needs, if set, is the other option, and its value, without which
	// this one does nothing, as "persist=php", or the other option alone,
	// with any value, as "persist": given without it, the option is
	// refused (see checkNeeds). If empty, none.
	Needs string
}

// options holds an address's options once checked against their
// declarations.
type options struct {
	q url.Values
}

// checkOptions checks q against decl: every key must be declared, given
// once, and of its type. The error names the closest declared option to a
// misspelt one and lists the options that kind takes.
func checkOptions(q url.Values, decl []Option, what string) (options, error) {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		i := slices.IndexFunc(decl, func(o Option) bool { return o.Name == k })
		if i < 0 {
			return options{}, unknownOption(k, decl, what)
		}
		o := decl[i]
		if len(q[k]) > 1 {
			return options{}, fmt.Errorf("option %s given %d times", k, len(q[k]))
		}
		v := q.Get(k)
		if err := o.check(v); err != nil {
			return options{}, fmt.Errorf("%s=%q: %w", k, v, err)
		}
	}
	return options{q: q}, nil
}

// checkNeeds checks that each option of q that needs another (see
// Option.Needs) has it, with its value. It returns the first option that
// lacks it, in decl's order, and why; the error does not name the option,
// which a configuration file's line does.
func checkNeeds(q url.Values, decl []Option) (string, error) {
	for _, o := range decl {
		if o.Needs == "" || !q.Has(o.Name) {
			continue
		}
		name, want, value := strings.Cut(o.Needs, "=")
		switch got := q.Get(name); {
		case !q.Has(name):
			return o.Name, fmt.Errorf("needs %s", o.Needs)
		case value && got != want:
			return o.Name, fmt.Errorf("needs %s, not %s=%s", o.Needs, name, got)
		}
	}
	return "", nil
}

// checkNeeded is [checkNeeds] for a backend of kind k with options q, its
// error naming the option.
func checkNeeded(k Backend, q url.Values) error {
	if name, err := checkNeeds(q, k.Options); err != nil {
		return fmt.Errorf("option %s %w", name, err)
	}
	return nil
}

// check checks an address option's value against its declaration.
func (o Option) check(v string) error {
	if len(o.Values) > 0 && !slices.Contains(o.Values, v) {
		return fmt.Errorf("want %s", strings.Join(o.Values, " or "))
	}
	bad := false
	switch o.Type {
	case PositiveInt, Count:
		n, err := strconv.Atoi(v)
		bad = err != nil || n < 0 || n == 0 && o.Type == PositiveInt
		if !bad && o.Max > 0 && int64(n) > o.Max {
			return aboveMax(o.Max)
		}
	case Duration:
		d, err := time.ParseDuration(v)
		bad = err != nil || d <= 0
	case FileMode:
		m, err := strconv.ParseUint(v, 8, 32)
		bad = err != nil || m > 0o7777
	case Timeout:
		_, err := time.ParseDuration(v)
		bad = err != nil
	case Size:
		_, err := ParseSize(v)
		bad = err != nil
	case Bool:
		_, err := strconv.ParseBool(v)
		bad = err != nil
	case HeaderName:
		bad = !validHeaderName(v)
	}
	if bad {
		return fmt.Errorf("want %s", o.Type)
	}
	return nil
}

// unknownOption describes an option that decl does not declare.
func unknownOption(k string, decl []Option, what string) error {
	if len(decl) == 0 {
		return fmt.Errorf("unknown option %q: %s takes no options", k, what)
	}
	names := make([]string, len(decl))
	best, bestDist := "", 3 // suggest only near misses
	for i, o := range decl {
		names[i] = o.Name
		if d := editDistance(k, o.Name); d < bestDist {
			best, bestDist = o.Name, d
		}
	}
	hint := ""
	if best != "" {
		hint = fmt.Sprintf(" (did you mean %s?)", best)
	}
	return fmt.Errorf("unknown option %q%s; %s takes %s", k, hint, what, strings.Join(names, ", "))
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// has reports whether the option was given (with any value, empty too).
func (o options) has(name string) bool { return o.q.Has(name) }

// str returns the option's text, or "" when absent.
func (o options) str(name string) string { return o.q.Get(name) }

// positive returns a PositiveInt option's value, or 0 when absent.
func (o options) positive(name string) int {
	n, _ := strconv.Atoi(o.q.Get(name)) // checked by checkOptions
	return n
}

// count returns a Count option's value, or def when absent.
func (o options) count(name string, def int) int {
	if !o.q.Has(name) {
		return def
	}
	n, _ := strconv.Atoi(o.q.Get(name)) // checked by checkOptions
	return n
}

// boolean returns a Bool option's value, false when absent.
func (o options) boolean(name string) bool {
	b, _ := strconv.ParseBool(o.q.Get(name)) // checked by checkOptions
	return b
}

// duration returns a Duration option's value, or 0 when absent.
func (o options) duration(name string) time.Duration {
	d, _ := time.ParseDuration(o.q.Get(name)) // checked by checkOptions
	return d
}

// timeout returns a Timeout option's value, zero for none (zero or less,
// or absent).
func (o options) timeout(name string) time.Duration {
	d, _ := time.ParseDuration(o.q.Get(name)) // checked by checkOptions
	return max(d, 0)
}

// size returns a Size option's value, or 0 when absent.
func (o options) size(name string) int64 {
	n, _ := ParseSize(o.q.Get(name)) // checked by checkOptions
	return n
}

// validHeaderName reports whether v is a header field name: a token of
// RFC 9110 § 5.1.
func validHeaderName(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
