package migrate

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// accessBlock is a <Location> of front.conf (a <LocationMatch> for a
// <Files> section) that repeats, at the URL ferry serves a directory at,
// the access rules of a <Directory> section or .htaccess file: ProxyPass
// hands the path to ferry without Apache's directory walk, so those rules
// no longer apply by themselves.
type accessBlock struct {
	src   *Directive // the <Directory> section, or the .htaccess file's stand-in
	files *Directive // the <Files>/<FilesMatch> section the rules are in, or nil
	url   string     // the URL path of the directory
	order int        // sorts the blocks as Apache merges the sections
	first int        // then in the order of their first directive
	items []item
}

// accessURLs returns the URL paths a <Directory> path has among the
// mounts: the prefix of each mount at or below it, or its path under the
// deepest mount above it.
func (g *apacheMig) accessURLs(dir string, vhost int) []string {
	var urls []string
	var parent *mnt
	for _, m := range g.mounts {
		if m.dir == "" || vhost != 0 && m.vhost != 0 && m.vhost != vhost {
			continue
		}
		switch {
		case within(m.dir, dir):
			urls = append(urls, m.m.Prefix)
		case within(dir, m.dir) && (parent == nil || len(m.dir) > len(parent.dir)):
			parent = m
		}
	}
	if parent != nil {
		urls = append(urls, strings.TrimSuffix(parent.m.Prefix, "/")+strings.TrimPrefix(dir, parent.dir)+"/")
	}
	return outermost(urls)
}

// outermost drops the URL paths another of urls is a prefix of: a
// <Location> covers the paths below it (a PHP site's own subdirectory
// mounts among them).
func outermost(urls []string) []string {
	slices.Sort(urls)
	urls = slices.Compact(urls)
	return slices.DeleteFunc(urls, func(u string) bool {
		return slices.ContainsFunc(urls, func(v string) bool { return v != u && strings.HasPrefix(u, v) })
	})
}

// overrideCategory is the AllowOverride category a .htaccess file needs
// for each access directive.
var overrideCategory = map[string]string{
	"require": "AuthConfig", "authtype": "AuthConfig", "authname": "AuthConfig", "authuserfile": "AuthConfig",
	"authgroupfile": "AuthConfig", "authbasicprovider": "AuthConfig", "satisfy": "AuthConfig",
	"order": "Limit", "allow": "Limit", "deny": "Limit", "redirect": "FileInfo", "redirectmatch": "FileInfo",
}

// restricts reports whether an access directive keeps someone out (or
// sends them elsewhere), which ferry serving alone would not do.
func restricts(d *Directive) bool {
	args := strings.ToLower(strings.Join(d.Args, " "))
	switch strings.ToLower(d.Name) {
	case "require":
		return args != "all granted"
	case "allow":
		return args != "from all"
	case "deny", "redirect", "redirectmatch":
		return true
	}
	return false
}

// accessRules puts the access directives of the sections that cover a
// mount's directory into front.conf's blocks, and the report.
func (g *apacheMig) accessRules() {
	byKey := map[string]*accessBlock{}
	for i, it := range g.access {
		d, s := it.d, it.s
		var files *Directive
		for _, w := range s.wrap {
			if n := strings.ToLower(w.Name); n == "files" || n == "filesmatch" {
				files = w
			}
		}
		if cat := overrideCategory[strings.ToLower(d.Name)]; s.htaccess && !g.overrideAllows(s.dir, s.vhost, cat) {
			g.entry(d, Untranslated, "", "Apache refuses it here (AllowOverride for %s lacks %s): every request under it is a 500; remove it, or allow %s", s.dir, cat, cat)
			continue
		}
		var urls []string
		switch {
		case s.loc != "":
			g.entry(d, Kept, "", "")
			continue
		case s.sect != nil:
			urls = g.accessURLs(s.dir, s.vhost)
		case files != nil && s.dir == "":
			// a <Files> section of the server: every mounted directory
			for _, m := range g.mounts {
				if m.dir != "" && (s.vhost == 0 || m.vhost == 0 || m.vhost == s.vhost) {
					urls = append(urls, m.m.Prefix)
				}
			}
			urls = outermost(urls)
		}
		if len(urls) == 0 {
			g.entry(d, Kept, "", "")
			continue
		}
		order := phpDepth(s)
		if files != nil {
			order += 1 << 21 // <Files> sections merge after every <Directory>
		}
		var where []string
		for _, u := range urls {
			key := fmt.Sprintf("%p %p %s", s.sect, files, u)
			b := byKey[key]
			if b == nil {
				b = &accessBlock{src: s.sect, files: files, url: u, order: order, first: i}
				byKey[key] = b
				g.blocks = append(g.blocks, b)
			}
			b.items = append(b.items, it)
			where = append(where, b.open())
		}
		note := "ProxyPass skips <Directory> and .htaccess: front.conf repeats it in " + strings.Join(where, ", ")
		if restricts(d) {
			g.entry(d, Review, "", "%s; ferry serving alone does not check it", note)
		} else {
			g.entry(d, Kept, "", "%s", note)
		}
	}
	sort.SliceStable(g.blocks, func(i, j int) bool {
		a, b := g.blocks[i], g.blocks[j]
		return a.order < b.order || a.order == b.order && a.first < b.first
	})
}

