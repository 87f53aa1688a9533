package fcgitest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"time"
)

// refServer is a small FastCGI responder that runs testdata's scripts like
// fcgiwrap does, but multiplexes, honours ABORT_REQUEST and caps params. It
// exists to test the suite: with no fault it passes every check, and with
// fault set to a check's name it misbehaves in the way that check looks for.
type refServer struct {
	scripts string // directory holding echo.sh and sleep.sh
	fault   string // name of the check to fail, or ""
	ctx     context.Context

	wg sync.WaitGroup // connections

	mu   sync.Mutex
	leak [][]byte // params kept forever under fault "params-10mb"
}

const (
	refMaxParams = 1 << 20 // answer 431 beyond this
	refMaxStdin  = 1 << 20
)

// startRef serves l until ctx is done, then waits for its connections.
func startRef(ctx context.Context, l net.Listener, scripts, fault string) (wait func()) {
	s := &refServer{scripts: scripts, fault: fault, ctx: ctx}
	stop := context.AfterFunc(ctx, func() { l.Close() })
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			c := &refConn{s: s, nc: nc, reqs: map[uint16]*refReq{}}
			s.wg.Add(1)
			go c.serve()
		}
	}()
	return func() { stop(); l.Close(); s.wg.Wait() }
}

type refConn struct {
	s   *refServer
	nc  net.Conn
	wmu sync.Mutex     // serialises writes
	wg  sync.WaitGroup // running requests

	mu   sync.Mutex // protects reqs
	reqs map[uint16]*refReq
}

type refReq struct {
	id         uint16
	keep       bool
	params     []byte
	paramsDone bool
	stdin      []byte
	started    bool // its goroutine runs and will send END_REQUEST
	ctx        context.Context
	cancel     context.CancelFunc
}

func (c *refConn) write(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	// A failed write shows up as a failed read in serve, which closes.
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.nc.Write(b)
}

func (c *refConn) end(id uint16, appStatus uint32, ps protocolStatus) {
	body := binary.BigEndian.AppendUint32(nil, appStatus)
	c.write(appendRecord(nil, typeEndRequest, id, append(body, byte(ps), 0, 0, 0), 0))
}

// respond sends a whole CGI response for a request that never started.
func (c *refConn) respond(id uint16, cgi string) {
	c.write(append(appendRecord(nil, typeStdout, id, []byte(cgi), 0), appendRecord(nil, typeStdout, id, nil, 0)...))
	c.end(id, 0, statusRequestComplete)
}

func (c *refConn) serve() {
	defer c.s.wg.Done()
	defer func() {
		c.mu.Lock()
		for _, r := range c.reqs {
			r.cancel()
		}
		c.mu.Unlock()
		c.wg.Wait()
		c.nc.Close()
	}()
	stop := context.AfterFunc(c.s.ctx, func() { c.nc.Close() })
	defer stop()
	br := bufio.NewReader(c.nc)
	for {
		if !c.handle(br) {
			if c.s.fault == "lying-lengths" {
				<-c.s.ctx.Done() // never give up on a connection
			}
			return
		}
	}
}

