#!/bin/sh
# ferry bench app, sh, per-request CGI only (sh has no long-lived form).
# GET /            -> "Hello, world"
# GET /?rows=N&name=S -> an HTML page of N rows (the "realistic" variant)
rows=
name=world
IFS='&'
for kv in $QUERY_STRING; do
	case $kv in
	rows=*) rows=${kv#rows=} ;;
	name=*) name=${kv#name=} ;;
	esac
done
unset IFS
case $rows in *[!0-9]*) rows= ;; esac
if [ -z "$rows" ]; then
	printf 'Content-Type: text/plain\r\n\r\nHello, world\n'
	exit 0
fi
printf 'Content-Type: text/html; charset=utf-8\r\n\r\n'
awk -v rows="$rows" -v name="$name" 'BEGIN {
	gsub(/&/, "\\&amp;", name); gsub(/</, "\\&lt;", name); gsub(/>/, "\\&gt;", name)
	printf "<!DOCTYPE html>\n<html><head><title>Report for %s</title></head><body>\n<h1>Report for %s</h1>\n<table>\n<tr><th>#</th><th>item</th><th>value</th><th>code</th></tr>\n", name, name
	for (i = 1; i <= rows; i++)
		printf "<tr><td>%d</td><td>%s item %d</td><td>%d</td><td>%x</td></tr>\n", i, name, i, (i * i) % 997, i * 2654435761 % 4294967296
	printf "</table>\n<p>%d rows</p>\n</body></html>\n", rows
}'
