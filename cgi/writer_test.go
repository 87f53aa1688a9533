package cgi

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestResponseWriterBytes(t *testing.T) {
	tests := []struct {
		name    string
		method  string // request method; "" for a nil request
		handler func(t *testing.T, rw *ResponseWriter)
		want    string
	}{
		{
			name: "sniffed content type",
			handler: func(t *testing.T, rw *ResponseWriter) {
				mustWrite(t, rw, "hello")
			},
			want: "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello",
		},
		{
			name: "sniffed html",
			handler: func(t *testing.T, rw *ResponseWriter) {
				mustWrite(t, rw, "<!DOCTYPE html><p>x")
			},
			want: "Status: 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<!DOCTYPE html><p>x",
		},
		{
			name: "explicit WriteHeader(404) and content type",
			handler: func(t *testing.T, rw *ResponseWriter) {
				rw.Header().Set("Content-Type", "text/html")
				rw.WriteHeader(http.StatusNotFound)
				mustWrite(t, rw, "<h1>no</h1>")
				mustWrite(t, rw, "\n")
			},
			want: "Status: 404 Not Found\r\nContent-Type: text/html\r\n\r\n<h1>no</h1>\n",
		},
		{
			name: "explicit empty Content-Type stops sniffing",
			handler: func(t *testing.T, rw *ResponseWriter) {
				rw.Header()["Content-Type"] = nil
				mustWrite(t, rw, "hello")
			},
			want: "Status: 200 OK\r\n\r\nhello",
		},
		{
			name: "unknown status code",
			handler: func(t *testing.T, rw *ResponseWriter) {
				rw.WriteHeader(599)
			},
			want: "Status: 599 status code 599\r\n\r\n",
		},
		{
			name: "first WriteHeader wins",
			handler: func(t *testing.T, rw *ResponseWriter) {
				rw.WriteHeader(http.StatusCreated)
				rw.WriteHeader(http.StatusInternalServerError)
				mustWrite(t, rw, "ok")
				rw.WriteHeader(http.StatusBadGateway)
			},
			want: "Status: 201 Created\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nok",
		},
		{
			name: "1xx ignored",
			handler: func(t *testing.T, rw *ResponseWriter) {
				rw.WriteHeader(http.StatusContinue)
				rw.WriteHeader(http.StatusEarlyHints)
				rw.WriteHeader(http.StatusAccepted)
			},
			want: "Status: 202 Accepted\r\n\r\n",
		},
		{
			name: "204 has no body",
			handler: func(t *testing.T, rw *ResponseWriter) {
				rw.Header().Set("X-A", "1")
				rw.WriteHeader(http.StatusNoContent)
				if n, err := rw.Write([]byte("x")); n != 0 || !errors.Is(err, ErrBodyNotAllowed) {
					t.Errorf("Write after 204 = %d, %v; want 0, ErrBodyNotAllowed", n, err)
				}
			},
			want: "Status: 204 No Content\r\nX-A: 1\r\n\r\n",
		},
		{
			name: "304 has no body",
			handler: func(t *testing.T, rw *ResponseWriter) {
				rw.Header().Set("Etag", `"v1"`)
				rw.WriteHeader(http.StatusNotModified)
				if _, err := rw.Write([]byte("x")); !errors.Is(err, http.ErrBodyNotAllowed) {
					t.Errorf("Write after 304: error = %v; want ErrBodyNotAllowed", err)
				}
			},
			want: "Status: 304 Not Modified\r\nEtag: \"v1\"\r\n\r\n",
		},
		{
			name:   "HEAD drops the body, keeps the header",
			method: "HEAD",
			handler: func(t *testing.T, rw *ResponseWriter) {
				rw.Header().Set("Content-Type", "text/plain")
				rw.Header().Set("Content-Length", "5")
				if n, err := rw.Write([]byte("hello")); n != 5 || err != nil {
					t.Errorf("Write on HEAD = %d, %v; want 5, nil", n, err)
				}
			},
			want: "Status: 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n",
		},
		{
			name: "Flush sends the header with no body",
			handler: func(t *testing.T, rw *ResponseWriter) {
				rw.Header().Set("Content-Type", "text/event-stream")
				rw.Flush()
			},
			want: "Status: 200 OK\r\nContent-Type: text/event-stream\r\n\r\n",
		},
		{
			name: "header value with CR LF is sanitized",
			handler: func(t *testing.T, rw *ResponseWriter) {
				rw.Header().Set("Content-Type", "text/plain")
				rw.Header().Set("X-Evil", "a\r\nSet-Cookie: pwned=1\r\n\r\n<script>")
			},
			want: "Status: 200 OK\r\nContent-Type: text/plain\r\nX-Evil: a  Set-Cookie: pwned=1    <script>\r\n\r\n",
		},
		{
			name: "invalid header names dropped",
			handler: func(t *testing.T, rw *ResponseWriter) {
				rw.Header()["X Bad"] = []string{"1"}
				rw.Header()["X:Bad"] = []string{"1"}
				rw.Header()["X-Good"] = []string{"1"}
			},
			want: "Status: 200 OK\r\nX-Good: 1\r\n\r\n",
		},
		{
			name: "Status, Transfer-Encoding and Connection not emitted as fields",
			handler: func(t *testing.T, rw *ResponseWriter) {
				rw.Header().Set("Status", "500 Fake")
				rw.Header().Set("Transfer-Encoding", "chunked")
				rw.Header().Set("Connection", "close")
				rw.Header().Set("Content-Type", "text/plain")
				rw.WriteHeader(http.StatusAccepted)
				mustWrite(t, rw, "ok")
			},
			want: "Status: 202 Accepted\r\nContent-Type: text/plain\r\n\r\nok",
		},
		{
			name: "repeated fields in order, names sorted",
			handler: func(t *testing.T, rw *ResponseWriter) {
				rw.Header().Add("Set-Cookie", "b=2")
				rw.Header().Add("Set-Cookie", "a=1")
				rw.Header().Set("Content-Type", "text/plain")
				rw.Header().Set("Cache-Control", "no-store")
			},
			want: "Status: 200 OK\r\nCache-Control: no-store\r\nContent-Type: text/plain\r\nSet-Cookie: b=2\r\nSet-Cookie: a=1\r\n\r\n",
		},
		{
			name:    "Close with nothing written",
			handler: func(t *testing.T, rw *ResponseWriter) {},
			want:    "Status: 200 OK\r\n\r\n",
		},
		{
			name: "header changes after the first Write are not sent",
			handler: func(t *testing.T, rw *ResponseWriter) {
				mustWrite(t, rw, "a")
				rw.Header().Set("X-Late", "1")
				mustWrite(t, rw, "b")
			},
			want: "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nab",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			var r *http.Request
			if tt.method != "" {
				r = httptest.NewRequest(tt.method, "/", nil)
			}
			rw := NewResponseWriter(&buf, r)
			tt.handler(t, rw)
			if err := rw.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if got := buf.String(); got != tt.want {
				t.Errorf("ResponseWriter output = %q; want %q", got, tt.want)
			}
			// What we write, our own parser reads.
			resp, err := ReadResponse(bufio.NewReader(strings.NewReader(buf.String())), false, HeaderLimits{})
			if err != nil {
				t.Fatalf("ReadResponse(%q): %v", buf.String(), err)
			}
			if resp.Status != rw.Status() {
				t.Errorf("ReadResponse(output).Status = %d; want %d", resp.Status, rw.Status())
			}
			if len(resp.Header["Set-Cookie"]) > 0 && tt.name == "header value with CR LF is sanitized" {
				t.Errorf("header injection: ReadResponse(output) has Set-Cookie %q", resp.Header["Set-Cookie"])
			}
		})
	}
}

