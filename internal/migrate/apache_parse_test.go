package migrate

import (
	"reflect"
	"testing"
)

// TestParseIncludeListStderr: apache2ctl -t -D DUMP_INCLUDES 2>&1 (or
// | tee) mixes httpd's warnings (AH00558 without a global ServerName) and
// "Syntax OK" into the list; they are not configuration files, and the
// list is still the list, not a configuration file of unknown directives.
func TestParseIncludeListStderr(t *testing.T) {
	const list = "Included configuration files:\n  (*) /etc/apache2/apache2.conf\n    (222) /etc/apache2/conf-enabled/a.conf\n"
	const ah = "AH00558: apache2: Could not reliably determine the server's fully qualified domain name, using 127.0.1.1. Set the 'ServerName' directive globally to suppress this message\n"
	want := &includeList{top: []string{"/etc/apache2/apache2.conf"}, children: map[string]map[int][]string{"/etc/apache2/apache2.conf": {222: {"/etc/apache2/conf-enabled/a.conf"}}}}
	tests := []struct {
		name, data string
		ok         bool
	}{
		{"plain", list, true},
		{"warning after", list + ah, true},
		{"warning before", ah + list, true},
		{"syntax ok", list + "Syntax OK\n", true},
		{"configuration", "ServerName x\n" + list, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, ok := parseIncludeList([]byte(tt.data))
			if ok != tt.ok {
				t.Fatalf("parseIncludeList(%q) ok = %v; want %v", tt.data, ok, tt.ok)
			}
			if ok && !reflect.DeepEqual(l, want) {
				t.Errorf("parseIncludeList(%q) = %+v; want %+v", tt.data, l, want)
			}
		})
	}
}
