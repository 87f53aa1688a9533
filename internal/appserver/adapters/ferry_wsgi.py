"""ferry's WSGI adapter: one worker of a pool ferry supervises.

ferry runs this file with the Python interpreter of the application and hands
it a listening unix socket (descriptor 0 unless FERRY_LISTEN_FD says another).
The worker loads the WSGI application once, then accepts one SCGI connection
at a time (protocol.txt: a netstring of NUL-separated headers, CONTENT_LENGTH
first, then the body) and answers it with a CGI response (a Status field,
the headers, a blank line, the body), closing the connection at its end.

The application is called as PEP 3333 says, to the letter: environ is a dict
of the CGI variables ferry sent, as latin-1 strings, with the wsgi.* keys;
wsgi.input reads exactly CONTENT_LENGTH bytes and then reports end of file;
wsgi.errors goes to ferry's log, each line marked with the request's ID;
start_response checks its arguments and returns the write() callable; the
headers go out with the first non-empty block, each block as soon as it is
produced; the iterable is closed whatever happens; wsgi.file_wrapper sends a
file with sendfile(2).

Configuration comes from the environment, which ferry sets and the worker
removes before it loads the application:

  FERRY_WSGI_FILE       a file holding the application, or
  FERRY_WSGI_MODULE     a module to import ("package.module")
  FERRY_WSGI_CALLABLE   the application's name in it (default "application")
  FERRY_WSGI_PYTHONPATH directories put first on sys.path, ':'-separated
  FERRY_MAX_REQUESTS    exit after this many requests (recycling)
  FERRY_SCOREBOARD      a directory where the worker says which request it
                        serves: a 256-byte file named by its pid holding the
                        request ID (NUL: idle; "!" and the ID: its answer
                        was cut short). ferry reads it to kill the worker of
                        a request past its hard timeout, and to tell a
                        response cut short from a whole one.
  FERRY_LISTEN_FD       the listening socket's descriptor (default 0)

SIGTERM stops the worker once the request in hand is answered. Only the
standard library is used.
"""

import importlib.machinery
import importlib.util
import mmap
import os
import signal
import socket
import stat
import sys
import time
import traceback

# PEP 3333: applications must not send hop-by-hop headers; "a server should
# consider it a fatal error".
HOP_BY_HOP = frozenset((
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade",
))
TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
MAX_HEADER = 16 << 20  # the longest SCGI header block taken
RECV = 65536
BOARD_SIZE = 256
LINGER = 5.0  # the longest wait for the rest of a body the application left


class Input:
    """wsgi.input: the request body, exactly CONTENT_LENGTH bytes of the
    connection, then end of file."""

    __slots__ = ("_sock", "_buf", "_left")

    def __init__(self, sock, buf, length):
        self._sock = sock
        self._buf = bytearray(buf[:length])
        self._left = length - len(self._buf)  # bytes still on the socket

    def _fill(self, want):
        """Receives up to want more bytes (at least one) into the buffer;
        returns False at the body's end."""
        if self._left <= 0:
            return False
        chunk = self._sock.recv(min(max(want, RECV), self._left))
        if not chunk:
            self._left = 0
            raise OSError("ferry wsgi: connection closed inside the request body")
        self._left -= len(chunk)
        self._buf += chunk
        return True

    def read(self, size=-1):
        if size is None or size < 0:
            while self._fill(self._left):
                pass
            size = len(self._buf)
        else:
            while len(self._buf) < size and self._fill(size - len(self._buf)):
                pass
        out = bytes(self._buf[:size])
        del self._buf[:size]
        return out

    def readline(self, size=-1):
        start = 0
        while True:
            i = self._buf.find(b"\n", start)
            if i >= 0:
                end = i + 1
                break
            if size is not None and 0 <= size <= len(self._buf):
                end = size
                break
            start = len(self._buf)
            if not self._fill(RECV):
                end = len(self._buf)
                break
        if size is not None and 0 <= size < end:
            end = size
        out = bytes(self._buf[:end])
        del self._buf[:end]
        return out

    def readlines(self, hint=-1):
        lines, total = [], 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line


