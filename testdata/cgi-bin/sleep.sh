#!/bin/sh
# sleep.sh: answers, records its PID in $HTTP_X_CONFORMANCE_STATE/$QUERY_STRING.pid,
# then sleeps for 60 s. When the client goes away the gateway must kill it.
PATH=/usr/bin:/bin
export PATH
tok=$QUERY_STRING
dir=$HTTP_X_CONFORMANCE_STATE
case $tok in ''|*[!A-Za-z0-9-]*) printf 'Status: 400 Bad Request\nContent-Type: text/plain\n\nbad token\n'; exit 0 ;; esac
case $dir in /*) ;; *) printf 'Status: 400 Bad Request\nContent-Type: text/plain\n\nno state dir\n'; exit 0 ;; esac
printf 'Content-Type: text/plain\nX-Accel-Buffering: no\n\nsleeping\n'
echo $$ >"$dir/$tok.pid.tmp" && mv "$dir/$tok.pid.tmp" "$dir/$tok.pid"
# exec keeps the PID: the process the gateway started is the one sleeping.
exec sleep 60
