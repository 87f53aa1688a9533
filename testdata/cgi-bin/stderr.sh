#!/bin/sh
# stderr.sh: writes a marker to stderr (the gateway should log it) and a
# normal response to stdout.
tok=$QUERY_STRING
case $tok in ''|*[!A-Za-z0-9-]*) tok=invalid ;; esac
echo "conformance-stderr-$tok" >&2
printf 'Content-Type: text/plain\n\nstderr ok %s\n' "$tok"
