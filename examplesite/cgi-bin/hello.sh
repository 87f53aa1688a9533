#!/bin/sh
# The smallest CGI script: a header block, a blank line, a body.
printf 'Content-Type: text/plain; charset=utf-8\r\n\r\n'
printf 'Hello from sh (pid %s)\n' "$$"
printf 'You asked for %s %s\n' "$REQUEST_METHOD" "$REQUEST_URI"