def is_latin1(s):
    """Reports whether s encodes in latin-1, as PEP 3333 has a status and
    header values (the headers go out so)."""
    try:
        s.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def write_all(fd, data):
    while data:
        n = os.write(fd, data)
        data = data[n:]


class Errors:
    """wsgi.errors: text lines to ferry's log (the worker's stderr), each
    starting with "req_id=ID " so that it reads with ferry's own lines."""

    __slots__ = ("_prefix", "_part")

    def __init__(self, request_id):
        self._prefix = "req_id=%s " % (request_id or "-")
        self._part = ""

    def write(self, s):
        if type(s) is not str:
            raise TypeError("wsgi.errors.write() takes a str, not %s" % type(s).__name__)
        lines = (self._part + s).split("\n")
        self._part = lines.pop()
        if lines:
            self._emit(lines)

    def writelines(self, seq):
        for s in seq:
            self.write(s)

    def flush(self):
        if self._part:
            part, self._part = self._part, ""
            self._emit([part])

    def _emit(self, lines):
        text = "".join(self._prefix + line + "\n" for line in lines)
        try:
            write_all(2, text.encode("utf-8", "backslashreplace"))
        except OSError:
            pass  # no log to report to


class Console:
    """sys.stdout: what the application prints reaches ferry's log, its
    lines marked with the ID of the request in hand as wsgi.errors's are
    (through that request's Errors), or as they are outside a request.
    Anything else is asked of stderr."""

    def __init__(self, stderr):
        self.stderr = stderr
        self.errors = None  # the request in hand's wsgi.errors

    def write(self, s):
        if self.errors is None:
            return self.stderr.write(s)
        self.errors.write(s)
        return len(s)

    def writelines(self, seq):
        for s in seq:
            self.write(s)

    def flush(self):
        self.stderr.flush()  # a partial line waits for the request's end

    def __getattr__(self, name):
        return getattr(self.stderr, name)


