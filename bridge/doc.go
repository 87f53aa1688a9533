// Package bridge turns ferry's configuration into running fronts and backs:
// it listens on every front (HTTP, FastCGI and SCGI listeners, or the one
// request of a CGI program), routes each request by URL prefix to the back
// mounted there, serves static files from a document root, logs every
// request, and shuts down gracefully.
//
// Every front hands the bridge an HTTP request and every back is an
// [net/http.Handler], so any front reaches any back:
//
//	fronts (Config.Listen)                backs (Config.Mounts)
//	http://HOST:PORT, http+fd://N         cgi:DIR, cgi:SCRIPT, cgi:DIR?from=script-filename
//	fastcgi://, fastcgi+unix://,          fastcgi://, fastcgi+unix:// (php-fpm, any FastCGI app)
//	  fastcgi+fd://N                      fastcgi+exec:WORKER (workers ferry supervises)
//	scgi://, scgi+unix://, scgi+fd://N    scgi://, scgi+unix:// (uwsgi, any SCGI app)
//	cgi: (ferry run as a CGI program)     http://HOST:PORT[/base] (a reverse proxy)
//
// Addresses are spelled one way everywhere ([Address], [ParseAddress]).
// Each kind of back lives in its own file and is described in the table
// [Backends] returns: its schemes, the options its addresses take (name,
// type, default, doc), and how its handler is built. An option a kind does
// not declare is an error naming the ones it does, and the closest match.
// [Settings] are what every mount starts from; a mount may set some again
// for itself ([Mount.Own], [Config.MountSettings]).
//
// Every key of the configuration is declared once in [Keys] (name, type,
// default, doc, flag): ferry serve's flags, the TOML file ([LoadConfig],
// [ConfigFile]), its printing ([WriteConfig]) and the README's table
// ([ConfigReference]) all come from it and from [Backends]. [Check] checks
// a configuration without serving it, and [Server.Explain] says what a
// request would reach and with which meta-variables.
//
// A running Server takes another configuration with [Server.Reload]
// (fronts that stay keep their sockets, the mounts switch atomically for
// new requests, worker pools are kept or replaced once their requests are
// over) and hands its listening sockets over to a new process with
// [Server.Upgrade], whose side is [TakeHandover] and [Server.TakeOver].
package bridge
