#!/bin/sh
# cookies.sh: sets two cookies; both Set-Cookie fields must reach the client.
printf 'Content-Type: text/plain\nSet-Cookie: first=1; Path=/\nSet-Cookie: second=2; Path=/\n\ncookies\n'
