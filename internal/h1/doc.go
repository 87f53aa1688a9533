// Package h1 is ferry's own HTTP/1.1 server for its plain-HTTP fronts:
// http.Handler is the interface, as with net/http, and a request reaches
// a handler as the same *http.Request with the same meaning, but a
// request costs the front less, and an idle connection holds less.
//
// What it does differently from net/http's server, and why (issue 11;
// the numbers are in benchmarks/README.md):
//
//   - No goroutine is started per request to notice a client that goes
//     away. A request that has been in its handler for two ticks of a
//     10 ms sweep gets one; shorter requests finish before it would
//     matter. Its context is cancelled when the client closes, as
//     net/http's is.
//   - Deadlines are set when they change by more than a quarter of their
//     span, not at each request, and the head of a request that came
//     whole in one read sets none.
//   - The response buffer is taken from a pool at the response and given
//     back at its end: an idle connection holds its 4 KiB read buffer,
//     its goroutine and its state, nothing else.
//   - Framing is strict where RFC 9112 says a message is an attack
//     (§ 6.1, § 5.2): Content-Length with Transfer-Encoding, an obs-fold
//     line, Transfer-Encoding in an HTTP/1.0 request, a Content-Length
//     over 128 bytes long: 400 and the connection closed, reported to
//     Server.Refused. Everything else follows net/http's server: its
//     answers to bad requests (400, 431, 501, 505; but 414 for a request
//     line over the limit, as nginx and Apache), 100-continue,
//     Content-Length or chunked responses, HEAD, Date, content
//     sniffing, trailers, HTTP/1.0 keep-alive, the 256 KiB of unread
//     body read before answering, Hijack, Flush, sendfile through
//     ReadFrom, and http.ResponseController's deadlines and full duplex.
//
// TLS and HTTP/2 are not its business: ferry serves them with net/http.
package h1
