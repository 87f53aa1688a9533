package bridge

import (
	"net/http"
	"os"
	"strings"

	"github.com/ferrygw/ferry/internal/appserver"
)

// psgiBackend runs a Perl PSGI application in workers ferry supervises, as
// plackup and Starman do.
func psgiBackend() Backend {
	return Backend{
		Schemes: []string{"psgi"},
		Summary: "a Perl PSGI application (.psgi) in workers ferry starts and supervises",
		Options: append([]Option{
			{Name: "perl", Type: String, Default: "perl from PATH", Doc: "the interpreter"},
			{Name: "chdir", Type: String, Default: "the file's directory", Doc: "the workers' working directory"},
			{Name: "lib", Type: String, Default: "none", Doc: "directories put first on @INC (perl -I), separated by :"},
		}, appOptions()...),
		Settings: workerSettings(),
		build:    buildPSGI,
	}
}

func buildPSGI(b *builder, m Mount, o options) (http.Handler, error) {
	app := &appserver.PSGI{Perl: o.str("perl"), File: m.Backend.Path, Dir: o.str("chdir")}
	if l := o.str("lib"); l != "" {
		app.Lib = strings.Split(l, string(os.PathListSeparator))
	}
	return b.appBack(m, o, app, "PSGI workers", "psgi-workers")
}
