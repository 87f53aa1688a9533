#!/usr/bin/python3
# env.py: dumps the CGI environment as NAME=value lines sorted by name.
import os
import sys

out = sys.stdout.buffer
out.write(b"Content-Type: text/plain\nX-Conformance-Script: env.py\n\n")
for name, value in sorted(os.environb.items()):
    out.write(name + b"=" + value + b"\n")
