#!/bin/sh
# nph-hello.sh: a non-parsed header script (RFC 3875 § 5): it writes the
# whole HTTP response itself, and the gateway passes it through.
printf '%s 202 Accepted\r\nContent-Type: text/plain\r\nX-NPH: yes\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnph hello\n' "${SERVER_PROTOCOL:-HTTP/1.0}"
