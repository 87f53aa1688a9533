package migrate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferrygw/ferry/bridge"
)

// Status says what became of a directive.
type Status string

// The statuses of an [Entry].
const (
	// Translated: ferry.toml does its job now (Key names where).
	Translated Status = "translated"
	// Review: translated, but a person should check the note.
	Review Status = "review"
	// Untranslated: ferry has no equivalent; the note says why and what
	// to do. A person is needed.
	Untranslated Status = "untranslated"
	// Kept: the web server's own job, which stays with it (or has nothing
	// to do with the dynamic part).
	Kept Status = "kept"
)

// Entry is one directive of the input and what became of it.
type Entry struct {
	File      string `json:"file"`
	Line      int    `json:"line"`
	Directive string `json:"directive"`
	Status    Status `json:"status"`
	Key       string `json:"key,omitempty"`
	Note      string `json:"note,omitempty"`
}

// Finding is a security problem of the old setup.
type Finding struct {
	// ID names the kind of finding, such as "cve-2019-11043".
	ID      string `json:"id"`
	File    string `json:"file"`
	Line    int    `json:"line"`
	Message string `json:"message"`
	Fix     string `json:"fix"`
}

// Report is everything migrate did and found.
type Report struct {
	Server   string    `json:"server"` // "apache" or "nginx"
	Inputs   []string  `json:"inputs"`
	Entries  []Entry   `json:"entries"`
	Findings []Finding `json:"findings"`
}

// NeedsPerson reports whether something is left for a person: an
// untranslated directive, one to review, or a finding.
func (r *Report) NeedsPerson() bool {
	if len(r.Findings) > 0 {
		return true
	}
	for _, e := range r.Entries {
		if e.Status == Untranslated || e.Status == Review {
			return true
		}
	}
	return false
}

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "ferry migrate %s: %s\n", r.Server, strings.Join(r.Inputs, " "))
	counts := map[Status]int{}
	for _, e := range r.Entries {
		counts[e.Status]++
	}
	fmt.Fprintf(&b, "%d directives: %d translated, %d to review, %d untranslated, %d kept in the web server; %d findings\n",
		len(r.Entries), counts[Translated], counts[Review], counts[Untranslated], counts[Kept], len(r.Findings))
	for _, st := range []Status{Untranslated, Review, Translated, Kept} {
		if counts[st] == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n== %s ==\n", st)
		for _, e := range r.Entries {
			if e.Status != st {
				continue
			}
			fmt.Fprintf(&b, "%s:%d: %s", e.File, e.Line, e.Directive)
			if e.Key != "" {
				fmt.Fprintf(&b, " -> %s", e.Key)
			}
			b.WriteString("\n")
			if e.Note != "" {
				fmt.Fprintf(&b, "    %s\n", e.Note)
			}
		}
	}
	if len(r.Findings) > 0 {
		b.WriteString("\n== findings ==\n")
		for _, f := range r.Findings {
			fmt.Fprintf(&b, "%s:%d: [%s] %s\n    fix: %s\n", f.File, f.Line, f.ID, f.Message, f.Fix)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Result is what a migration produces.
type Result struct {
	// Config is the ferry configuration of the dynamic part.
	Config bridge.Config
	// Front is the reduced web-server snippet (front.conf).
	Front string
	// Report lists every directive and every finding.
	Report Report
}

// WriteDir writes ferry.toml, front.conf, report.txt and report.json into
// dir, creating it.
func (res *Result) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var toml, txt, js bytes.Buffer
	if err := bridge.WriteConfig(&toml, res.Config); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := res.Report.WriteText(&txt); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := res.Report.WriteJSON(&js); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for name, data := range map[string][]byte{"ferry.toml": toml.Bytes(), "front.conf": []byte(res.Front), "report.txt": txt.Bytes(), "report.json": js.Bytes()} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	return nil
}
