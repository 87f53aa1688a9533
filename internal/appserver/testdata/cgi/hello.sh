#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\nshell pid=%s\n' "$$"
