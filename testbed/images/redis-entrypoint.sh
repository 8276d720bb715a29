#!/bin/sh
# The official redis image's convention, which roles/redis relies on: arguments
# that start with an option or name a .conf file are redis-server's.
set -e
case "$1" in
  -* | *.conf) set -- redis-server "$@" ;;
esac
exec "$@"
