#!/bin/sh
# status.sh: answers with a non-200 Status header (RFC 3875 § 6.3.3).
printf "Status: 418 I'm a teapot\nContent-Type: text/plain\n\nteapot\n"