// open is the block's opening line.
func (b *accessBlock) open() string {
	if b.files == nil {
		return "<Location " + quoteAlways(b.url) + ">"
	}
	return "<LocationMatch " + quoteAlways(filesURL(b.url, b.files)) + ">"
}

// filesURL turns a <Files> or <FilesMatch> section in the directory
// served at url into the regular expression of a <LocationMatch>: the
// pattern matches the last segment of a path under url.
func filesURL(url string, files *Directive) string {
	base := "^" + regexp.QuoteMeta(strings.TrimSuffix(url, "/")) + "/(?:.*/)?"
	pat := ""
	if len(files.Args) > 0 {
		pat = files.Args[len(files.Args)-1]
	}
	if strings.EqualFold(files.Name, "FilesMatch") || len(files.Args) == 2 && files.Args[0] == "~" {
		if rest, ok := strings.CutPrefix(pat, "^"); ok {
			return base + "(?:" + rest + ")"
		}
		return base + "[^/]*(?:" + pat + ")"
	}
	var b strings.Builder
	for _, r := range pat {
		switch r {
		case '*':
			b.WriteString("[^/]*")
		case '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	return base + "(?:" + b.String() + ")$"
}

// write writes the block: its source, then the rules inside the sections
// they sat in (<IfModule>, <RequireAny>...), the <Files> one aside.
func (b *accessBlock) write(w *strings.Builder) {
	var from []string
	switch {
	case b.src == nil:
	case b.src.Name == ".htaccess":
		from = append(from, b.src.File)
	default:
		from = append(from, b.src.Where()+" <Directory "+strings.Join(b.src.Args, " ")+">")
	}
	if b.files != nil {
		from = append(from, b.files.Where()+" <"+b.files.Text()+">")
	}
	fmt.Fprintf(w, "# from %s\n%s\n", strings.Join(from, ", "), b.open())
	var open []*Directive
	for _, it := range b.items {
		wrap := slices.DeleteFunc(slices.Clone(it.s.wrap), func(d *Directive) bool { return d == b.files })
		n := 0
		for n < len(open) && n < len(wrap) && open[n] == wrap[n] {
			n++
		}
		for len(open) > n {
			fmt.Fprintf(w, "%s</%s>\n", strings.Repeat("    ", len(open)), open[len(open)-1].Name)
			open = open[:len(open)-1]
		}
		for _, d := range wrap[n:] {
			open = append(open, d)
			fmt.Fprintf(w, "%s<%s>\n", strings.Repeat("    ", len(open)), apacheLine(d))
		}
		fmt.Fprintf(w, "%s%s\n", strings.Repeat("    ", len(open)+1), apacheLine(it.d))
	}
	for len(open) > 0 {
		fmt.Fprintf(w, "%s</%s>\n", strings.Repeat("    ", len(open)), open[len(open)-1].Name)
		open = open[:len(open)-1]
	}
	fmt.Fprintf(w, "</%s>\n", strings.TrimPrefix(strings.Fields(b.open())[0], "<"))
}

// apacheLine spells a directive (or a section's opening, without <>) as
// Apache reads it.
func apacheLine(d *Directive) string {
	s := d.Name
	for _, a := range d.Args {
		s += " " + apacheQuote(a)
	}
	return s
}

// apacheQuote quotes an argument when it needs it. Apache's parser drops
// a backslash only before the quote character, so regular expressions
// keep theirs.
func apacheQuote(a string) string {
	if a != "" && !strings.ContainsAny(a, " \t\"'") {
		return a
	}
	return quoteAlways(a)
}

func quoteAlways(a string) string { return `"` + strings.ReplaceAll(a, `"`, `\"`) + `"` }
