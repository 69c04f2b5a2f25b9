#!/bin/sh
# pg.sh - a throwaway PostgreSQL 15 for the database tests.
#
#   pg.sh start STATE_DIR   initdb in a new temp dir, start the server, write
#                           STATE_DIR/env (shell assignments) and
#                           STATE_DIR/conninfo, STATE_DIR/conninfo_tcp,
#                           STATE_DIR/conninfo_pw (libpq conninfo strings)
#   pg.sh restart STATE_DIR stop (fast) and start the same cluster again
#   pg.sh stop STATE_DIR    stop the server and remove the temp dir
#   pg.sh kill STATE_DIR    crash it: SIGKILL the postmaster and every
#                           backend at once (no shutdown, no checkpoint);
#                           the server stays down
#   pg.sh resume STATE_DIR  start the same cluster again after `kill` (crash
#                           recovery runs); does nothing when it is running
#
# The server listens on a Unix socket inside its temp dir and on 127.0.0.1
# at a random free port; nothing else. The local socket asks porter_pw for
# its SCRAM password and trusts everyone else;
# TCP trusts the superuser and asks the role porter_pw (password
# "porter-secret") for a SCRAM password, so a wrong password can be tested.
# When run as root the server runs as the `postgres` user (initdb refuses
# root). A watchdog stops the server after PORTER_PG_LIMIT seconds (default
# 1200) even if the tests that needed it crashed, so it never outlives them.
set -eu

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
LIMIT=${PORTER_PG_LIMIT:-1200}
cmd=${1:-}
state=${2:-}
[ -n "$cmd" ] && [ -n "$state" ] || { echo "usage: pg.sh start|restart|kill|resume|stop STATE_DIR" >&2; exit 2; }

if [ "$(id -u)" = 0 ]; then
	RUNAS="runuser -u postgres --"
	SUPER=postgres
else
	RUNAS=""
	SUPER=$(id -un)
fi

as_pg() { $RUNAS "$@"; }

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

server_start() {
	# -w waits until the server accepts connections.
	as_pg "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
		-o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=32MB" \
		start >/dev/null
}

case "$cmd" in
start)
	mkdir -p "$state"
	if [ -f "$state/env" ]; then
		# A previous run that never cleaned up: stop it first.
		"$0" stop "$state" || true
	fi
	DIR=$(mktemp -d /tmp/porter-pg.XXXXXX)
	chmod 755 "$DIR"
	[ -z "$RUNAS" ] || chown postgres "$DIR"
	PORT=$(free_port)
	as_pg "$PGBIN/initdb" -D "$DIR/data" -U "$SUPER" -A trust -E UTF8 --no-sync >"$DIR/initdb.log" 2>&1 ||
		{ cat "$DIR/initdb.log" >&2; exit 1; }
	cat >"$DIR/data/pg_hba.conf" <<EOF
local all porter_pw scram-sha-256
local all all trust
host all porter_pw 127.0.0.1/32 scram-sha-256
host all $SUPER 127.0.0.1/32 trust
EOF
	[ -z "$RUNAS" ] || chown postgres "$DIR/data/pg_hba.conf"
	server_start
	as_pg "$PGBIN/psql" -h "$DIR" -p "$PORT" -U "$SUPER" -d postgres -qAt \
		-c "SET password_encryption = 'scram-sha-256'; CREATE ROLE porter_pw LOGIN PASSWORD 'porter-secret';" >/dev/null
	cat >"$state/env" <<EOF
DIR=$DIR
PORT=$PORT
SUPER=$SUPER
EOF
	echo "host=$DIR port=$PORT dbname=postgres user=$SUPER" >"$state/conninfo"
	echo "host=127.0.0.1 port=$PORT dbname=postgres user=$SUPER" >"$state/conninfo_tcp"
	echo "host=127.0.0.1 port=$PORT dbname=postgres user=porter_pw password=porter-secret" >"$state/conninfo_pw"
	echo "$PGBIN" >"$state/pgbin"
	# The watchdog: a detached process that stops the server and removes
	# the directory after the hard limit, unless `stop` removed it first.
	setsid sh -c "
		sleep $LIMIT
		if [ -d '$DIR/data' ]; then
			$RUNAS '$PGBIN/pg_ctl' -D '$DIR/data' -m immediate -w stop >/dev/null 2>&1
			rm -rf '$DIR'
		fi" </dev/null >/dev/null 2>&1 &
	echo $! >"$state/watchdog.pid"
	echo "PostgreSQL started in $DIR on port $PORT"
	;;
restart)
	. "$state/env"
	as_pg "$PGBIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null
	server_start
	;;
kill)
	. "$state/env"
	pm=$(head -n 1 "$DIR/data/postmaster.pid" 2>/dev/null || true)
	[ -n "$pm" ] && kill -0 "$pm" 2>/dev/null || { echo "pg.sh: not running" >&2; exit 1; }
	# Freeze the postmaster so it forks no backend between listing its
	# children and killing them, then kill them all by pid.
	kill -STOP "$pm"
	kids=$(python3 -c '
import os, sys
for p in os.listdir("/proc"):
    try:
        with open("/proc/%s/status" % p) as f:
            if any(l.split() == ["PPid:", sys.argv[1]] for l in f):
                print(p)
    except OSError:
        pass' "$pm")
	# shellcheck disable=SC2086
	kill -KILL $kids "$pm" 2>/dev/null || true
	i=0
	for p in $kids $pm; do
		while kill -0 "$p" 2>/dev/null && [ $i -lt 500 ]; do
			sleep 0.01
			i=$((i + 1))
		done
	done
	;;
resume)
	. "$state/env"
	if ! as_pg "$PGBIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
		server_start
	fi
	;;
stop)
	[ -f "$state/env" ] || exit 0
	. "$state/env"
	if [ -d "$DIR/data" ]; then
		as_pg "$PGBIN/pg_ctl" -D "$DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
			as_pg "$PGBIN/pg_ctl" -D "$DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	if [ -f "$state/watchdog.pid" ]; then
		kill -- "-$(cat "$state/watchdog.pid")" 2>/dev/null || true
	fi
	rm -rf "$DIR"
	rm -f "$state/env" "$state/conninfo" "$state/conninfo_tcp" "$state/conninfo_pw" "$state/watchdog.pid" "$state/pgbin"
	;;
*)
	echo "pg.sh: unknown command $cmd" >&2
	exit 2
	;;
esac
