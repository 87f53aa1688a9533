package bridge

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/ferrygw/ferry/fastcgi"
)

// BenchmarkMountMetrics measures what the admin listener's figures cost a
// request: the same FastCGI mount (a Go application on loopback, the
// fastest real backend) served by a ferry without an admin listener and by
// one with it, alternating blocks of requests in one run so that both see
// the same machine. It reports each side's time per request and the
// overhead in percent.
func BenchmarkMountMetrics(b *testing.B) {
	addr := helloFastCGI(b)
	build := func(admin bool) http.Handler {
		cfg, err := matrixConfig("http://127.0.0.1:0", []string{"/app/=fastcgi://" + addr + "?max_conns=4"})
		if err != nil {
			b.Fatal(err)
		}
		if admin {
			cfg.Admin, _ = ParseAdminAddress("http://127.0.0.1:0")
		}
		s, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		return s.Handler()
	}
	handlers := [2]http.Handler{build(false), build(true)}
	serve := func(h http.Handler) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/app/x?q=1", nil))
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
	perReq, overhead := alternate(b, handlers, serve)
	b.ReportMetric(perReq[0], "ns/plain-req")
	b.ReportMetric(perReq[1], "ns/metered-req")
	b.ReportMetric(overhead, "overhead-%")
}

// helloFastCGI starts a Go FastCGI application on loopback answering
// "hello", the fastest real backend, and returns its address; it stops
// at cleanup.
func helloFastCGI(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	app := &fastcgi.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	})}
	go app.Serve(l)
	b.Cleanup(func() { app.Close() })
	return l.Addr().String()
}

// alternate serves b.N requests, half through each of handlers (with
// serve), and returns each side's time per request and the second's
// overhead over the first in percent.
func alternate(b *testing.B, handlers [2]http.Handler, serve func(http.Handler)) (perReq [2]float64, overhead float64) {
	for _, h := range handlers { // connections made, GET_VALUES asked
		serve(h)
	}
	// Pairs of blocks, one on each side, in alternating order so that
	// drift cancels; the overhead is the median of the pairs' ratios, so
	// that a neighbour's burst on a shared machine does not decide it.
	const block = 16
	var spent [2]time.Duration
	var n [2]int
	var ratios []float64
	b.ReportAllocs()
	b.ResetTimer()
	for i, pair := 0, 0; i < b.N; pair++ {
		m := min(block, (b.N-i+1)/2)
		var took [2]time.Duration
		for k := range 2 {
			side := (k + pair) % 2
			start := time.Now()
			for range m {
				serve(handlers[side])
			}
			took[side] = time.Since(start)
			spent[side] += took[side]
			n[side] += m
			i += m
		}
		ratios = append(ratios, float64(took[1])/float64(took[0]))
	}
	b.StopTimer()
	slices.Sort(ratios)
	return [2]float64{float64(spent[0]) / float64(n[0]), float64(spent[1]) / float64(n[1])}, 100 * (ratios[len(ratios)/2] - 1)
}

// BenchmarkMountWrap measures the figures' own cost, in nanoseconds per
// request, on a mount whose handler does nothing: the absolute price
// BenchmarkMountMetrics compares with a real request.
func BenchmarkMountWrap(b *testing.B) {
	for _, admin := range []bool{false, true} {
		name := "plain"
		if admin {
			name = "metered"
		}
		b.Run(name, func(b *testing.B) {
			cfg := Config{}
			if admin {
				cfg.Admin, _ = ParseAdminAddress("http://127.0.0.1:0")
			}
			s, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			a, _ := ParseAddress("http://127.0.0.1:1")
			st := s.admin.newMount(Mount{Prefix: "/app/", Backend: a})
			rt := &router{routes: []route{{prefix: "/app/", backend: "noop", handler: st.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNoContent)
			}))}}}
			h := s.accessLog(rt)
			r := httptest.NewRequest("GET", "/app/x", nil)
			w := discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
}

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct{ h http.Header }

func (w discardWriter) Header() http.Header         { return w.h }
func (w discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w discardWriter) WriteHeader(int)             {}
