package cgi

import "net/http"

// Script returns the script r runs and how its path splits into
// SCRIPT_NAME and PATH_INFO, as ServeHTTP finds it, without running it; or
// the status ServeHTTP answers with instead (404, 403, 400, or 500 when
// the directory is unusable). ferry explain asks it.
func (d *Dir) Script(r *http.Request) (Script, int) {
	d.init()
	if d.rootErr != nil {
		return Script{}, http.StatusInternalServerError
	}
	return d.lookup(r)
}
