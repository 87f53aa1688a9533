#!/bin/sh
# redirect-client.sh: a client redirect response (RFC 3875 § 6.2.3): the
# gateway must answer 302 Found with this Location.
printf 'Location: http://example.invalid/elsewhere\n\n'
