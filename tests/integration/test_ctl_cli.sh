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

# Input that cannot be read says why (a directory read as an empty input
# was "not a JSON list of operations").
code 1 "batch: a directory as FILE" "$CTL" batch "$T/files"
check "... says it is a directory" grep -q "batch: cannot read $T/files: Is a directory" "$T/code.err"

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
# Every spelling of every command answers --help (http request took it
# for the METHOD and asked for a URL, exit 2).
code 0 "http request --help" "$CTL" http request --help
check "... prints the help" grep -q '^Usage: porterctl http' "$T/code.out"
# A value out of range says the range (--timeout 0 read "expected
# milliseconds", which 0 is).
code 2 "--timeout 0" "$CTL" --timeout 0 ping
check "... names the range" grep -q "timeout: expected milliseconds in 1..86400000, got '0'" "$T/code.err"

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

# http -w: a variable curl does not know is warned about, as curl does,
# and prints nothing (it printed '%{bogus}' back). The transfer itself
# fails (nothing listens on port 1); -w is written all the same.
"$CTL" http -w 'a%{bogus}b%{http_code}\n' http://127.0.0.1:1/ >"$T/w.out" 2>"$T/w.err" </dev/null
check "http -w: an unknown variable prints nothing" grep -qx 'ab000' "$T/w.out"
check "... and is warned about in curl's words" \
	grep -q "porterctl: unknown --write-out variable: 'bogus'" "$T/w.err"

# ---- -S: what is at the path ----
# connect(2) to a file or a directory fails as to a socket nobody listens
# on; the message says which it is.
code 3 "-S naming a regular file" "$CTL" -S /etc/passwd ping -c 1
check "... says it is not a socket" grep -q "at /etc/passwd: not a socket (a regular file)" "$T/code.err"
code 3 "-S naming a directory" "$CTL" -S "$T/files" ping -c 1
check "... says it is a directory" grep -q "not a socket (a directory)" "$T/code.err"
# Nothing at the path, what a first run meets: what to do.
code 3 "-S naming a path where nothing is" "$CTL" -S "$T/none.sock" ping -c 1
check "... says to start porterd or name its socket" grep -q \
	"at $T/none.sock: No such file or directory (porterd is not running, or listens on another socket: start it, or name its socket in PORTER_SOCKET)" \
	"$T/code.err"
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$T/dead.sock"
code 3 "-S naming a socket nobody listens on" "$CTL" -S "$T/dead.sock" ping -c 1
check "... says no daemon listens there" grep -q "Connection refused (no daemon listens on that socket" "$T/code.err"

# ---- cancel ----
# porterd takes a cancel only from the process that made the request: the
# help says so, and so does the answer from a shell.
code 0 "cancel --help" "$CTL" cancel --help
check "... says it cannot stop another process's request" \
	grep -q "porterd takes a cancel only from the process that made the request" "$T/code.out"
code 1 "cancel of a request of another process" "$CTL" cancel 7
check "... says why nothing was found" \
	grep -q "cancel: request 7 is not in flight in this process (porterctl can stop only requests it made itself" "$T/code.err"

# ---- names that are not UTF-8 ----
# Their bytes come back escaped in messages, so two such names are told
# apart (both read '??' before).
code 1 "file cat of a name that is not UTF-8" "$CTL" file cat -r files $'\xff\xfe'
check "... its bytes escaped in the message" grep -qF "'\\xff\\xfe'" "$T/code.err"
code 1 "... another such name" "$CTL" file cat -r files $'\xfe\xff'
check "... told apart from the first" grep -qF "'\\xfe\\xff'" "$T/code.err"

# On a terminal, file ls shows such names escaped (a terminal draws every
# such byte alike); into a pipe they go byte for byte, for scripts.
touch "$T/files/"$'\xff\xfe' "$T/files/"$'\xfe\xff' "$T/files/"$'bell\a'
script -qec "'$CTL' file ls -r files" /dev/null >"$T/tty.out" 2>&1 </dev/null
check "file ls on a terminal: names escaped and told apart" sh -c \
	"grep -qF '\\xff\\xfe' '$T/tty.out' && grep -qF '\\xfe\\xff' '$T/tty.out' &&
	grep -qF 'bell\\x07' '$T/tty.out'"
