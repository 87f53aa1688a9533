#!/bin/sh
# crash.sh: dies from SIGSEGV before writing anything.
kill -SEGV $$
exit 3
