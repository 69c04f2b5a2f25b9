#!/usr/bin/env bash
# test_ctl_cli.sh - porterctl as a command-line tool, the way a first user
# meets it: bad input of every kind answered with the documented exit code
# and a message that names what to fix, never a crash or a hang. Needs no
# PostgreSQL or HTTP server (test_ctl.sh compares with psql and curl).
#
#   test_ctl_cli.sh PORTERD PORTERCTL
#
# Each check prints "ok - what" or "not ok - what" with the evidence; the
# script exits 1 when any failed.
set -uo pipefail

PORTERD=$(realpath "$1")
CTL=$(realpath "$2")

T=$(mktemp -d /tmp/porter-ctlcli.XXXXXX)
DPID=
cleanup() {
	[ -z "$DPID" ] || kill "$DPID" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

. "$(dirname "$0")/ctl_checks.sh" # FAILS, ok, bad, check, code

mkdir -p "$T/files"
"$PORTERD" --config "" --socket "$T/porter.sock" --file-roots "files=$T/files" \
	2>"$T/porterd.log" &
DPID=$!
for _ in $(seq 100); do
	[ -S "$T/porter.sock" ] && break
	sleep 0.1
done
export PORTER_SOCKET=$T/porter.sock
"$CTL" ping -c 1 -i 0 >/dev/null || { echo "not ok - porterd did not start"; cat "$T/porterd.log"; exit 1; }

# ---- batch ----
# An option batch does not know is a usage error, not a FILE to open.
code 2 "batch: an unknown option" "$CTL" batch --frist
check "... says which option" grep -q "unknown option '--frist'" "$T/code.err"
echo '[{"op":"ping","payload":"x"}]' >"$T/-b.json"
code 0 "batch: -- before a FILE named like an option" "$CTL" batch --first -- "$T/-b.json"

# ---- ping ----
# A value out of range names the option, its range and what was given.
code 2 "ping -s over 1 MiB" "$CTL" ping -c 1 -s 16777216
check "... names -s, its range and the value" grep -q "ping: -s: expected an integer in 0..1048576, got '16777216'" "$T/code.err"
code 2 "ping -c 0" "$CTL" --json ping -c 0
check "... as JSON naming -c" grep -q '"message":"ping: -c: expected an integer in 1..10000000' "$T/code.out"
code 0 "ping --help" "$CTL" ping --help
check "... states each option's range" grep -q 'payload bytes, 0..1048576' "$T/code.out"
code 0 "porterctl --help" "$CTL" --help
check "... lists every file subcommand" grep -q 'file cat|put|rm|stat|ls|mkdir|mv|cp|watch' "$T/code.out"

# ---- http ----
# A -H that is not "Name: value" is the command line's fault, and the
# message quotes it (libporter could only count headers, its own included).
code 2 "http -H without a colon" "$CTL" http -H 'X-A: 1' -H 'bad header' http://127.0.0.1:1/
check "... quotes that -H" grep -q "http: -H 'bad header': expected 'Name: value'" "$T/code.err"
code 2 "http -H with an empty name" "$CTL" --json http -H ':x' http://127.0.0.1:1/
check "... as JSON" grep -q '"code":"usage"' "$T/code.out"

# ---- file ----
# A usage error is one line saying what the subcommand expects (the whole
# help in front of it buried the reason).
code 2 "file cat without a PATH" "$CTL" file cat
check "... one line naming what cat expects" sh -c "[ \$(wc -l <'$T/code.err') = 1 ] &&
	grep -q \"file cat: expected \\[-r ROOT\\] PATH\" '$T/code.err'"
code 2 "file: an unknown subcommand" "$CTL" file frob x
check "... named, with the ones there are" grep -q "unknown subcommand 'frob' (cat, put, rm" "$T/code.err"

echo "$FAILS failed"
[ "$FAILS" = 0 ]
