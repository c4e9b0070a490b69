#!/bin/sh
# The part of the official postgres image's entrypoint that the compose file relies on: on the
# first start, a cluster whose superuser is POSTGRES_USER (password POSTGRES_PASSWORD, checked
# with scram-sha-256 over the network) and a database POSTGRES_DB; then the server as postgres.
set -eu
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

if [ "${1:-}" = postgres ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
        user=${POSTGRES_USER:-postgres}
        db=${POSTGRES_DB:-$user}
        pwfile=$(mktemp)
        printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
        chown postgres "$pwfile"
        # UTF8 (the official image's default): a minbase system has no locale, and initdb alone
        # would choose SQL_ASCII, in which psycopg hands back bytes and SQLAlchemy fails.
        as_postgres initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
            --auth-local=trust --auth-host=scram-sha-256 >/dev/null
        rm -f "$pwfile"
        echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
        echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
        if [ "$db" != postgres ]; then
            echo "CREATE DATABASE \"$db\" OWNER \"$user\";" \
                | as_postgres postgres --single -D "$PGDATA" postgres >/dev/null
        fi
        echo "initialised $PGDATA: user $user, database $db" >&2
    fi
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$@"
fi
exec "$@"
