#!/usr/bin/python3
"""A CGI script in Python 3, standard library only."""
import html
import os
import sys
from urllib.parse import parse_qs

form = parse_qs(os.environ.get("QUERY_STRING", ""))
name = form.get("name", ["world"])[0]
sys.stdout.write("Content-Type: text/html; charset=utf-8\r\n\r\n")
sys.stdout.write("<!doctype html><title>hello.py</title>")
sys.stdout.write(f"<h1>Hello, {html.escape(name)}, from Python {sys.version.split()[0]}</h1>")
sys.stdout.write('<p><a href="/">back</a></p>\n')
