#!/bin/sh
# murakumo's MariaDB entrypoint, with the official image's conventions:
#
#   docker-entrypoint.sh mariadbd [ARGS]    (or only ARGS: mariadbd is added)
#
# On a data directory without a database it creates one, once: root's
# password from MARIADB_ROOT_PASSWORD(_FILE) for localhost and '%'
# (MARIADB_ROOT_HOST), MARIADB_DATABASE, MARIADB_USER with
# MARIADB_PASSWORD(_FILE) and every right on that database, and the
# `healthcheck` account healthcheck.sh uses (its password in the data
# directory, 0600). It runs a private server for that (no network, Galera
# off) and stops it before starting the real one, so a half-made database
# is never served: a marker says "being made" until the end, and a data
# directory that still has it is made again. A data directory with a
# `mysql` database and no such marker is a database (made by another
# image, or received from a Galera node): never touched.
# MARIADB_AUTO_UPGRADE=1 runs mariadb-upgrade when the server's version
# differs from the one that last ran on the data. Anything else is run as
# given.
set -eu

case "${1:-}" in
    -*) set -- mariadbd "$@" ;;
    '') set -- mariadbd ;;
esac
case "$1" in
    mariadbd | mysqld) ;;
    *) exec "$@" ;;
esac

log() { echo "docker-entrypoint.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# VAR or VAR_FILE (not both), into VAR.
file_env() {
    eval "value=\${$1:-}" "file=\${$1_FILE:-}"
    if [ -n "$value" ] && [ -n "$file" ]; then die "$1 and $1_FILE are both set; give one"; fi
    if [ -n "$file" ]; then
        [ -r "$file" ] || die "$1_FILE: cannot read $file"
        value=$(cat "$file")
    fi
    eval "$1=\$value"
}

# A value inside an SQL string literal.
sql_string() { printf '%s' "$1" | sed -e "s/\\\\/\\\\\\\\/g" -e "s/'/\\\\'/g"; }
# A name inside back quotes.
sql_name() { printf '%s' "$1" | sed -e 's/`/``/g'; }

datadir=/var/lib/mysql
made="$datadir/.murakumo-initialised"
making="$datadir/.murakumo-initialising"
sock=/run/mysqld/init.sock
init_pid=""

start_private() {
    mariadbd --skip-networking --wsrep-on=OFF --socket="$sock" --pid-file=/run/mysqld/init.pid >&2 &
    init_pid=$!
    i=0
    # ping answers 0 for a running server even when it refuses the account.
    until mariadb-admin --socket="$sock" --user=root ping >/dev/null 2>&1; do
        kill -0 "$init_pid" 2>/dev/null || die "the private server stopped while starting (see above)"
        i=$((i + 1)); [ "$i" -lt 300 ] || die "the private server did not start in 60 s"
        sleep 0.2
    done
}

stop_private() {
    kill "$init_pid"
    wait "$init_pid" || true
    init_pid=""
}

if [ -e "$making" ] || [ ! -d "$datadir/mysql" ]; then
    [ -w "$datadir" ] || die "$datadir is not writable by uid $(id -u) (it belongs to uid $(stat -c %u "$datadir")): a volume made by another image (the official one runs as 999)? Give it to $(id -u) (chown -R $(id -u):$(id -g)) or start with a new volume"
    file_env MARIADB_ROOT_PASSWORD
    file_env MARIADB_PASSWORD
    : "${MARIADB_DATABASE:=}" "${MARIADB_USER:=}" "${MARIADB_ROOT_HOST:=%}"
    [ -n "$MARIADB_ROOT_PASSWORD" ] || [ "${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:-}" = 1 ] ||
        die "no root password: set MARIADB_ROOT_PASSWORD or MARIADB_ROOT_PASSWORD_FILE"
    if [ -n "$MARIADB_USER" ] && [ -z "$MARIADB_PASSWORD" ]; then die "MARIADB_USER needs MARIADB_PASSWORD (or _FILE)"; fi
    log "making a new database in $datadir"
    # A previous attempt that stopped half-way left no marker: start over.
    find "$datadir" -mindepth 1 -delete
    : >"$making"
    mariadb-install-db --datadir="$datadir" --auth-root-authentication-method=normal \
        --skip-test-db --skip-name-resolve >/dev/null
    start_private
    health=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    root=$(sql_string "$MARIADB_ROOT_PASSWORD")
    {
        echo "SET @@SESSION.SQL_LOG_BIN=0;"
        # Only root@localhost and root@MARIADB_ROOT_HOST sign in as root
        # (a passwordless root@127.0.0.1 would shadow root@'%').
        echo "DROP USER IF EXISTS ''@'localhost', 'root'@'127.0.0.1', 'root'@'::1';"
        host=$(sql_string "$(hostname)")
        if [ "$host" != localhost ]; then
            echo "DROP USER IF EXISTS ''@'$host', 'root'@'$host';"
        fi
        echo "CREATE USER 'healthcheck'@'127.0.0.1' IDENTIFIED BY '$health';"
        echo "CREATE USER 'healthcheck'@'::1' IDENTIFIED BY '$health';"
        echo "CREATE USER 'healthcheck'@'localhost' IDENTIFIED BY '$health';"
        if [ "$MARIADB_ROOT_HOST" != localhost ]; then
            echo "CREATE USER 'root'@'$(sql_string "$MARIADB_ROOT_HOST")' IDENTIFIED BY '$root';"
            echo "GRANT ALL ON *.* TO 'root'@'$(sql_string "$MARIADB_ROOT_HOST")' WITH GRANT OPTION;"
        fi
        if [ -n "$MARIADB_DATABASE" ]; then
            echo "CREATE DATABASE IF NOT EXISTS \`$(sql_name "$MARIADB_DATABASE")\`;"
        fi
        if [ -n "$MARIADB_USER" ]; then
            echo "CREATE USER '$(sql_string "$MARIADB_USER")'@'%' IDENTIFIED BY '$(sql_string "$MARIADB_PASSWORD")';"
            if [ -n "$MARIADB_DATABASE" ]; then
                echo "GRANT ALL ON \`$(sql_name "$MARIADB_DATABASE")\`.* TO '$(sql_string "$MARIADB_USER")'@'%';"
            fi
        fi
        # Last: root's own password (the session keeps working).
        echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$root';"
    } | mariadb --socket="$sock" --user=root --batch ||
        { stop_private; die "setting up the accounts failed (see above)"; }
    (
        umask 077
        printf '[mariadb-client]\nuser=healthcheck\npassword=%s\nhost=127.0.0.1\nprotocol=tcp\n' "$health" \
            >"$datadir/.my-healthcheck.cnf"
    )
    stop_private
    mariadbd --version >"$made"
    rm -f "$making"
    log "database made"
elif [ ! -e "$made" ]; then
    # Made elsewhere: from now on its version is followed here.
    mariadbd --version >"$made"
elif [ "${MARIADB_AUTO_UPGRADE:-}" = 1 ] && [ "$(mariadbd --version)" != "$(cat "$made")" ]; then
    log "the server's version changed: mariadb-upgrade"
    file_env MARIADB_ROOT_PASSWORD
    start_private
    MYSQL_PWD=$MARIADB_ROOT_PASSWORD mariadb-upgrade --socket="$sock" --user=root >&2
    stop_private
    mariadbd --version >"$made"
fi

exec "$@"