"$CTL" file ls -r files >"$T/pipe.out" </dev/null
check "... into a pipe, byte for byte" grep -q $'\xff\xfe' "$T/pipe.out"

# ---- options: named, on one line, by every command ----
# A bad option names itself (getopt's own line named the binary's full
# path, said nothing under --json, and the top level buried its reason
# under the whole usage); a missing value is not an "unknown option".
code 2 "porterctl --frob" "$CTL" --frob stats
check "... one line naming it" sh -c "[ \$(wc -l <'$T/code.err') = 1 ] &&
	grep -qx \"porterctl: unknown option '--frob' (see 'porterctl --help')\" '$T/code.err'"
code 2 "porterctl --timeout without a value" "$CTL" --timeout
check "... says it needs a value" grep -q "option '--timeout' needs a value" "$T/code.err"
code 2 "db: an unknown option, under --json" "$CTL" --json db --frob=1 app
check "... named in the JSON error, nothing on stderr" sh -c \
	"grep -q \"\\\"message\\\":\\\"db: unknown option '--frob'\" '$T/code.out' && [ ! -s '$T/code.err' ]"
code 2 "db -c without a value" "$CTL" db -c
check "... says -c needs a value" grep -q "db: option '-c' needs a value" "$T/code.err"
for cmd in "http -H" "ping -c" "file put -m"; do
	code 2 "$cmd without a value" "$CTL" $cmd
	check "... names ${cmd##* }" grep -q "option '${cmd##* }' needs a value" "$T/code.err"
done
code 2 "file ls -Z, under --json" "$CTL" --json file ls -Z
check "... named in the JSON error, nothing on stderr" sh -c \
	"grep -q \"unknown option '-Z'\" '$T/code.out' && [ ! -s '$T/code.err' ]"
# psql's -? is its help (-h is the host); it was refused as unknown.
code 0 "db -?" "$CTL" db '-?'
check "... prints the help" grep -q '^Usage: porterctl db' "$T/code.out"

# ---- db: PARAMs that do not match the statement ----
# Checked before anything is sent (no PostgreSQL needed): an extra PARAM
# came back as PostgreSQL's "could not determine data type of parameter
# \$1", one too few as a failure (exit 1).
code 2 "db: a PARAM the statement does not use" "$CTL" db "dbname=x" 'SELECT 1' extra
check "... says the statement has none" \
	grep -q 'db: 1 PARAM given but the statement has no \$1..\$n placeholder' "$T/code.err"
code 2 "db: one PARAM too few" "$CTL" db "dbname=x" 'SELECT $1, $2' a
check "... says what it uses" grep -q 'db: 1 PARAM given but the statement uses \$1..\$2' "$T/code.err"
code 2 "db: \$n in quotes and comments does not count" "$CTL" db "dbname=x" \
	"SELECT '\$2', \$\$ \$3 \$\$ -- \$4" a
check "... the statement has none" grep -q 'has no \$1..\$n placeholder' "$T/code.err"