class FileWrapper:
    """wsgi.file_wrapper: an iterable over a file in blocks, which the
    worker sends with sendfile(2) when the file is a regular one."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration


class Board:
    """This worker's line of the scoreboard (see the module's doc)."""

    def __init__(self, directory):
        self.path = None
        self.mm = None
        if not directory:
            return
        path = os.path.join(directory, str(os.getpid()))
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, BOARD_SIZE)
            self.mm = mmap.mmap(fd, BOARD_SIZE)
        finally:
            os.close(fd)
        self.path = path

    def busy(self, request_id):
        if self.mm is not None:
            self.mm[0:BOARD_SIZE] = request_id.encode("latin-1", "replace")[:BOARD_SIZE].ljust(BOARD_SIZE, b"\0")

    def idle(self):
        if self.mm is not None:
            self.mm[0] = 0

    def cut(self, request_id):
        """Says that the answer to request_id was cut short."""
        self.busy("!" + request_id)

    def remove(self):
        if self.path:
            try:
                os.unlink(self.path)
            except OSError:
                pass


class Stop(Exception):
    """The client (ferry) went away: nothing more can be sent."""


class Response:
    """One request's answer: start_response, write, and the iterable."""

    __slots__ = ("sock", "errors", "status", "headers", "length", "sent_headers", "sent")

    def __init__(self, sock, errors):
        self.sock = sock
        self.errors = errors
        self.status = None
        self.headers = None
        self.length = None  # the Content-Length the application gave
        self.sent_headers = False
        self.sent = 0  # body bytes sent

    def start_response(self, status, response_headers, exc_info=None):
        if exc_info:
            try:
                if self.sent_headers:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # PEP 3333: avoid a reference cycle
        elif self.status is not None:
            raise AssertionError("start_response called a second time without exc_info")
        if type(status) is not str:
            raise TypeError("status must be a str, not %s" % type(status).__name__)
        if len(status) < 4 or not status[:3].isdigit() or status[3] != " " or "\r" in status or "\n" in status:
            raise ValueError("status %r is not a code, a space and a reason phrase" % status)
        if not status.isascii() and not is_latin1(status):
            raise ValueError("status %r is not latin-1 (PEP 3333)" % status)
        if type(response_headers) is not list:
            raise TypeError("response_headers must be a list, not %s" % type(response_headers).__name__)
        length = None
        for h in response_headers:
            if type(h) is not tuple or len(h) != 2:
                raise TypeError("each response header must be a (name, value) tuple, not %r" % (h,))
            name, value = h
            if type(name) is not str or type(value) is not str:
                raise TypeError("header %r: name and value must be str" % (h,))
            if not name or not TOKEN.issuperset(name):
                raise ValueError("header name %r is not a token" % name)
            if "\r" in value or "\n" in value or "\0" in value:
                raise ValueError("header %s: value holds a CR, LF or NUL" % name)
            if not value.isascii() and not is_latin1(value):
                raise ValueError("header %s: value %r is not latin-1 (PEP 3333: ISO-8859-1, or RFC 2047)" % (name, value))
            lname = name.lower()
            if lname in HOP_BY_HOP:
                raise ValueError("hop-by-hop header %s is forbidden to applications (PEP 3333)" % name)
            if lname == "content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise ValueError("Content-Length %r is not a number" % value) from None
        self.status, self.headers, self.length = status, response_headers, length
        return self.write

    def head(self):
        if self.status is None:
            raise AssertionError("the application returned or wrote before calling start_response")
        out = ["Status: ", self.status, "\r\n"]
        for name, value in self.headers:
            out += (name, ": ", value, "\r\n")
        out.append("\r\n")
        head = "".join(out).encode("latin-1")
        self.sent_headers = True
        return head

    def send(self, data):
        """Sends a block, with the headers before the first one, at most
        Content-Length bytes in all."""
        if type(data) is not bytes:
            raise TypeError("the application must produce bytes, not %s" % type(data).__name__)
        if self.length is not None and self.sent + len(data) > self.length:
            data = data[: max(self.length - self.sent, 0)]
        if self.sent_headers:
            if not data:
                return
            out = data
        else:
            if not data:
                return  # PEP 3333: the headers wait for a non-empty block
            out = self.head() + data
        self.sent += len(data)
        try:
            self.sock.sendall(out)
        except OSError as e:
            raise Stop() from e

    def write(self, data):
        if type(data) is not bytes:
            raise TypeError("write() takes bytes, not %s" % type(data).__name__)
        if data:
            self.send(data)

    def finish(self):
        """Sends the headers of a response with an empty body."""
        if not self.sent_headers:
            try:
                self.sock.sendall(self.head())
            except OSError as e:
                raise Stop() from e

    def send_file(self, wrapper):
        """Sends a FileWrapper's file with sendfile(2); returns False if it
        is not a regular file, to be iterated instead."""
        f = wrapper.filelike
        try:
            fd = f.fileno()
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return False
            offset = f.tell()
        except (AttributeError, OSError, ValueError):
            return False
        count = None
        if self.length is not None:
            count = max(self.length - self.sent, 0)
        self.finish()
        try:
            self.sent += self.sock.sendfile(f, offset, count)
        except OSError as e:
            raise Stop() from e
        return True


def linger(conn, inp):
    """Ends the answer (shutdown), then reads and drops what is left of a
    request body the application did not read, until ferry closes, for at
    most LINGER seconds: a unix socket closed with unread data resets its
    peer, and ferry, its read of the answer's end failing, would cut an
    answer that went out whole.

    The shutdown ends the answer even when a process the application
    forked during the request (multiprocessing, os.fork) holds a copy of
    the connection: a close alone would leave ferry waiting for that
    process to exit, the client's connection held, up to the read
    timeout."""
    left = inp._left
    deadline = time.monotonic() + LINGER
    try:
        conn.shutdown(socket.SHUT_WR)
        while left > 0:
            wait = deadline - time.monotonic()
            if wait <= 0:
                return
            conn.settimeout(wait)
            n = len(conn.recv(min(left, RECV)))
            if not n:
                return  # ferry closed
            left -= n
    except OSError:
        pass  # ferry has gone, or LINGER passed: nothing more to do


