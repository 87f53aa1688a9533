#!/bin/sh
# Shows the meta-variables and environment a script gets.
printf 'Content-Type: text/plain; charset=utf-8\r\n\r\n'
env | LC_ALL=C sort
