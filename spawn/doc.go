// Package spawn starts and supervises pools of long-lived worker processes
// that share one listening unix socket, as mod_fcgid, spawn-fcgi (-F N)
// and lighttpd's "bin-path" do. It knows nothing of the protocol the
// workers speak: a FastCGI pool, an SCGI pool and an application server's
// pool are the same [Pool], and a client of the matching framing dials
// [Pool.Network] and [Pool.Address].
//
// # The socket
//
// The pool creates the socket in a private directory (mode 0700: only
// ferry's user can connect), named after ferry's pid and start time
// (ferry-spawn-PID-START-N in TempDir: Start first removes those of
// processes no longer running, such as a ferry killed with SIGKILL), and
// listens on it itself, so that no request is refused while a worker
// starts or is replaced. Each worker is handed
// the listening socket, in blocking mode, and accepts connections on it;
// the kernel gives each connection to one of the workers waiting in
// accept. By default the socket is descriptor 0, where FastCGI puts it
// (FCGI_LISTENSOCK_FILENO, FastCGI Specification § 2.2) and lighttpd's
// mod_scgi puts it, and where php-cgi, Perl's FCGI module, Python's flup,
// and ferry's own fastcgi.Serve(nil, h) and scgi.Serve(nil, h) look for
// it; any program can take it there (Perl's
// IO::Socket::UNIX->new_from_fd(0, 'r'), Python's socket.socket(fileno=0)). A worker that
// is told a descriptor number instead, as gunicorn's --bind fd://3 or
// Python's socket.socket(fileno=3), gets it there with [Pool.ListenFD]
// and the number in its Args or Env.
//
// # Supervision
//
// Each worker runs in its own process group, with its stdout on /dev/null
// and its stderr logged line by line with its pid. A worker that exits for
// any reason is started again: at once when it ran a while and exited
// cleanly (as a worker recycled after MaxRequests does), after a growing
// delay when it failed. [Pool.Stop] stops every worker's process group
// (SIGTERM, then SIGKILL after KillGrace), reaps them all, and removes the
// socket; a worker that exits has what is left of its group killed.
//
// If ferry ends without stopping the pool (SIGKILL, a crash), the workers
// die of their parent-death signal (Linux), and what they started dies
// with their process groups: each group holds a guard, a /bin/sh started
// in it that ignores the signals the group gets and waits on a pipe whose
// write end only ferry holds; when ferry is gone the kernel closes that
// end, and the guard kills its group (on systems without a parent-death
// signal, the worker with it). A process that leaves the group (setsid,
// setpgid, a daemon) is out of the guard's reach. Guards are ferry's
// children, one per worker, and Stop returns once they are reaped.
//
// With a Probe, [Pool.Start] returns once the first worker serves (a
// FastCGI worker answers FCGI_GET_VALUES), and fails with [ErrNotStarted],
// the program's exit status and the end of its stderr, if that worker
// exits first: a program that cannot start is an error at start, not a
// pool that restarts it forever while clients wait.
//
// Workers accept connections themselves, so ferry cannot count a
// worker's requests nor tell which worker is idle. Recycling after
// MaxRequests is the worker's own, asked for through an environment
// variable (MaxRequestsEnv); on-demand scaling counts the requests in
// progress that clients report with [Pool.Busy].
//
// # A FastCGI pool
//
// A pool of php-cgi workers reached with ferry's FastCGI client, as
// "fastcgi+exec:" mounts build it:
//
//	p := &spawn.Pool{
//		Path:           "/usr/bin/php-cgi",
//		Workers:        4,
//		Env:            []string{"PHP_FCGI_CHILDREN=0"}, // the pool manages the processes
//		MaxRequests:    500,
//		MaxRequestsEnv: fastcgi.MaxRequestsEnv, // PHP_FCGI_MAX_REQUESTS
//	}
//	if err := p.Start(ctx); err != nil { ... }
//	defer p.Stop(context.Background())
//	c := &fastcgi.Client{Network: p.Network(), Address: p.Address(), MaxConns: p.Size(), NoKeepConn: true}
//
// MaxConns matters: a worker such as php-cgi serves one connection at a
// time, and a kept connection holds it. An SCGI pool is the same with
// scgi.Client, which opens a connection per request anyway.
package spawn