func mustWrite(t *testing.T, w io.Writer, s string) {
	t.Helper()
	if n, err := io.WriteString(w, s); n != len(s) || err != nil {
		t.Fatalf("Write(%q) = %d, %v; want %d, nil", s, n, err, len(s))
	}
}

func TestResponseWriterState(t *testing.T) {
	var buf bytes.Buffer
	rw := NewResponseWriter(&buf, nil)
	if rw.Status() != http.StatusOK || rw.HeaderWritten() || rw.Written() != 0 {
		t.Errorf("new ResponseWriter: Status, HeaderWritten, Written = %d, %v, %d; want 200, false, 0",
			rw.Status(), rw.HeaderWritten(), rw.Written())
	}
	rw.WriteHeader(http.StatusTeapot)
	if rw.Status() != http.StatusTeapot || rw.HeaderWritten() {
		t.Errorf("after WriteHeader(418): Status, HeaderWritten = %d, %v; want 418, false", rw.Status(), rw.HeaderWritten())
	}
	mustWrite(t, rw, "abc")
	mustWrite(t, rw, "de")
	if !rw.HeaderWritten() || rw.Written() != 5 {
		t.Errorf("after 5 bytes: HeaderWritten, Written = %v, %d; want true, 5", rw.HeaderWritten(), rw.Written())
	}
	if buf.Len() != 0 {
		t.Errorf("before Flush: %d bytes reached the writer; want 0 (buffered)", buf.Len())
	}
	if err := rw.FlushError(); err != nil {
		t.Fatalf("FlushError: %v", err)
	}
	if want := "Status: 418 I'm a teapot\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nabcde"; buf.String() != want {
		t.Errorf("after Flush: output = %q; want %q", buf.String(), want)
	}
}

