package fastcgi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
)

// ferry's own Server answers FCGI_MPXS_CONNS=1, so a Client with one
// connection allowed multiplexes every request over it.

func TestClientMultiplexesOneConnection(t *testing.T) {
	leakcheck.Check(t)
	const n = 20
	var arrived sync.WaitGroup
	arrived.Add(n)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	rl, _ := startApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/post" {
			sum := sha256.New()
			io.Copy(sum, r.Body)
			fmt.Fprintf(w, "%x", sum.Sum(nil))
			return
		}
		arrived.Done()
		select { // every request is in the handler at once: one connection carries them all
		case <-all:
		case <-time.After(10 * time.Second):
			http.Error(w, "not all requests arrived", 500)
			return
		}
		io.WriteString(w, "hello "+r.URL.Path)
	}))
	c := &Client{Network: "tcp", Address: rl.Addr().String(), MaxConns: 1}
	defer c.CloseIdle()

	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := fmt.Sprintf("/r%d", i)
			got, err := doBody(t, c, context.Background(), &Request{Params: clientParams(path)})
			if err != nil || got != "hello "+path {
				errs <- fmt.Errorf("%s: %q, %v", path, got, err)
			}
		}()
	}
	// Bodies interleave too: 1 MiB each, record by record.
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := bytes.Repeat([]byte{byte('a' + i)}, 1<<20)
			want := fmt.Sprintf("%x", sha256.Sum256(body))
			params := append(clientParams("/post"), "REQUEST_METHOD=POST", fmt.Sprintf("CONTENT_LENGTH=%d", len(body)))
			got, err := doBody(t, c, context.Background(), &Request{Params: params, Body: bytes.NewReader(body)})
			if err != nil || got != want {
				errs <- fmt.Errorf("POST %d: %q, %v; want %s", i, got, err, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := rl.accepted(); got != 2 {
		t.Errorf("%d connections; want 2 (GET_VALUES, then one multiplexed)", got)
	}
	if c.slots.Running() != 0 {
		t.Errorf("%d requests still counted in progress", c.slots.Running())
	}
}

// A response nobody reads yet must not stall the others on its connection:
// it is buffered (memory, then a temporary file) and arrives whole later.
func TestClientMultiplexSlowConsumer(t *testing.T) {
	leakcheck.Check(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 5<<20/16)
	rl, _ := startApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Write(big)
			return
		}
		io.WriteString(w, "small")
	}))
	c := &Client{Network: "tcp", Address: rl.Addr().String(), MaxConns: 1}
	defer c.CloseIdle()
	resp, err := c.Do(context.Background(), &Request{Params: clientParams("/big")})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Stdout.Close()
	for i := range 5 {
		got, err := doBody(t, c, context.Background(), &Request{Params: clientParams("/small")})
		if err != nil || got != "small" {
			t.Fatalf("request %d behind an unread 5 MB response: %q, %v", i, got, err)
		}
	}
	all, err := io.ReadAll(resp.Stdout)
	if err != nil {
		t.Fatal(err)
	}
	if _, body, _ := bytes.Cut(all, []byte("\r\n\r\n")); !bytes.Equal(body, big) {
		t.Errorf("the big response came back %d bytes, changed; want %d bytes as sent", len(body), len(big))
	}
	if got := rl.accepted(); got != 2 {
		t.Errorf("%d connections; want 2 (GET_VALUES, then one multiplexed)", got)
	}
}

// Cancelling one request aborts it alone (ABORT_REQUEST on its ID); a read
// timeout on one is a 504 for it alone.
func TestClientMultiplexAbortAndTimeout(t *testing.T) {
	leakcheck.Check(t)
	cancelled := make(chan struct{}, 1)
	rl, _ := startApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hang":
			select {
			case <-r.Context().Done():
				cancelled <- struct{}{}
			case <-time.After(10 * time.Second):
			}
			return
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		}
		io.WriteString(w, "ok "+r.URL.Path)
	}))
	c := &Client{Network: "tcp", Address: rl.Addr().String(), MaxConns: 1, ReadTimeout: 2 * time.Second}
	defer c.CloseIdle()

	ctx, cancel := context.WithCancel(context.Background())
	hung := make(chan error, 1)
	go func() {
		_, err := c.Do(ctx, &Request{Params: clientParams("/hang")})
		hung <- err
	}()
	slow := make(chan error, 1)
	go func() {
		got, err := doBody(t, c, context.Background(), &Request{Params: clientParams("/slow")})
		if err == nil && got != "ok /slow" {
			err = fmt.Errorf("got %q", got)
		}
		slow <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	if err := <-hung; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled request: %v; want context.Canceled", err)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Error("the application never saw the abort")
	}
	if err := <-slow; err != nil {
		t.Errorf("request sharing the connection with the aborted one: %v", err)
	}

	// A read timeout: 504 for that request; the connection goes on.
	c2 := &Client{Network: "tcp", Address: rl.Addr().String(), MaxConns: 1, ReadTimeout: 200 * time.Millisecond}
	defer c2.CloseIdle()
	_, err := c2.Do(context.Background(), &Request{Params: clientParams("/hang")})
	if cgi.StatusOf(err) != http.StatusGatewayTimeout {
		t.Errorf("silent request: %v (status %d); want 504", err, cgi.StatusOf(err))
	}
	if got, err := doBody(t, c2, context.Background(), &Request{Params: clientParams("/after")}); err != nil || got != "ok /after" {
		t.Errorf("after a timed-out request: %q, %v", got, err)
	}
	<-cancelled
	deadline := time.Now().Add(5 * time.Second)
	for (c.slots.Running() != 0 || c2.slots.Running() != 0) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if c.slots.Running() != 0 || c2.slots.Running() != 0 {
		t.Errorf("requests still counted in progress after END_REQUEST: %d, %d", c.slots.Running(), c2.slots.Running())
	}
}

// The application going away fails every request on the connection with
// a 502; the next request gets a new connection.
func TestClientMultiplexConnectionLost(t *testing.T) {
	leakcheck.Check(t)
	started := make(chan struct{}, 3)
	rl, _ := startApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/wait") {
			started <- struct{}{}
			<-r.Context().Done()
			return
		}
		io.WriteString(w, "ok")
	}))
	c := &Client{Network: "tcp", Address: rl.Addr().String(), MaxConns: 1}
	defer c.CloseIdle()
	errs := make(chan error, 3)
	for i := range 3 {
		go func() {
			_, err := c.Do(context.Background(), &Request{Params: clientParams(fmt.Sprintf("/wait%d", i))})
			errs <- err
		}()
	}
	for range 3 {
		<-started
	}
	rl.closeAll()
	for range 3 {
		if err := <-errs; !errors.Is(err, ErrNoEndRequest) || cgi.StatusOf(err) != http.StatusBadGateway {
			t.Errorf("request on a lost connection: %v (status %d); want ErrNoEndRequest, 502", err, cgi.StatusOf(err))
		}
	}
	if got, err := doBody(t, c, context.Background(), &Request{Params: clientParams("/next")}); err != nil || got != "ok" {
		t.Errorf("after the connection was lost: %q, %v", got, err)
	}
	if c.slots.Running() != 0 {
		t.Errorf("%d requests still counted in progress", c.slots.Running())
	}
}