// handle reads and handles one record; false means close the connection.
func (c *refConn) handle(br *bufio.Reader) bool {
	var h [headerLen]byte
	if _, err := io.ReadFull(br, h[:]); err != nil || h[0] != version1 {
		return false
	}
	t, id := recType(h[1]), binary.BigEndian.Uint16(h[2:])
	content := make([]byte, binary.BigEndian.Uint16(h[4:]))
	if _, err := io.ReadFull(br, content); err != nil {
		return false
	}
	if c.s.fault != "padding-255" {
		if _, err := br.Discard(int(h[6])); err != nil {
			return false
		}
	}
	if id == nullID {
		c.management(t, content)
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reqs[id]
	switch {
	case t == typeBeginRequest:
		if r != nil || len(content) != 8 {
			return false
		}
		switch {
		case binary.BigEndian.Uint16(content) != roleResponder:
			c.end(id, 0, statusUnknownRole)
		case c.s.fault == "interleaved" && len(c.reqs) > 0:
			c.end(id, 0, statusCantMpxConn)
		default:
			r = &refReq{id: id, keep: content[2]&flagKeepConn != 0}
			r.ctx, r.cancel = context.WithCancel(c.s.ctx)
			c.reqs[id] = r
		}
	case r == nil:
		// Records of unknown requests are ignored (§ 3.3).
	case t == typeParams && !r.paramsDone:
		if len(content) == 0 {
			r.paramsDone = true
			break
		}
		r.params = append(r.params, content...)
		if len(r.params) > refMaxParams && c.s.fault != "params-10mb" {
			c.respond(id, "Status: 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\n\r\nparams too large\n")
			return false
		}
	case t == typeStdin && r.paramsDone && !r.started:
		if len(content) > 0 {
			limit := refMaxStdin
			if c.s.fault == "stdin-300k" {
				limit = 64 << 10 // silently cut
			}
			r.stdin = append(r.stdin, content[:min(len(content), max(0, limit-len(r.stdin)))]...)
			break
		}
		r.started = true
		c.wg.Add(1)
		go c.run(r)
	case t == typeAbortRequest:
		if c.s.fault == "abort" {
			break
		}
		if r.started {
			r.cancel() // run sends END_REQUEST once the script is gone
			break
		}
		delete(c.reqs, id)
		r.cancel()
		c.end(id, 0, statusRequestComplete)
	default:
		return false // out of order
	}
	return true
}

// management answers GET_VALUES and unknown management records (§ 4).
func (c *refConn) management(t recType, content []byte) {
	switch {
	case t == typeGetValues:
		pairs, _ := parsePairs(content)
		known := map[string]string{"FCGI_MAX_CONNS": "100", "FCGI_MAX_REQS": "100", "FCGI_MPXS_CONNS": "1"}
		var out []byte
		for _, p := range pairs {
			if v, ok := known[p.Name]; ok {
				out = appendPair(out, p.Name, v)
			}
		}
		rec := appendRecord(nil, typeGetValuesResult, nullID, out, 0)
		if c.s.fault == "get-values" { // like net/http/fcgi
			rec = appendRecord(rec, typeGetValuesResult, nullID, nil, 0)
		}
		c.write(rec)
	case c.s.fault == "unknown-type":
	default:
		c.write(appendRecord(nil, typeUnknownType, nullID, []byte{byte(t), 0, 0, 0, 0, 0, 0, 0}, 0))
	}
}

// run executes the script of a request whose STDIN is complete.
func (c *refConn) run(r *refReq) {
	defer c.wg.Done()
	defer r.cancel()
	if c.s.fault == "params-10mb" {
		c.s.mu.Lock()
		c.s.leak = append(c.s.leak, r.params)
		c.s.mu.Unlock()
	}
	var status uint32
	// The request leaves the table before END_REQUEST goes out: the client
	// may reuse its ID as soon as it reads it (spec § 3.3).
	forget := func() {
		c.mu.Lock()
		delete(c.reqs, r.id)
		c.mu.Unlock()
	}
	pairs, err := parsePairs(r.params)
	if err != nil {
		forget()
		c.respond(r.id, "Status: 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nbad params\n")
	} else {
		env := []string{"PATH=/usr/bin:/bin"}
		var script string
		for _, p := range pairs {
			env = append(env, p.Name+"="+p.Value)
			if p.Name == "SCRIPT_NAME" {
				script = filepath.Join(c.s.scripts, path.Base(p.Value))
			}
		}
		cmd := exec.CommandContext(r.ctx, script)
		cmd.Env = env
		cmd.Stdin = bytes.NewReader(r.stdin)
		cmd.Stdout = &refStdout{c: c, id: r.id}
		cmd.WaitDelay = time.Second
		if err := cmd.Run(); err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				c.write(appendRecord(nil, typeStdout, r.id, []byte("Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n"), 0))
			}
			status = 1
		}
		forget()
		c.write(appendRecord(nil, typeStdout, r.id, nil, 0))
		c.end(r.id, status, statusRequestComplete)
	}
	if (!r.keep && c.s.fault != "responder") || c.s.fault == "keep-conn" {
		// Without KEEP_CONN the application closes the connection (§ 5.1);
		// serve's read fails and it returns.
		c.nc.Close()
	}
}

// refStdout turns the script's output into STDOUT records.
type refStdout struct {
	c  *refConn
	id uint16
}

func (w *refStdout) Write(p []byte) (int, error) {
	for b := p; len(b) > 0; {
		n := min(len(b), maxContent)
		w.c.write(appendRecord(nil, typeStdout, w.id, b[:n], 0))
		b = b[n:]
	}
	return len(p), nil
}