# ---- file: what to do, after what failed ----
mkdir -p "$T/files/hd/sub"
code 1 "file rm of a directory" "$CTL" file rm hd
check "... points at rm -d" grep -q "is a directory (PORTER_E_FILE_ISDIR); to delete an empty directory: porterctl file rm -d" "$T/code.err"
echo x >"$T/files/hd/f"
code 1 "file rm -d of a file" "$CTL" file rm -d hd/f
check "... says it is not a directory, and points at rm" grep -q "cannot delete 'hd/f' in root 'files': not a directory (PORTER_E_FILE_NOTDIR); to delete a file: porterctl file rm, without -d" "$T/code.err"
code 1 "file ls of a file" "$CTL" file ls hd/f
check "... says it is not a directory, and points at cat" grep -q "cannot list 'hd/f' in root 'files': not a directory (PORTER_E_FILE_NOTDIR); to read a file: porterctl file cat" "$T/code.err"
code 1 "file mkdir of one that exists" "$CTL" file mkdir hd
check "... points at -p" grep -q "already exists (PORTER_E_FILE_EXISTS); -p accepts a directory that exists" "$T/code.err"
code 1 "file put into a missing directory" "$CTL" file put hd/nope/x.txt
check "... points at mkdir -p" grep -q "no such directory (PORTER_E_FILE_NOT_FOUND); make its directory first: porterctl file mkdir -p" "$T/code.err"
code 1 "file cat of a directory, under --json" "$CTL" --json file cat hd
check "... the hint in the JSON message" grep -q 'is a directory; to list a directory: porterctl file ls"' "$T/code.out"

# ---- file put from a producer that pauses ----
# porterd reclaims a write stream not used for file-stream-idle; a pause
# in the input that long lost the whole put ("timed out"). porterctl
# keeps the writer alive while its input is quiet: a second porterd with
# an idle of 2 s, a producer that pauses 5 s, by descriptor and by bytes.
mkdir -p "$T/idle"
for fd in true false; do
	"$PORTERD" --config "" --socket "$T/idle.sock" --file-roots "files=$T/idle" \
		--file-stream-idle 2000 --file-pass-fd="$fd" 2>"$T/idle.log" &
	IPID=$!
	for _ in $(seq 100); do
		[ -S "$T/idle.sock" ] && break
		sleep 0.1
	done
	(echo a; sleep 5; echo b) | PORTER_SOCKET=$T/idle.sock timeout 60 "$CTL" file put "p-$fd.txt" 2>"$T/idle.err"
	got=$?
	check "file put (file-pass-fd=$fd) across a 5 s pause in its input: exit 0 (got $got)" [ "$got" = 0 ]
	check "... all of it written" sh -c "[ \"\$(cat '$T/idle/p-$fd.txt' 2>/dev/null)\" = \"\$(printf 'a\nb')\" ]"
	kill "$IPID"
	wait "$IPID" 2>/dev/null
	rm -f "$T/idle.sock"
done

# ---- stdout that cannot take the output ----
# Output lost to a full disk is a failure that says so: ping, stats,
# version, --help and file ls exited 0 with nothing written.
for cmd in "stats" "version" "ping -c 1 -i 0" "--help" "file ls -r files" "--json stats"; do
	# shellcheck disable=SC2086
	timeout 60 "$CTL" $cmd >/dev/full 2>"$T/full.err" </dev/null
	got=$?
	check "$cmd into a full disk: exit 1 (got $got)" [ "$got" = 1 ]
	check "... says stdout could not be written, and why" \
		grep -q "porterctl: cannot write the output to stdout: No space left on device" "$T/full.err"
done
# A watch whose reader is gone ends at its next event when SIGPIPE is
# ignored (as some supervisors leave it), instead of watching for ever.
mkdir -p "$T/files/w"
(
	trap '' PIPE
	timeout 30 "$CTL" file watch -r files w 2>"$T/watch.err" </dev/null
	echo $? >"$T/watch.rc"
) | head -c 1 >/dev/null &
WPID=$!
for i in $(seq 100); do
	[ -s "$T/watch.rc" ] && break
	touch "$T/files/w/f$i"
	sleep 0.2
done
wait "$WPID"
check "file watch into a closed pipe, SIGPIPE ignored: ends, exit 1 (got $(cat "$T/watch.rc"))" \
	[ "$(cat "$T/watch.rc")" = 1 ]
check "... says the events could not be written" \
	grep -q "file watch: cannot write the events to stdout: Broken pipe" "$T/watch.err"

echo "$FAILS failed"
[ "$FAILS" = 0 ]