def internal_error(resp, errors, where):
    errors.write("ferry wsgi: %s:\n%s" % (where, traceback.format_exc()))
    errors.flush()
    if resp.sent_headers:
        return False  # cut short: ferry must not take it for whole
    body = b"500 Internal Server Error\n"
    try:
        resp.sock.sendall(b"Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: "
                          + str(len(body)).encode() + b"\r\n\r\n" + body)
    except OSError:
        pass
    return True


def read_header(sock):
    """Reads the SCGI netstring; returns (headers, rest of the bytes read),
    or None for a connection closed or malformed."""
    data = sock.recv(RECV)
    colon = data.find(b":")
    while colon < 0:
        if not data or len(data) > 10 or not data.isdigit():
            return None
        more = sock.recv(RECV)
        if not more:
            return None
        data += more
        colon = data.find(b":")
    size = data[:colon]
    if not size.isdigit() or int(size) > MAX_HEADER:
        return None
    end = colon + 1 + int(size)
    while len(data) <= end:
        more = sock.recv(max(RECV, end + 1 - len(data)))
        if not more:
            return None
        data += more
    if data[end] != 0x2C:  # ','
        return None
    return data[colon + 1:end], data[end + 1:]


class Worker:
    def __init__(self, app, board, max_requests, console=None):
        self.app = app
        self.board = board
        self.max_requests = max_requests
        self.console = console or Console(sys.stderr)
        self.idle = True
        self.stopping = False

    def on_term(self, signum, frame):
        self.stopping = True
        if self.idle:
            raise SystemExit(0)

    def serve(self, lsock):
        served = 0
        while not self.stopping:
            self.idle = True
            try:
                conn, _ = lsock.accept()
            except InterruptedError:
                continue
            self.idle = False
            try:
                self.handle(conn)
            finally:
                conn.close()
            served += 1
            if self.max_requests and served >= self.max_requests:
                return

    def handle(self, conn):
        got = read_header(conn)
        if got is None:
            return
        block, rest = got
        items = block.decode("latin-1").split("\0")
        environ = dict(zip(items[0::2], items[1::2]))
        environ.setdefault("SCRIPT_NAME", "")
        environ.setdefault("PATH_INFO", "")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        request_id = environ.get("HTTP_X_REQUEST_ID", "")
        errors = Errors(request_id)
        scheme = environ.get("REQUEST_SCHEME")
        if scheme not in ("http", "https"):
            scheme = "https" if environ.get("HTTPS", "off").lower() in ("on", "1") else "http"
        environ["wsgi.version"] = (1, 0)
        environ["wsgi.url_scheme"] = scheme
        inp = environ["wsgi.input"] = Input(conn, rest, length)
        environ["wsgi.input_terminated"] = True
        environ["wsgi.errors"] = errors
        environ["wsgi.multithread"] = False
        environ["wsgi.multiprocess"] = True
        environ["wsgi.run_once"] = False
        environ["wsgi.file_wrapper"] = FileWrapper
        self.board.busy(request_id)
        self.console.errors = errors
        try:
            whole = self.run(conn, environ, errors)
        finally:
            self.console.errors = None
        errors.flush()
        # Before the close: once ferry sees the end of the connection, the
        # board must say whether the answer went out whole.
        if whole:
            self.board.idle()
        else:
            self.board.cut(request_id)
        linger(conn, inp)
        conn.close()

    def run(self, conn, environ, errors):
        """Calls the application and sends its answer; returns whether the
        answer went out whole."""
        resp = Response(conn, errors)
        result = None
        try:
            result = self.app(environ, resp.start_response)
            if type(result) is FileWrapper and resp.send_file(result):
                return True
            if type(result) in (list, tuple) and len(result) == 1 and resp.length is None \
                    and resp.status is not None and not resp.sent_headers and type(result[0]) is bytes:
                # PEP 3333: with one block the server may give its length.
                resp.headers = resp.headers + [("Content-Length", str(len(result[0])))]
                resp.length = len(result[0])
            for block in result:
                resp.send(block)
            resp.finish()
            return True
        except Stop:
            return True  # ferry has gone: nobody to tell
        except Exception:
            return internal_error(resp, errors, "the application failed")
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    errors.write("ferry wsgi: closing the response iterable:\n%s" % traceback.format_exc())


