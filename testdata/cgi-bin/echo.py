#!/usr/bin/python3
# echo.py: reads exactly CONTENT_LENGTH bytes of request body and reports
# how many it got and their SHA-256, as NAME=value lines.
import hashlib
import os
import sys

want = os.environ.get("CONTENT_LENGTH", "")
left = int(want) if want.isdigit() else 0
digest = hashlib.sha256()
got = 0
while left > 0:
    chunk = sys.stdin.buffer.read(min(left, 65536))
    if not chunk:
        break
    digest.update(chunk)
    got += len(chunk)
    left -= len(chunk)

out = sys.stdout.buffer
out.write(b"Content-Type: text/plain\n\n")
for name, value in (
    ("REQUEST_METHOD", os.environ.get("REQUEST_METHOD", "")),
    ("CONTENT_LENGTH", want),
    ("CONTENT_TYPE", os.environ.get("CONTENT_TYPE", "")),
    ("read", str(got)),
    ("sha256", digest.hexdigest()),
):
    out.write(("%s=%s\n" % (name, value)).encode())
