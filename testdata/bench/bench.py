#!/usr/bin/python3
"""ferry bench app, Python: per-request CGI when run as a script, and a WSGI
application (uwsgi --fastcgi-socket / --scgi-socket) as a long-lived worker.

GET /               -> "Hello, world"
GET /?rows=N&name=S -> an HTML page of N rows (the "realistic" variant)
"""
import os
import sys
from html import escape
from urllib.parse import parse_qsl


def render(query):
    q = dict(parse_qsl(query or ""))
    rows = q.get("rows", "")
    if not rows.isdigit():
        return "text/plain", "Hello, world\n"
    rows = int(rows)
    name = escape(q.get("name", "world"))
    out = [
        "<!DOCTYPE html>\n<html><head><title>Report for %s</title></head><body>\n"
        "<h1>Report for %s</h1>\n<table>\n<tr><th>#</th><th>item</th><th>value</th><th>code</th></tr>\n" % (name, name)
    ]
    for i in range(1, rows + 1):
        out.append("<tr><td>%d</td><td>%s item %d</td><td>%d</td><td>%x</td></tr>\n"
                   % (i, name, i, (i * i) % 997, (i * 2654435761) % 4294967296))
    out.append("</table>\n<p>%d rows</p>\n</body></html>\n" % rows)
    return "text/html; charset=utf-8", "".join(out)


def application(environ, start_response):
    ctype, body = render(environ.get("QUERY_STRING", ""))
    body = body.encode()
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


if __name__ == "__main__":
    ctype, body = render(os.environ.get("QUERY_STRING", ""))
    sys.stdout.write("Content-Type: %s\r\n\r\n" % ctype)
    sys.stdout.write(body)