def load_application():
    env = os.environ
    path = env.pop("FERRY_WSGI_FILE", "")
    module = env.pop("FERRY_WSGI_MODULE", "")
    name = env.pop("FERRY_WSGI_CALLABLE", "") or "application"
    extra = [p for p in env.pop("FERRY_WSGI_PYTHONPATH", "").split(os.pathsep) if p]
    # sys.path[0] is this adapter's directory: the application's takes
    # its place, as if it had been run itself.
    home = os.path.dirname(os.path.abspath(path)) if path else os.getcwd()
    sys.path[0:1] = extra + [home]
    if path:
        stem = os.path.splitext(os.path.basename(path))[0]
        modname = stem if stem.isidentifier() and stem not in sys.modules else "ferry_wsgi_application"
        loader = importlib.machinery.SourceFileLoader(modname, path)
        spec = importlib.util.spec_from_file_location(modname, path, loader=loader)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[modname] = mod
        # Compiled from its source at each start, as mod_wsgi does, never
        # from __pycache__: a cached .pyc is trusted on the file's mtime
        # (whole seconds) and size, so a file rewritten within the second
        # it was cached, at the same size, would run its old code after a
        # reload.
        with open(path, "rb") as f:
            source = f.read()
        exec(compile(source, path, "exec"), mod.__dict__)
        where = path
    else:
        mod = importlib.import_module(module)
        where = "module " + module
    app = mod
    for part in name.split("."):
        try:
            app = getattr(app, part)
        except AttributeError:
            raise SystemExit("ferry wsgi: %s has no %s" % (where, name)) from None
    if not callable(app):
        raise SystemExit("ferry wsgi: %s in %s is not callable" % (name, where))
    return app


def untrap(handler):
    """Gives SIGTERM back its default action in a process the application
    forked (multiprocessing, os.fork), unless the application has set a
    handler of its own: the pool sends SIGTERM to the worker's whole
    process group, and such a process, which serves no request, should
    end on it as any process does, not wait for a request to finish. The
    worker, which waits for its multiprocessing children as it exits,
    then exits when they do, rather than be killed at the end of the
    grace."""
    try:
        if signal.getsignal(signal.SIGTERM) == handler:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except ValueError:
        pass  # not the main thread: the handler cannot be changed here


def main():
    fd = int(os.environ.pop("FERRY_LISTEN_FD", "0") or 0)
    max_requests = int(os.environ.pop("FERRY_MAX_REQUESTS", "0") or 0)
    board_dir = os.environ.pop("FERRY_SCOREBOARD", "")
    # The listening socket leaves descriptor 0 (close-on-exec), so that
    # programs the application runs do not inherit it as their stdin.
    lsock = socket.socket(fileno=os.dup(fd))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, fd)
    os.close(null)
    # print() reaches ferry's log: stdout is /dev/null in a pool.
    console = sys.stdout = Console(sys.stderr)
    worker = Worker(None, None, max_requests, console)
    signal.signal(signal.SIGTERM, worker.on_term)
    os.register_at_fork(after_in_child=lambda: untrap(worker.on_term))
    worker.app = load_application()
    # The board's line appears once the application has loaded: ferry
    # waits for it to know the first worker is ready.
    worker.board = Board(board_dir)
    try:
        worker.serve(lsock)
    finally:
        worker.board.remove()


if __name__ == "__main__":
    main()
