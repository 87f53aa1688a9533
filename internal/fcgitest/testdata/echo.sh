#!/bin/sh
# echo.sh: reads exactly CONTENT_LENGTH bytes of request body and answers
# with the length, the SHA-256 of those bytes and the query string, one
# NAME=value per line, for the fcgitest suite.
PATH=/usr/bin:/bin
export PATH
len=${CONTENT_LENGTH:-0}
case $len in *[!0-9]*) printf 'Status: 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nbad CONTENT_LENGTH\n'; exit 0 ;; esac
sum=$(head -c "$len" | sha256sum)
sum=${sum%% *}
printf 'Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n'
printf 'CONTENT_LENGTH=%s\nSHA256=%s\nQUERY_STRING=%s\n' "$len" "$sum" "$QUERY_STRING"
