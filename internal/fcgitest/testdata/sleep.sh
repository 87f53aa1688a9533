#!/bin/sh
# sleep.sh: answers, writes its PID to the file named by the query string
# (pid=<absolute path>), then sleeps for 60 s. The fcgitest abort check
# expects the application server to kill it on FCGI_ABORT_REQUEST.
PATH=/usr/bin:/bin
export PATH
file=${QUERY_STRING#pid=}
case $QUERY_STRING in pid=/*) ;; *) printf 'Status: 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nquery must be pid=<absolute path>\n'; exit 0 ;; esac
case $file in *[!A-Za-z0-9/._-]*) printf 'Status: 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nunsafe pid file name\n'; exit 0 ;; esac
printf 'Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nsleeping\n'
echo $$ >"$file.tmp" && mv "$file.tmp" "$file"
# exec keeps the PID: the process the server started is the one sleeping.
exec sleep 60
