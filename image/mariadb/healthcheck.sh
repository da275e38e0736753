#!/bin/sh
# The official mariadb image's health checks, for murakumo's MariaDB image:
#
#   healthcheck.sh [--connect] [--innodb_initialized] [--galera_online]
#
#   --connect             the server answers over TCP (the real one, not the
#                         private server docker-entrypoint.sh runs first)
#   --innodb_initialized  InnoDB is ready
#   --galera_online       this Galera node is synced (wsrep_local_state 4)
#
# It signs in as `healthcheck` (no rights) with the option file the
# entrypoint wrote; on a Galera node whose data came from another node (a
# state transfer replaces the data directory) that file is gone, and it
# signs in as root with MARIADB_ROOT_PASSWORD(_FILE), the same on every
# node. Passwords never reach a command line. Exit 0 when every check
# passes.
set -eu
cnf=/var/lib/mysql/.my-healthcheck.cnf
if [ -r "$cnf" ]; then
    query() { mariadb --defaults-extra-file="$cnf" --batch --skip-column-names -e "$1"; }
else
    if [ -n "${MARIADB_ROOT_PASSWORD_FILE:-}" ]; then
        MARIADB_ROOT_PASSWORD=$(cat "$MARIADB_ROOT_PASSWORD_FILE")
    fi
    export MYSQL_PWD="${MARIADB_ROOT_PASSWORD:-}"
    query() { mariadb --user=root --host=127.0.0.1 --protocol=tcp --batch --skip-column-names -e "$1"; }
fi
[ $# -gt 0 ] || set -- --connect
for check; do
    case "$check" in
        --connect) query 'SELECT 1' >/dev/null ;;
        --innodb_initialized)
            [ "$(query "SELECT 1 FROM information_schema.ENGINES WHERE engine = 'InnoDB' AND support IN ('YES', 'DEFAULT', 'ENABLED')")" = 1 ] ;;
        --galera_online)
            [ "$(query "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_LOCAL_STATE'")" = 4 ] ;;
        --su-mysql | --su=* | --defaults-file=* | --no-defaults) ;; # the official flags that mean nothing here
        *) echo "healthcheck.sh: unknown check $check" >&2; exit 2 ;;
    esac || { echo "healthcheck.sh: $check failed" >&2; exit 1; }
done
