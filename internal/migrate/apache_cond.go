package migrate

import (
	"regexp"
	"strings"
)

// conds is what Apache's configuration reader knows while it reads, as far
// as the input says: the parameters defined so far (Define, which ${NAME}
// expands to and <IfDefine> tests) and the modules loaded so far
// (LoadModule, which <IfModule> tests). httpd decides both at read time,
// in file order.
type conds struct {
	defines map[string]string
	// named holds every name a Define of the input sets, taken or not: an
	// <IfDefine> of another name tests a -D of httpd's command line,
	// which the input does not show.
	named map[string]bool
	// loads is true when the input loads modules: <IfModule> is then
	// decided; without LoadModule lines (a single site file) it is
	// assumed to hold.
	loads   bool
	modules map[string]bool // by moduleKey
}

// staticModules are compiled into Debian's and most distributions'
// httpd: no LoadModule line loads them.
var staticModules = map[string]bool{"core": true, "http_core": true, "http": true, "so": true, "watchdog": true,
	"log_config": true, "logio": true, "version": true, "unixd": true}

// newConds collects the names the input defines and whether it loads
// modules.
func newConds(ds []*Directive) *conds {
	c := &conds{defines: map[string]string{}, named: map[string]bool{}, modules: map[string]bool{}}
	var scan func([]*Directive)
	scan = func(ds []*Directive) {
		for _, d := range ds {
			switch strings.ToLower(d.Name) {
			case "define":
				if len(d.Args) > 0 {
					c.named[d.Args[0]] = true
				}
			case "loadmodule":
				c.loads = true
			}
			scan(d.Block)
		}
	}
	scan(ds)
	return c
}

// moduleKey names a module the same whether given by its identifier
// (cgid_module, as LoadModule and <IfModule> spell it) or its source file
// (mod_cgid.c); PHP's versioned names (php7_module, mod_php8.c) are php.
func moduleKey(s string) string {
	s = strings.ToLower(s)
	if k, ok := strings.CutSuffix(s, "_module"); ok {
		s = k
	} else {
		s = strings.TrimSuffix(strings.TrimPrefix(s, "mod_"), ".c")
	}
	if strings.HasPrefix(s, "php") && strings.Trim(s[3:], "0123456789.") == "" {
		s = "php"
	}
	return s
}

// read applies a directive httpd acts on while reading: Define, UnDefine
// and LoadModule.
func (c *conds) read(d *Directive) {
	switch strings.ToLower(d.Name) {
	case "define":
		if len(d.Args) > 0 {
			v := ""
			if len(d.Args) > 1 {
				v = d.Args[1]
			}
			c.defines[d.Args[0]] = v
		}
	case "undefine":
		if len(d.Args) > 0 {
			delete(c.defines, d.Args[0])
		}
	case "loadmodule":
		if len(d.Args) > 0 {
			c.modules[moduleKey(d.Args[0])] = true
		}
	}
}

var varRE = regexp.MustCompile(`\$\{([^}]+)\}`)

// expand replaces the ${NAME} of d's arguments that a Define set, as
// httpd's ap_resolve_env does; it returns the first name left, which httpd
// takes from its environment (Debian: /etc/apache2/envvars).
func (c *conds) expand(d *Directive) (unset string) {
	for i, a := range d.Args {
		d.Args[i] = varRE.ReplaceAllStringFunc(a, func(m string) string {
			name := m[2 : len(m)-1]
			if v, ok := c.defines[name]; ok {
				return v
			}
			if unset == "" {
				unset = name
			}
			return m
		})
	}
	return unset
}

// holds decides an <IfModule> or <IfDefine> section: known is false when
// the input does not say, and the section is assumed to hold.
func (c *conds) holds(d *Directive) (holds, known bool) {
	if len(d.Args) == 0 {
		return true, false
	}
	arg := d.Args[0]
	neg := strings.HasPrefix(arg, "!")
	arg = strings.TrimPrefix(arg, "!")
	switch strings.ToLower(d.Name) {
	case "ifmodule":
		if !c.loads {
			return true, false
		}
		key := moduleKey(arg)
		return (c.modules[key] || staticModules[key]) != neg, true
	case "ifdefine":
		_, def := c.defines[arg]
		if !def && !c.named[arg] {
			return true, false
		}
		return def != neg, true
	}
	return true, false
}

// notHolding says why an <IfModule> or <IfDefine> section does not hold.
func notHolding(d *Directive) string {
	arg := d.Args[0]
	name, neg := strings.CutPrefix(arg, "!")
	switch {
	case strings.EqualFold(d.Name, "IfModule") && neg:
		return name + " is loaded"
	case strings.EqualFold(d.Name, "IfModule"):
		return name + " is not loaded (no LoadModule of the input loads it before this line)"
	case neg:
		return name + " is defined"
	}
	return name + " is not defined (no Define of the input sets it before this line)"
}
