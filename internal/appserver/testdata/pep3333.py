"""A WSGI application that shows what ferry's adapter gives it (PEP 3333),
one behaviour per path, for appserver's tests."""
import json
import os
import sys
import time

STATE = os.environ.get("TEST_STATE", "")
counter = {"n": 0}


def respond(start_response, body, status="200 OK", ctype="text/plain"):
    start_response(status, [("Content-Type", ctype)])
    return [body]


class Closing:
    """An iterable whose close() leaves a mark in STATE."""

    def __init__(self, blocks, fail=False):
        self.blocks = blocks
        self.fail = fail

    def __iter__(self):
        for b in self.blocks:
            yield b
        if self.fail:
            raise RuntimeError("failing after the first block")

    def close(self):
        with open(os.path.join(STATE, "closed"), "a") as f:
            f.write("closed\n")


def application(environ, start_response):
    path = environ["PATH_INFO"]
    counter["n"] += 1
    if path == "/environ":
        out = {}
        for k, v in environ.items():
            if isinstance(v, str):
                out[k] = v
            else:
                out[k] = repr(type(v).__name__) if not isinstance(v, (bool, tuple)) else v
        out["input_type"] = type(environ["wsgi.input"]).__name__
        out["pid"] = os.getpid()
        out["count"] = counter["n"]
        out["sys_path0"] = sys.path[0]
        out["cwd"] = os.getcwd()
        return respond(start_response, json.dumps(out, sort_keys=True).encode(), ctype="application/json")
    if path == "/echo":
        body = environ["wsgi.input"].read()
        more = environ["wsgi.input"].read()
        return respond(start_response, b"%d %d " % (len(body), len(more)) + body)
    if path == "/lines":
        inp = environ["wsgi.input"]
        first = inp.readline()
        second = inp.readline(3)
        rest = list(inp)
        return respond(start_response, json.dumps([first.decode(), second.decode(), [r.decode() for r in rest]]).encode())
    if path == "/errors":
        err = environ["wsgi.errors"]
        err.write("first line\nsecond ")
        err.writelines(["line\n", "unfinished"])
        err.flush()
        print("printed to stdout")
        return respond(start_response, b"logged")
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"from write; ")
        return [b"from iterable"]
    if path == "/close":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing([b"a", b"b"])
    if path == "/close-error":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing([b"partial"], fail=True)
    if path == "/empty-then-error":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing([b"", b""], fail=True)
    if path == "/file":
        f = open(environ["QUERY_STRING"], "rb")
        headers = [("Content-Type", "application/octet-stream")]
        if environ.get("HTTP_X_LENGTH"):
            headers.append(("Content-Length", environ["HTTP_X_LENGTH"]))
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](f, 4096)
    if path == "/stream":
        def gen():
            yield b"first\n"
            deadline = time.time() + 10
            while not os.path.exists(os.path.join(STATE, "go")) and time.time() < deadline:
                time.sleep(0.01)
            yield b"second\n"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()
    if path == "/ignore-body":
        def gen():
            yield b"first "
            yield b"second"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()
    if path == "/die-mid-stream":
        def gen():
            yield b"first\n"
            os._exit(3)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()
    if path == "/bad-status":
        start_response("200", [("Content-Type", "text/plain")])
        return [b"x"]
    if path == "/tuple-headers":
        start_response("200 OK", (("Content-Type", "text/plain"),))
        return [b"x"]
    if path == "/hop":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Connection", "close")])
        return [b"x"]
    if path == "/not-latin1":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Price", "10 \u20ac")])
        return [b"x"]
    if path == "/latin1":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Name", "caf\u00e9")])
        return [b"x"]
    if path == "/str-body":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["not bytes"]
    if path == "/exc-info":
        try:
            raise ValueError("replaced")
        except ValueError:
            start_response("200 OK", [("Content-Type", "text/plain")])
            start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"error page"]
    if path == "/length-cap":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"12345", b"6789"]
    if path == "/status":
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
        return [b"nope"]
    if path == "/sleep":
        with open(os.path.join(STATE, "sleeping"), "w") as f:
            f.write(str(os.getpid()))
        time.sleep(float(environ.get("QUERY_STRING") or 300))
        return respond(start_response, b"woke")
    if path == "/grow":
        global hog
        hog = bytearray(int(environ["QUERY_STRING"]) << 20)
        for i in range(0, len(hog), 4096):
            hog[i] = 1
        return respond(start_response, b"grown %d" % os.getpid())
    if path == "/fork":
        child = os.fork()
        if child == 0:
            time.sleep(30)
            os._exit(0)
        with open(os.path.join(STATE, "forked"), "w") as f:
            f.write(str(child))
        return respond(start_response, b"forked")
    if path == "/multiprocessing":
        import multiprocessing
        child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(300,))
        child.start()
        with open(os.path.join(STATE, "forked"), "w") as f:
            f.write(str(child.pid))
        return respond(start_response, b"%d" % os.getpid())
    if path == "/pid":
        return respond(start_response, b"%d" % os.getpid())
    return respond(start_response, b"not found: " + path.encode("latin-1"), status="404 Not Found")
