#!/bin/sh
# noexec.sh: has no exec bit (mode 0644). A gateway must neither run it nor
# show its source.
printf 'Content-Type: text/plain\n\nnoexec-ran\n'
