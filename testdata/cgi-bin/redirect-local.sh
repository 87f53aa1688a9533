#!/bin/sh
# redirect-local.sh: a local redirect response (RFC 3875 § 6.2.2): only a
# Location that is a path. The gateway must serve that path itself as a GET.
# The target is env.sh next to this script, whatever the URL prefix is.
printf 'Location: %s/env.sh/from-redirect?x=1\n\n' "${SCRIPT_NAME%/*}"
