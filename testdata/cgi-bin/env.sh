#!/bin/sh
# env.sh: dumps the CGI environment as NAME=value lines sorted by name.
# NUL-separated sorting keeps a multi-line value next to its name.
printf 'Content-Type: text/plain\nX-Conformance-Script: env.sh\n\n'
/usr/bin/env -0 | LC_ALL=C /usr/bin/sort -z | /usr/bin/tr '\0' '\n'