// TestResponseWriterSharesBufioWriter: a *bufio.Writer is used as is, so
// bytes the caller buffered before stay in order.
func TestResponseWriterSharesBufioWriter(t *testing.T) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	rw := NewResponseWriter(bw, nil)
	mustWrite(t, rw, "x")
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	if want := "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nx"; buf.String() != want {
		t.Errorf("output = %q; want %q", buf.String(), want)
	}
}

// failWriter fails every write.
type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestResponseWriterWriteError(t *testing.T) {
	boom := errors.New("stdout closed")
	rw := NewResponseWriter(failWriter{boom}, nil)
	mustWrite(t, rw, "buffered") // fits in the buffer
	if err := rw.FlushError(); !errors.Is(err, boom) {
		t.Errorf("FlushError = %v; want %v", err, boom)
	}
	if _, err := rw.Write([]byte("more")); !errors.Is(err, boom) {
		t.Errorf("Write after failed flush: error = %v; want %v (sticky)", err, boom)
	}
	if err := rw.Close(); !errors.Is(err, boom) {
		t.Errorf("Close after failed flush = %v; want %v", err, boom)
	}
}

// TestResponseWriterFlushStreams: over a pipe, Flush makes the header block
// readable before the handler has written any body.
func TestResponseWriterFlushStreams(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	next := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		defer server.Close()
		rw := NewResponseWriter(server, nil)
		rw.Header().Set("Content-Type", "text/event-stream")
		rw.Flush()
		<-next
		if _, err := io.WriteString(rw, "data: 1\n\n"); err != nil {
			done <- err
			return
		}
		done <- rw.Close()
	}()
	br := bufio.NewReader(client)
	resp, err := ReadResponse(br, false, HeaderLimits{})
	if err != nil {
		t.Fatalf("ReadResponse after Flush: %v", err)
	}
	if got := resp.Header.Get("Content-Type"); got != "text/event-stream" {
		t.Errorf("Content-Type = %q; want %q", got, "text/event-stream")
	}
	close(next)
	body, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	if string(body) != "data: 1\n\n" {
		t.Errorf("body = %q; want %q", body, "data: 1\n\n")
	}
	if err := <-done; err != nil {
		t.Errorf("handler side: %v", err)
	}
}

