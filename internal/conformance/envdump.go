package conformance

import (
	"fmt"
	"strings"
)

// parseEnvDump parses the body of env.sh, env.pl, env.py and echo.py: lines of
// NAME=value, where NAME is [A-Za-z_][A-Za-z0-9_]*. A line that does not start
// with such a name continues the value before it (environment values may hold
// newlines). A final newline is optional. It fails on a first line that is not
// NAME=value and on a name given twice, which means the gateway passed the
// script a duplicate variable.
func parseEnvDump(body []byte) (map[string]string, error) {
	vars := make(map[string]string)
	text := strings.TrimSuffix(string(body), "\n")
	if text == "" {
		return vars, nil
	}
	last := ""
	for i, line := range strings.Split(text, "\n") {
		name, value, ok := strings.Cut(line, "=")
		if !ok || !isEnvName(name) {
			if last == "" {
				return nil, fmt.Errorf("conformance: env dump: line %d %q is not NAME=value", i+1, line)
			}
			vars[last] += "\n" + line
			continue
		}
		if _, dup := vars[name]; dup {
			return nil, fmt.Errorf("conformance: env dump: line %d: %s given twice", i+1, name)
		}
		vars[name] = value
		last = name
	}
	return vars, nil
}

// isEnvName reports whether s is a portable environment variable name.
func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
