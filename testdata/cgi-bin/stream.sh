#!/bin/sh
# stream.sh: writes a first line, then waits (at most 30 s) until the file
# $HTTP_X_CONFORMANCE_STATE/$QUERY_STRING.release exists before the rest.
# The client can only see "first" before creating that file if the gateway
# streams output instead of buffering it until the script ends.
PATH=/usr/bin:/bin
export PATH
tok=$QUERY_STRING
dir=$HTTP_X_CONFORMANCE_STATE
case $tok in ''|*[!A-Za-z0-9-]*) printf 'Status: 400 Bad Request\nContent-Type: text/plain\n\nbad token\n'; exit 0 ;; esac
case $dir in /*) ;; *) printf 'Status: 400 Bad Request\nContent-Type: text/plain\n\nno state dir\n'; exit 0 ;; esac
printf 'Content-Type: text/plain\nX-Accel-Buffering: no\n\nfirst\n'
i=0
while [ ! -e "$dir/$tok.release" ] && [ "$i" -lt 300 ]; do
	sleep 0.1
	i=$((i + 1))
done
if [ -e "$dir/$tok.release" ]; then echo released; else echo timeout; fi