// TestResponseWriterEmptyFirstWriteStillSniffs: net/http treats a zero-length
// Write as no body yet, so the Content-Type is still sniffed from the first
// real bytes (fmt.Fprint(w, "") is common); the doc promises "as net/http
// does".
func TestResponseWriterEmptyFirstWriteStillSniffs(t *testing.T) {
	var buf bytes.Buffer
	rw := NewResponseWriter(&buf, nil)
	mustWrite(t, rw, "")
	mustWrite(t, rw, "hello")
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	want := "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello"
	if got := buf.String(); got != want {
		t.Errorf("output = %q; want %q", got, want)
	}
}

// TestResponseWriterNoSniffWithContentEncoding: net/http does not sniff a
// body with a Content-Encoding (it would label gzip data application/x-gzip).
func TestResponseWriterNoSniffWithContentEncoding(t *testing.T) {
	var buf bytes.Buffer
	rw := NewResponseWriter(&buf, nil)
	rw.Header().Set("Content-Encoding", "gzip")
	mustWrite(t, rw, "\x1f\x8b\x08\x00\x00\x00\x00\x00")
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "Content-Type") {
		t.Errorf("output = %q; want no Content-Type", buf.String())
	}
}

// TestResponseWriterMatchesNetHTTP runs the same handlers against net/http's
// own ResponseWriter (httptest.ResponseRecorder) and compares status, fields
// and body.
func TestResponseWriterMatchesNetHTTP(t *testing.T) {
	handlers := map[string]http.HandlerFunc{
		"text": func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "plain text") },
		"json": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"a":1}`)
		},
		"error": func(w http.ResponseWriter, r *http.Request) { http.Error(w, "nope", http.StatusForbidden) },
		"redirect": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusMovedPermanently)
		},
		"notfound": http.NotFound,
		"cookies": func(w http.ResponseWriter, r *http.Request) {
			http.SetCookie(w, &http.Cookie{Name: "a", Value: "1"})
			http.SetCookie(w, &http.Cookie{Name: "b", Value: "2"})
			io.WriteString(w, "<html>")
		},
	}
	for name, h := range handlers {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/x", nil)
			rec := httptest.NewRecorder()
			h(rec, r)

			var buf bytes.Buffer
			rw := NewResponseWriter(&buf, r)
			h(rw, r)
			if err := rw.Close(); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(&buf)
			resp, err := ReadResponse(br, false, HeaderLimits{})
			if err != nil {
				t.Fatalf("ReadResponse(%q): %v", buf.String(), err)
			}
			body, _ := io.ReadAll(br)
			if resp.Status != rec.Code {
				t.Errorf("status = %d; net/http %d", resp.Status, rec.Code)
			}
			if string(body) != rec.Body.String() {
				t.Errorf("body = %q; net/http %q", body, rec.Body.String())
			}
			for k, want := range rec.Result().Header {
				if got := resp.Header[k]; strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("Header[%s] = %q; net/http %q", k, got, want)
				}
			}
		})
	}
}

func TestResponseWriterRun(t *testing.T) {
	for _, tt := range []struct {
		name      string
		h         http.HandlerFunc
		wantPanic bool
		abort     bool
		out       string // the start of what was sent, "" for no check
	}{
		{"returns", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }, false, false, "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nok"},
		{"panic before output", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Half", "done")
			panic("boom")
		}, true, false, "Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n500 Internal Server Error\n"},
		{"panic after output", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "half")
			w.(http.Flusher).Flush()
			panic("boom")
		}, true, true, ""},
		{"abort", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) }, true, true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			r := httptest.NewRequest("GET", "/x", nil)
			rw := NewResponseWriter(&out, r)
			p, abort := rw.Run(tt.h, r)
			if (p != nil) != tt.wantPanic || abort != tt.abort {
				t.Fatalf("Run = %v, %v; want panic %v, abort %v", p, abort, tt.wantPanic, tt.abort)
			}
			if !abort {
				rw.Close()
			}
			if tt.out != "" && out.String() != tt.out {
				t.Errorf("sent %q; want %q", out.String(), tt.out)
			}
		})
	}
}
