#!/usr/bin/env bash
# test_ctl.sh - porterctl against the real servers, side by side with psql
# and curl: one porterd, the ctest PostgreSQL fixture (PORTER_PG_STATE) and
# the loopback HTTP server of tests/support.
#
#   test_ctl.sh PORTERD PORTERCTL SUPPORT_DIR
#
# Each check prints "ok - what" or "not ok - what" with the evidence; the
# script exits 1 when any failed. Needs psql, curl and python3.
set -uo pipefail

PORTERD=$(realpath "$1")
CTL=$(realpath "$2")
SUPPORT=$(realpath "$3")
for tool in psql curl python3; do
	command -v "$tool" >/dev/null || { echo "not ok - $tool is not installed"; exit 1; }
done
[ -n "${PORTER_PG_STATE:-}" ] || { echo "not ok - PORTER_PG_STATE is not set (run through ctest)"; exit 1; }
CI=$(cat "$PORTER_PG_STATE/conninfo")
. "$PORTER_PG_STATE/env" # DIR PORT SUPER

T=$(mktemp -d /tmp/porter-ctl.XXXXXX)
DPID=
HPID=
cleanup() {
	[ -z "$DPID" ] || kill "$DPID" 2>/dev/null
	[ -z "$HPID" ] || kill "$HPID" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

. "$(dirname "$0")/ctl_checks.sh" # FAILS, ok, bad, check, code
# same FILE1 FILE2 WHAT: byte-equal files, else the first differences.
same() {
	if cmp -s "$1" "$2"; then
		ok "$3"
	else
		bad "$3"
		diff "$1" "$2" | head -20
	fi
}

# ---- servers ----
mkdir -p "$T/files"
"$PORTERD" --config "" --socket "$T/porter.sock" --file-roots "files=$T/files" \
	2>"$T/porterd.log" &
DPID=$!
python3 "$SUPPORT/http_server.py" --port-file "$T/http.port" --lifetime 300 &
HPID=$!
for _ in $(seq 100); do
	[ -S "$T/porter.sock" ] && [ -s "$T/http.port" ] && break
	sleep 0.1
done
export PORTER_SOCKET=$T/porter.sock
B=http://127.0.0.1:$(cat "$T/http.port")
"$CTL" ping -c 1 -i 0 >/dev/null || { echo "not ok - porterd did not start"; cat "$T/porterd.log"; exit 1; }
# Everything below compares with psql and curl: no user-level settings.
unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGPASSWORD PGOPTIONS PGSERVICE PSQLRC
export PSQLRC=/dev/null

# ---- db: output formats against psql ----
SQL="SELECT E'a\\nbb' AS x, 1 AS yy, 'é中文x😀' AS z, E'a\\tb\\x01c\\rd' AS w, NULL AS n, ''::text AS e;
SELECT 1 AS y, E'a\\nbbb' AS x, -2.5::numeric AS z;
SELECT E'x\\ny'::text AS a, 1.5::numeric AS \"n
m\";
CREATE TEMP TABLE t (a int, b text);
INSERT INTO t VALUES (1, 'one'), (22, NULL) RETURNING a;
SELECT * FROM t WHERE false;
SELECT a, b FROM t ORDER BY a"
printf '%s\n' "$SQL" >"$T/q.sql"
for mode in "" "-A" "-t" "-x" "-x -t" "--csv" "-At" "-x -A"; do
	# shellcheck disable=SC2086
	"$CTL" db $mode "$CI" "$SQL" >"$T/ctl.out" 2>&1
	# shellcheck disable=SC2086
	psql -X $mode "$CI" -f "$T/q.sql" >"$T/psql.out" 2>&1
	same "$T/ctl.out" "$T/psql.out" "db ${mode:-aligned} equals psql's"
done
psql -X "$CI" -f "$T/q.sql" >"$T/psql.out" 2>&1
"$CTL" db -f "$T/q.sql" "$CI" >"$T/ctl.out" 2>&1
same "$T/ctl.out" "$T/psql.out" "db -f FILE runs every statement as psql -f does"
"$CTL" db "$CI" <"$T/q.sql" >"$T/ctl.out" 2>&1
same "$T/ctl.out" "$T/psql.out" "db reads SQL from stdin"
# Statement splitting as psql's: BEGIN ATOMIC bodies, CASE inside them,
# words that only look like BEGIN/END, quotes, dollar quotes, comments.
cat >"$T/split.sql" <<'EOF'
CREATE OR REPLACE FUNCTION pg_temp.f(x int) RETURNS int LANGUAGE sql
BEGIN ATOMIC
  SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;
END;
SELECT pg_temp.f(5) AS f;
SELECT 1 AS begin; SELECT 2 AS "end";
BEGIN; SELECT 3 AS c; END;
SELECT E'it\'s;' AS e, $x$a;b$x$ AS d, 'x''y;' AS q; -- tail; comment
/* block ; /* nested ; */ */ SELECT (1 +
  1) AS "p;q"
EOF
psql -X "$CI" -f "$T/split.sql" >"$T/psql.out" 2>&1
"$CTL" db "$CI" -f "$T/split.sql" >"$T/ctl.out" 2>&1
same "$T/ctl.out" "$T/psql.out" "db splits statements as psql does"
"$CTL" db --null '(null)' "$CI" "SELECT NULL AS n, '' AS e" >"$T/ctl.out"
psql -X -P 'null=(null)' "$CI" -c "SELECT NULL AS n, '' AS e" >"$T/psql.out"
same "$T/ctl.out" "$T/psql.out" "db --null shows NULL apart from ''"

# 200k rows of about 100 bytes: over the 16 MiB frame, streamed.
BIG="SELECT i, md5(i::text) AS h, repeat('x', 60) AS pad FROM generate_series(1, 200000) i"
"$CTL" -t 60000 db -A "$CI" "$BIG" >"$T/ctl.out" 2>"$T/ctl.err"
st=$?
psql -X -A "$CI" -c "$BIG" >"$T/psql.out"
check "db -A of 200k rows exits 0" [ "$st" = 0 ]
same "$T/ctl.out" "$T/psql.out" "db -A of 200k rows ($(wc -c <"$T/psql.out") bytes) equals psql -A's"
"$CTL" --json db "$CI" "SELECT i FROM generate_series(1, 25000) i" | python3 -c '
import json, sys
rows = json.load(sys.stdin)["results"][0]["rows"]
assert rows == [[i] for i in range(1, 25001)], len(rows)
' && ok "db --json across three chunks parses, 25000 rows in order" || bad "db --json across chunks"
# Rows into a full disk: porterctl stops pulling at the first chunk it
# cannot write, counted in porterd's requests around the call (7; it
# pulled the whole result before saying so, 206).
reqs() { "$CTL" --json stats | python3 -c 'import json, sys; print(sum(w["requests"] for w in json.load(sys.stdin)["workers"]))'; }
r0=$(reqs)
"$CTL" -t 60000 db -A "$CI" "SELECT i FROM generate_series(1, 2000000) i" >/dev/full 2>"$T/full.err"
st=$?
r1=$(reqs)
check "db -A into a full disk: exit 1 (got $st)" [ "$st" = 1 ]
check "... says the rows could not be written, and why" \
	grep -q "porterctl db: cannot write the rows to stdout: No space left on device" "$T/full.err"
check "... and stops pulling them: $((r1 - r0)) requests, under 50" [ $((r1 - r0)) -lt 50 ]
# Under --json the error, which goes to stdout, cannot be written there
# either: it goes to stderr too (it was lost, exit 1 with no word).
"$CTL" --json db "$CI" "SELECT 1" >/dev/full 2>"$T/full.err"
st=$?
check "db --json into a full disk: exit 1 (got $st)" [ "$st" = 1 ]
check "... the error on stderr" grep -q "porterctl: db: stdout: No space left on device" "$T/full.err"

# Typed JSON, parsed back.
"$CTL" --json db "$CI" "SELECT 1 AS i, 12345678901234567890123456789012345678901234567890.5::numeric AS n,
 'NaN'::float8 AS nan, true AS b, '{\"k\": [1, null]}'::jsonb AS j, NULL::int AS z, 'a\"é'::text AS s,
 '2024-01-02'::date AS d, ARRAY[1,2] AS arr; SELECT 1/0" >"$T/json.out"
st=$?
python3 - "$T/json.out" <<'EOF' && ok "db --json keeps types and names, and the error after the results" || bad "db --json typed values"
import decimal, json, sys
d = json.load(open(sys.argv[1]), parse_float=decimal.Decimal)
r = d["results"][0]
types = [c["type"] for c in r["columns"]]
assert types == ["integer", "numeric", "double precision", "boolean", "jsonb", "integer",
                 "text", "date", "integer[]"], types
row = r["rows"][0]
assert row[0] == 1 and isinstance(row[0], int), row
assert row[1] == decimal.Decimal("12345678901234567890123456789012345678901234567890.5"), row
assert row[2] == "NaN" and row[3] is True and row[4] == {"k": [1, None]} and row[5] is None, row
assert row[6] == 'a"é' and row[7] == "2024-01-02" and row[8] == "{1,2}", row
assert r["command"] == "SELECT 1", r
assert len(d["results"]) == 1, d
assert d["error"]["code"] == "PORTER_E_DB" and "division by zero" in d["error"]["message"], d
EOF
check "db --json with an error exits 1" [ "$st" = 1 ]

# The multi-statement partial result: what ran before the error is shown.
"$CTL" db -A "$CI" "SELECT 1 AS a; SELECT 1/0; SELECT 2 AS b" >"$T/ctl.out" 2>"$T/ctl.err"
st=$?
check "db: results before a failing statement are printed, exit 1" \
	[ "$st" = 1 -a "$(cat "$T/ctl.out")" = $'a\n1\n(1 row)' ]
check "db: the error is on stderr, psql's way" grep -q '^ERROR:  division by zero' "$T/ctl.err"

# An error after whole chunks arrived (row 50000 of 60000): the aligned
# table is not printed, as psql prints none; JSON says it is incomplete.
LATE="SELECT 1 / (50000 - i) AS x FROM generate_series(1, 60000) i"
"$CTL" -t 60000 db "$CI" "$LATE" >"$T/ctl.out" 2>"$T/ctl.err"
st=$?
psql -X "$CI" -c "$LATE" >"$T/psql.out" 2>/dev/null
check "db: a late error prints no partial table, as psql (exit $st)" \
	[ "$st" = 1 -a ! -s "$T/ctl.out" -a ! -s "$T/psql.out" ]
"$CTL" -t 60000 --json db "$CI" "$LATE" >"$T/j.out"
check "db --json: a late error leaves the result marked incomplete (exit $?)" python3 -c '
import json, sys
d = json.load(open(sys.argv[1])); r = d["results"][0]
assert r["complete"] is False and r["command"] is None and d["error"]["message"] == "division by zero", d
' "$T/j.out"

# Parameters, one session for all statements.
out=$("$CTL" db -At "$CI" 'SELECT $1::int + 1, $2::text IS NULL' -- -5 '\N')
check "db: PARAMs ('--', \\N is NULL)" [ "$out" = "-4|t" ]
out=$("$CTL" db -At "$CI" -c "SET application_name = 'ctl-test'" -c "SHOW application_name")
check "db: statements share one session (SET then SHOW)" [ "$out" = $'SET\nctl-test' ]
out=$("$CTL" db --timing -At "$CI" "SELECT 1")
check "db --timing prints Time: ... ms" grep -Eq '^Time: [0-9]+\.[0-9]{3} ms$' <<<"$out"

# What the server says besides rows, on stderr as psql prints it: notices,
# errors with LINE/caret (multi-byte text, a long line cut around the
# position), DETAIL, HINT, QUERY and CONTEXT.
wire_sql=(
	"DROP TABLE IF EXISTS ctl_nosuch"
	"DO \$\$ BEGIN RAISE WARNING 'careful' USING DETAIL = 'd', HINT = 'h'; END \$\$"
	"SELECT 1 FROM
  ctl_nosuch"
	"SELECT 'ééé日本', nosuchcol"
	"SELECT '$(printf 'x%.0s' $(seq 90))', nosuchcol, 'tail'"
	"SELECT 1 AS a, nosuchcol, '$(printf 'y%.0s' $(seq 90))'"
	"DO \$\$ BEGIN EXECUTE 'SELECT * FROM ctl_nosuch'; END \$\$"
	"DO \$\$ BEGIN RAISE NOTICE 'first'; RAISE EXCEPTION 'boom' USING HINT = 'hh'; END \$\$"
	"INSERT INTO ctl_nosuch VALUES (1)"
)
for sql in "${wire_sql[@]}"; do
	"$CTL" db "$CI" "$sql" >"$T/ctl.out" 2>"$T/ctl.err"
	psql -X -q "$CI" -c "$sql" >"$T/psql.out" 2>"$T/psql.err"
	same "$T/ctl.err" "$T/psql.err" "db stderr equals psql's for: $(head -c 50 <<<"$sql" | tr '\n' ' ')"
done
# A notice flood: porterd keeps the first 100 and says how many it dropped.
"$CTL" db "$CI" "DO \$\$ BEGIN FOR i IN 1..5000 LOOP RAISE NOTICE 'n%', i; END LOOP; END \$\$" \
	>/dev/null 2>"$T/ctl.err"
check "db: a notice flood is bounded: 100 notices, then the count of the rest" \
	[ "$(grep -c '^NOTICE:  n' "$T/ctl.err")" = 100 -a \
	"$(tail -1 "$T/ctl.err")" = "porterctl db: 4900 more notices dropped by porterd" ]
# Too few parameters: porterctl counts them itself and says so in the
# command line's terms before sending anything (porterd's own answer, in
# the caller's words too, is test_db_wire's).
code 2 "db: too few PARAMs" "$CTL" db "$CI" 'SELECT $1::int + $2::int' 1
check "... say so in the caller's terms" \
	grep -qF 'db: 1 PARAM given but the statement uses $1..$2' "$T/code.err"
# --json: notices with each result, the error's fields, the notices that
# came with the error in it.
"$CTL" --json db "$CI" "DROP TABLE IF EXISTS ctl_nosuch; SELECT 1 FROM ctl_nosuch" >"$T/json.out"
check "db --json carries notices and the error's position" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
n = d["results"][0]["notices"]
assert n == [{"severity": "NOTICE", "sqlstate": "00000",
              "message": "table \"ctl_nosuch\" does not exist, skipping"}], n
assert d["results"][0]["notices_dropped"] == 0, d
e = d["error"]
assert e["sqlstate"] == "42P01" and e["severity"] == "ERROR" and e["position"] == 15, e
assert e["notices"] == [], e
' "$T/json.out"
# A LATIN1 database: porterd's connection speaks UTF-8 all the same (even
# when PGCLIENTENCODING asks otherwise), so --json holds the real text.
psql -X -q "$CI" -c "DROP DATABASE IF EXISTS porter_ctl_latin1" 2>/dev/null
psql -X -q "$CI" -c "CREATE DATABASE porter_ctl_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
PGCLIENTENCODING=LATIN1 "$CTL" --json db "$CI dbname=porter_ctl_latin1" \
	"SELECT 'café' AS t, chr(233) AS e" >"$T/json.out"
check "db --json on a LATIN1 database is UTF-8 JSON with the real text" python3 -c '
import json, sys
d = json.loads(open(sys.argv[1], "rb").read().decode("utf-8"))
assert d["results"][0]["rows"] == [["café", "é"]], d
' "$T/json.out"

# Timeouts: psql waits for a long statement, so db waits past porterctl's
# 5 s default (up to an hour) unless -t is given.
out=$("$CTL" db -At "$CI" "SELECT pg_sleep(5.5), 'waited'")
check "db without -t waits for a 5.5 s statement" [ "$out" = "|waited" ]
code 1 "db -t 1000 stops a 3 s statement" "$CTL" -t 1000 db "$CI" "SELECT pg_sleep(3)"
check "... as a timeout" grep -q PORTER_E_TIMEOUT "$T/code.err"

# Conninfo completed from the PG* environment on the client side.
out=$(PGHOST=$DIR PGPORT=$PORT PGUSER=$SUPER PGDATABASE=template1 PGAPPNAME=from-env \
	"$CTL" db -At -c "SELECT current_database(), current_user, current_setting('application_name')")
check "db: PGHOST/PGPORT/PGUSER/PGDATABASE/PGAPPNAME fill the conninfo ($out)" \
	[ "$out" = "template1|$SUPER|from-env" ]
out=$(PGHOST=$DIR PGPORT=$PORT PGUSER=$SUPER "$CTL" db -At postgres -c "SELECT current_database()")
check "db: a bare word is the database name" [ "$out" = "postgres" ]
code 2 "db: a conninfo naming a file (passfile) is refused" "$CTL" db "$CI passfile=/etc/shadow" "SELECT 1"
code 2 "db: PGSSLROOTCERT-like keywords given explicitly are refused" \
	"$CTL" db "$CI sslrootcert=/tmp/x" "SELECT 1"

# ---- db exit codes ----
code 0 "db --help" "$CTL" db --help
check "db --help prints on stdout" grep -q '^Usage: porterctl db' "$T/code.out"
code 2 "db: unknown option" "$CTL" db --bogus
code 2 "db: a conninfo libpq cannot parse" "$CTL" db "nokey=1" "SELECT 1"
code 1 "db: SQL error" "$CTL" db "$CI" "SELEC 1"
code 1 "db: the server refuses the connection" "$CTL" db "host=127.0.0.1 port=1 user=x dbname=x" "SELECT 1"
code 1 "db: -f of a missing file" "$CTL" db "$CI" -f "$T/nope.sql"
code 3 "db: daemon unreachable" env PORTER_SOCKET="$T/none.sock" "$CTL" db "$CI" "SELECT 1"
"$CTL" --json db --bogus >"$T/j.out" 2>/dev/null
check "db --json: a usage error is JSON on stdout" python3 -c '
import json, sys; d = json.load(open(sys.argv[1])); assert d["error"]["exit"] == 2' "$T/j.out"
env PORTER_SOCKET="$T/none.sock" "$CTL" --json db "$CI" "SELECT 1" >"$T/j.out" 2>/dev/null
check "db --json: daemon unreachable is JSON on stdout" python3 -c '
import json, sys; d = json.load(open(sys.argv[1])); assert d["error"]["code"] == "PORTER_E_UNREACHABLE"' "$T/j.out"

# ---- http against curl ----
strip_date() { grep -v '^Date: ' "$1" | tr -d '\r' >"$1.nodate"; }
"$CTL" http -i "$B/headers" >"$T/ctl.out"
curl -si "$B/headers" >"$T/curl.out"
strip_date "$T/ctl.out"
strip_date "$T/curl.out"
same "$T/ctl.out.nodate" "$T/curl.out.nodate" "http -i: status line and headers as curl -i"
"$CTL" http -I "$B/headers" >"$T/ctl.out"
curl -sI "$B/headers" >"$T/curl.out"
strip_date "$T/ctl.out"
strip_date "$T/curl.out"
same "$T/ctl.out.nodate" "$T/curl.out.nodate" "http -I as curl -I"
# A HEAD answer is its head alone: porterd keeps the connection for the
# next request, which read the body the test server used to send after
# it as its own answer ("Received HTTP/0.9 when not allowed").
"$CTL" http -I "$B/bin/1000" >"$T/ctl.out"
curl -sI "$B/bin/1000" >"$T/curl.out"
strip_date "$T/ctl.out"
strip_date "$T/curl.out"
same "$T/ctl.out.nodate" "$T/curl.out.nodate" "http -I of a body as curl -I"
code 0 "... and the next request on the kept connection" "$CTL" http -o "$T/ctl.body" "$B/bin/1000"
curl -s -o "$T/curl.body" "$B/bin/1000"
same "$T/ctl.body" "$T/curl.body" "... gets its whole body"
"$CTL" http -D "$T/ctl.head" -o "$T/ctl.body" "$B/bin/1000"
curl -s -D "$T/curl.head" -o "$T/curl.body" "$B/bin/1000"
strip_date "$T/ctl.head"
strip_date "$T/curl.head"
same "$T/ctl.head.nodate" "$T/curl.head.nodate" "http -D FILE as curl -D"
same "$T/ctl.body" "$T/curl.body" "http -o FILE as curl -o"

code 22 "http -f on 404 exits 22 as curl" "$CTL" http -f "$B/status/404"
check "http -f on 404 writes no body" [ ! -s "$T/code.out" ]
curl -sf "$B/status/404" >/dev/null
check "curl -f on 404 exits 22 too" [ $? = 22 ]
code 0 "http without -f on 404" "$CTL" http "$B/status/404"
check "... writes the body" [ "$(cat "$T/code.out")" = "status 404" ]

# Output that cannot be written is curl's write error, 23, wherever it
# goes (it was 1, so a curl script's test of 23 missed it).
code 23 "http body into a full disk exits 23" "$CTL" http -o /dev/full "$B/bin/100000"
check "... says where and why" grep -q "http: cannot write the body to /dev/full: No space left on device" "$T/code.err"
curl -s -o /dev/full "$B/bin/100000" 2>/dev/null
check "curl exits 23 too" [ $? = 23 ]
"$CTL" http "$B/bin/100" >/dev/full 2>"$T/full.err"
st=$?
check "http to stdout on a full disk: exit 23 (got $st)" [ "$st" = 23 ]
check "... names stdout and why" grep -q "http: cannot write the output to stdout: No space left on device" "$T/full.err"
"$CTL" http -I "$B/headers" >/dev/full 2>"$T/full.err"
st=$?
check "http -I's head on a full disk: exit 23 (got $st)" [ "$st" = 23 ]
check "... says so" grep -q "http: cannot write the output to stdout: No space left on device" "$T/full.err"
"$CTL" --json http "$B/bin/10" >/dev/full 2>"$T/full.err"
st=$?
check "http --json on a full disk: exit 23 (got $st)" [ "$st" = 23 ]
check "... the error on stderr" grep -q "http: cannot write the output to stdout: No space left on device" "$T/full.err"
code 23 "http -o into a missing directory" "$CTL" http -o "$T/no-such-dir/x" "$B/bin/10"
check "... names the file" grep -q "http: cannot write $T/no-such-dir/x: No such file or directory" "$T/code.err"
curl -s -o "$T/no-such-dir/x" "$B/bin/10" 2>/dev/null
check "curl exits 23 too" [ $? = 23 ]
code 23 "http -D into a missing directory" "$CTL" http -D "$T/no-such-dir/h" -o /dev/null "$B/bin/10"
code 61 "http --compressed of a body that is not gzip" "$CTL" http --compressed "$B/badgzip"
check "... says it does not decode" grep -q "http: cannot decode the compressed body" "$T/code.err"
curl -s --compressed "$B/badgzip" >/dev/null 2>&1
check "curl exits 61 too" [ $? = 61 ]
code 6 "http to a host name that does not resolve" "$CTL" http http://no-such-host.invalid/
check "... says so" grep -q "Could not resolve host: no-such-host.invalid" "$T/code.err"
curl -s http://no-such-host.invalid/ >/dev/null 2>&1
check "curl exits 6 too" [ $? = 6 ]

"$CTL" http -d a=1 -d 'b=2 3' "$B/echo" -w ' %{http_code} %{size_download} %{method}' >"$T/ctl.out"
curl -s -d a=1 -d 'b=2 3' "$B/echo" -w ' %{http_code} %{size_download} %{method}' >"$T/curl.out"
same "$T/ctl.out" "$T/curl.out" "http: two -d joined with '&', -w variables, as curl"
printf 'h\xc3\xa9 llo&=\n' >"$T/enc.txt"
"$CTL" http --data-urlencode 'a=b&c' --data-urlencode '=x+y' --data-urlencode 'plain/t t' \
	--data-urlencode n@"$T/enc.txt" --data-urlencode @"$T/enc.txt" -d z=1 "$B/echo" >"$T/ctl.out"
curl -s --data-urlencode 'a=b&c' --data-urlencode '=x+y' --data-urlencode 'plain/t t' \
	--data-urlencode n@"$T/enc.txt" --data-urlencode @"$T/enc.txt" -d z=1 "$B/echo" >"$T/curl.out"
same "$T/ctl.out" "$T/curl.out" "http --data-urlencode, all five forms, as curl"
"$CTL" http -G -d a=1 --data-urlencode 'b=x y' "$B/echo?q=1" -w '%{url_effective} %{method}' >"$T/ctl.out"
curl -s -G -d a=1 --data-urlencode 'b=x y' "$B/echo?q=1" -w '%{url_effective} %{method}' >"$T/curl.out"
same "$T/ctl.out" "$T/curl.out" "http -G puts the data in the query, as curl"
printf 'line1\r\nline2\n' >"$T/form.txt"
"$CTL" http -d @"$T/form.txt" "$B/echo" >"$T/ctl.out"
curl -s -d @"$T/form.txt" "$B/echo" >"$T/curl.out"
same "$T/ctl.out" "$T/curl.out" "http -d @FILE drops CR/LF as curl"
# Bodies from files and stdin are streamed to porterd piece by piece, so
# their size has no limit: a regular file goes with Content-Length, a pipe
# with chunked encoding (curl reads a pipe whole first; the server gets the
# same bytes either way).
head -c 6000000 /dev/urandom >"$T/big.bin"
"$CTL" -t 60000 http --data-binary @- "$B/echo" <"$T/big.bin" >"$T/ctl.out"
same "$T/ctl.out" "$T/big.bin" "http --data-binary @- of 6 MB echoes every byte"
tr -d '\r\n' <"$T/big.bin" | head -c 4000000 >"$T/big.txt"
"$CTL" -t 60000 http -d @- "$B/echo" <"$T/big.txt" >"$T/ctl.out"
same "$T/ctl.out" "$T/big.txt" "http -d @- of 4 MB"
head -c 20971520 /dev/urandom >"$T/huge.bin"
# -d is for text (curl cuts each line of binary data at its first NUL):
# 20 MiB of base64 lines.
head -c 15728640 /dev/urandom | base64 >"$T/huge.txt"
cat "$T/huge.txt" | "$CTL" -t 60000 http -d @- "$B/digest" >"$T/ctl.out"
cat "$T/huge.txt" | curl -s -d @- "$B/digest" >"$T/curl.out"
check "http -d @- of 20 MiB from a pipe: the server gets what curl sends" \
	[ "$(cut -d' ' -f1-2 "$T/ctl.out")" = "$(cut -d' ' -f1-2 "$T/curl.out")" ]
check "... streamed (chunked), not held whole" grep -q ' chunked ' "$T/ctl.out"
cat "$T/huge.bin" | "$CTL" -t 60000 http --data-binary @- "$B/echo" >"$T/ctl.out"
same "$T/ctl.out" "$T/huge.bin" "http --data-binary @- of 20 MiB echoes every byte"
"$CTL" -t 60000 http --data-binary @"$T/huge.bin" "$B/digest" >"$T/ctl.out"
curl -s --data-binary @"$T/huge.bin" "$B/digest" >"$T/curl.out"
same "$T/ctl.out" "$T/curl.out" "http --data-binary @FILE of 20 MiB: Content-Length and bytes as curl"
"$CTL" -t 60000 http -d @"$T/huge.txt" -d x=1 "$B/digest" >"$T/ctl.out"
curl -s -d @"$T/huge.txt" -d x=1 "$B/digest" >"$T/curl.out"
same "$T/ctl.out" "$T/curl.out" "http -d @FILE (CR/LF dropped) -d x=1, streamed with its length, as curl"
"$CTL" -t 60000 http -T "$T/huge.bin" "$B/digest" -w ' %{method}' >"$T/ctl.out"
curl -s -T "$T/huge.bin" "$B/digest" -w ' %{method}' >"$T/curl.out"
same "$T/ctl.out" "$T/curl.out" "http -T FILE of 20 MiB: PUT with Content-Length as curl"
cat "$T/big.bin" | "$CTL" -t 60000 http -T - "$B/digest" >"$T/ctl.out"
cat "$T/big.bin" | curl -s -T - "$B/digest" >"$T/curl.out"
same "$T/ctl.out" "$T/curl.out" "http -T - (a pipe): chunked as curl"
code 1 "http -d @FILE that is missing fails" "$CTL" http -d @"$T/no-such-file" "$B/echo"

# Every hop's head under -L, with the status line the server sent.
"$CTL" http -i -L "$B/redirect/2" >"$T/ctl.out"
curl -si -L "$B/redirect/2" >"$T/curl.out"
strip_date "$T/ctl.out"
strip_date "$T/curl.out"
same "$T/ctl.out.nodate" "$T/curl.out.nodate" "http -i -L: every hop's status line and headers as curl"
"$CTL" http -A t/1 -L -D "$T/ctl.head" -o /dev/null "$B/moved/308"
curl -s -A t/1 -L -D "$T/curl.head" -o /dev/null "$B/moved/308"
strip_date "$T/ctl.head"
strip_date "$T/curl.head"
same "$T/ctl.head.nodate" "$T/curl.head.nodate" "http -L -D: a 308 hop as curl"
"$CTL" http -L -v "$B/redirect/1" 2>"$T/v.err" >/dev/null
check "http -L -v shows each hop's status on stderr" grep -q '^< HTTP/1.1 302 Found' "$T/v.err"
code 0 "http --connect-timeout" "$CTL" http --connect-timeout 2.5 "$B/status/200"
code 2 "http --connect-timeout needs seconds" "$CTL" http --connect-timeout x "$B/status/200"

(cd "$T" && "$CTL" http -o - "$B/bin/100" >"$T/stdout.bin")
check "http -o - writes stdout and creates no file named -" \
	[ "$(wc -c <"$T/stdout.bin")" = 100 -a ! -e "$T/-" ]
"$CTL" http -X PUT -d x "$B/echo" -i | tr -d '\r' | grep -q '^X-Method: PUT$'
check "http -X PUT" [ $? = 0 ]
"$CTL" http "$B/echo" -i | tr -d '\r' | grep -q "^X-Got-User-Agent: porterctl/"
check "http sends a User-Agent naming porter" [ $? = 0 ]
"$CTL" http -A agent/1 -u 'al:pw' "$B/echo" -i | tr -d '\r' | grep '^X-Got-' | sort >"$T/ctl.out"
curl -s -A agent/1 -u 'al:pw' "$B/echo" -i | tr -d '\r' | grep '^X-Got-' | sort >"$T/curl.out"
same "$T/ctl.out" "$T/curl.out" "http -A and -u send what curl sends"
"$CTL" http --compressed "$B/gzip/300000" >"$T/ctl.out"
curl -s --compressed "$B/gzip/300000" >"$T/curl.out"
same "$T/ctl.out" "$T/curl.out" "http --compressed decodes gzip as curl"
"$CTL" http -v "$B/bin/5" 2>"$T/v.err" >/dev/null
check "http -v: request and response heads on stderr" \
	grep -q '^< HTTP/1.1 200 OK' "$T/v.err"
"$CTL" --json http "$B/headers" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["status"] == 200 and d["body"] == "headers", d
assert ["X-Multi", "b"] in d["headers"], d' && ok "http --json: status, headers, body" || bad "http --json"

"$CTL" --json http -D - -i -w '%{http_code}' "$B/headers" >"$T/j.out"
check "http --json: -D -, -i and -w leave stdout one JSON document" python3 -c '
import json, sys; d = json.load(open(sys.argv[1])); assert d["status"] == 200, d' "$T/j.out"

# A server that trickles 60 bytes over 30 s: -m 1 stops it, as curl -m 1.
t0=$(date +%s)
code 28 "http -m 1 stops a trickling transfer" "$CTL" http -m 1 "$B/trickle/60/500"
el=$(($(date +%s) - t0))
check "... within 15 s of a 30 s transfer (took ${el} s)" [ "$el" -lt 15 ]
curl -s -m 1 "$B/trickle/60/500" >/dev/null
check "curl -m 1 exits 28 too" [ $? = 28 ]

code 18 "http: a body shorter than its Content-Length exits 18 as curl" "$CTL" http "$B/short/1000"
# A connection reset mid-body: curl's 56 (it was 1).
code 56 "http: a connection reset while receiving" "$CTL" http -o /dev/null "$B/reset"
curl -s -o /dev/null "$B/reset" 2>/dev/null
check "curl exits 56 too" [ $? = 56 ]
# The same after part of the body was written out: the reset comes a
# second after the first 1000 bytes, long after the head reached
# porterctl. It exited 18, as for a body that ended short without error
# (and did so now and then for the 50 ms reset above, on a busy machine).
code 56 "http: a connection reset after part of the body" "$CTL" http -o /dev/null "$B/reset/1000"
check "... says so" grep -q "Recv failure" "$T/code.err"
curl -s -o /dev/null "$B/reset/1000" 2>/dev/null
check "curl exits 56 too" [ $? = 56 ]
curl -s "$B/short/1000" >/dev/null
check "curl exits 18 too" [ $? = 18 ]
code 47 "http -L --max-redirs 2 on 5 redirects exits 47" "$CTL" http -L --max-redirs 2 "$B/redirect/5"
code 0 "http -L follows" "$CTL" http -L "$B/redirect/3"
check "... to the end" [ "$(cat "$T/code.out")" = "done" ]
code 7 "http: connection refused exits 7 as curl" "$CTL" http "http://127.0.0.1:1/"
# TLS to a server that does not speak it: the handshake fails, curl's 35
# (it was 60, which curl keeps for a certificate that fails its check).
code 35 "http: https to a plain HTTP server" "$CTL" http "https://${B#http://}/status/200"
curl -s "https://${B#http://}/status/200" >/dev/null 2>&1
check "curl exits 35 too" [ $? = 35 ]
# A URL without a scheme is http's, as curl takes it (it was refused as
# malformed).
code 0 "http: a URL without a scheme" "$CTL" http -G -d a=1 "${B#http://}/echo" -w ' %{url_effective}'
check "... is http, as curl takes it" [ "$(cat "$T/code.out")" = " $B/echo?a=1" ]
code 1 "http: a malformed URL is a failed operation, not usage" "$CTL" http "http://[::1"
code 2 "http: no URL" "$CTL" http
code 2 "http: unknown option" "$CTL" http --bogus "$B/"
code 0 "http --help" "$CTL" http --help
check "http --help prints on stdout" grep -q '^Usage: porterctl http' "$T/code.out"
code 3 "http: daemon unreachable" env PORTER_SOCKET="$T/none.sock" "$CTL" http "$B/"
"$CTL" --json http -f "$B/status/500" >"$T/j.out" 2>/dev/null
check "http --json: -f's failure is JSON on stdout" python3 -c '
import json, sys; d = json.load(open(sys.argv[1])); assert d["error"]["exit"] == 22, d' "$T/j.out"

# ---- file ----
code 0 "file --help" "$CTL" file --help
check "file --help prints on stdout" grep -q '^Usage: porterctl file' "$T/code.out"
code 2 "file: unknown subcommand" "$CTL" file frob x
code 1 "file cat of a missing file" "$CTL" file cat nope
code 3 "file: daemon unreachable" env PORTER_SOCKET="$T/none.sock" "$CTL" file ls
echo one | "$CTL" file put f.txt
echo two >"$T/two"
code 1 "file put -x -a on an existing file fails: -x is kept" "$CTL" file put -x -a f.txt "$T/two"
check "... and the file is unchanged" [ "$(cat "$T/files/f.txt")" = one ]
code 1 "file put of an unreadable local file" "$CTL" file put g.txt "$T/nope"
printf 'a\0b' | "$CTL" --json file put bin.dat >"$T/j.out"
check "file --json put prints what it wrote" python3 -c '
import json, sys; d = json.load(open(sys.argv[1])); assert d == {"path": "bin.dat", "bytes": 3}, d' "$T/j.out"
"$CTL" --json file cat bin.dat >"$T/j.out"
check "file --json cat: binary content as body_base64" python3 -c '
import base64, json, sys
d = json.load(open(sys.argv[1])); assert base64.b64decode(d["body_base64"]) == b"a\0b", d' "$T/j.out"
"$CTL" --json file cat f.txt >"$T/j.out"
check "file --json cat: text as body" python3 -c '
import json, sys; d = json.load(open(sys.argv[1])); assert d["body"] == "one\n", d' "$T/j.out"
"$CTL" --json file rm bin.dat >"$T/j.out"
check "file --json rm" python3 -c '
import json, sys; d = json.load(open(sys.argv[1])); assert d == {"removed": "bin.dat"}, d' "$T/j.out"
"$CTL" --json file cat nope >"$T/j.out" 2>/dev/null
check "file --json: errors are JSON on stdout" python3 -c '
import json, sys; d = json.load(open(sys.argv[1])); assert d["error"]["code"] == "PORTER_E_FILE_NOT_FOUND", d' "$T/j.out"

# ---- the rest ----
for cmd in ping stats cancel version batch; do
	code 0 "$cmd --help" "$CTL" "$cmd" --help
	check "... on stdout" grep -q "^Usage: porterctl $cmd" "$T/code.out"
done
code 0 "porterctl --help" "$CTL" --help
check "porterctl --help states the exit codes" grep -q '3  the daemon is unreachable' "$T/code.out"
code 2 "no command" "$CTL"
code 2 "unknown command" "$CTL" frob
code 2 "ping -c x" "$CTL" ping -c x
code 2 "cancel of something that is not an id" "$CTL" cancel abc
code 2 "stats with an argument" "$CTL" stats extra
code 2 "version with an argument" "$CTL" version extra
code 3 "stats: daemon unreachable" env PORTER_SOCKET="$T/none.sock" "$CTL" stats
code 3 "version: daemon unreachable" env PORTER_SOCKET="$T/none.sock" "$CTL" version
# The client's version is known without a daemon: printed first by
# 'version' (it printed nothing but the error), alone by --version and -V,
# as 'porterd --version' does (it was an unknown option, exit 2).
check "... still prints the client's version" grep -qx 'porterctl [0-9][0-9.]*' "$T/code.out"
check "... and names the socket it tried" grep -q "$T/none.sock" "$T/code.err"
for v in --version -V; do
	code 0 "porterctl $v, no daemon needed" env PORTER_SOCKET="$T/none.sock" "$CTL" $v
	check "... prints porterctl's version alone" grep -qx 'porterctl [0-9][0-9.]*' "$T/code.out"
	check "... and nothing else" test "$(wc -l <"$T/code.out")" = 1
done
code 0 "version with a daemon" "$CTL" version
check "... prints both, the client's first" sh -c "head -1 '$T/code.out' | grep -qx 'porterctl [0-9.]*' && sed -n 2p '$T/code.out' | grep -qx 'porterd [0-9.]*'"
check "porterctl --help names --version" grep -q -- '-V, --version' <("$CTL" --help)
code 3 "cancel: daemon unreachable" env PORTER_SOCKET="$T/none.sock" "$CTL" cancel 7
code 1 "ping: the daemon's deadline passes (-t 200, -d 2000)" "$CTL" -t 200 ping -c 1 -d 2000
code 1 "batch: a member fails" sh -c "echo '[{\"op\":\"file_read\",\"path\":\"nope\"}]' | '$CTL' batch"
# A database that cannot be reached: libpq's message has two lines, and
# there is no SQLSTATE (the member printed 'SQLSTATE ; ' and broke the
# table in two).
echo "[{\"op\":\"db\",\"conninfo\":\"host=$T/no-pg dbname=x\",\"sql\":\"SELECT 1\"},{\"op\":\"ping\"}]" >"$T/b.json"
code 1 "batch: a member whose database cannot be reached" "$CTL" batch "$T/b.json"
check "... is one line, the table's three" sh -c "[ \$(wc -l <'$T/code.out') = 3 ]"
check "... names the cause" grep -q "^0 .*PORTER_E_DB_CONNECT .*No such file or directory Is the server running" "$T/code.out"
check "... without an empty SQLSTATE" sh -c "! grep -q 'SQLSTATE ;' '$T/code.out'"
# A db member's conninfo is completed on this side, as db's is: from the
# PG* environment (it went to porterd as it was, so porterd's defaults
# applied: its socket directory, its user).
echo '[{"op":"db","conninfo":"dbname=postgres","sql":"SELECT 42"}]' >"$T/b.json"
code 0 "batch: a db member's conninfo from the PG* environment" \
	env PGHOST="$DIR" PGPORT="$PORT" PGUSER="$SUPER" "$CTL" batch "$T/b.json"
check "... ran the query" grep -q "SELECT 1, 1 row(s), first value 42" "$T/code.out"
echo '[{"op":"db","conninfo":"passfile=/etc/passwd dbname=postgres","sql":"SELECT 1"}]' >"$T/b.json"
code 1 "batch: a db member's conninfo naming a file is refused" "$CTL" batch "$T/b.json"
check "... as db refuses it" grep -q "conninfo keyword 'passfile' names a file" "$T/code.err"
code 3 "ping: daemon unreachable" env PORTER_SOCKET="$T/none.sock" "$CTL" ping -c 1
code 1 "batch: input that is not JSON" sh -c "echo nope | '$CTL' batch"
code 1 "batch: a missing FILE" "$CTL" batch "$T/nope.json"
"$CTL" --json -t 200 ping -c 2 -i 0 -d 2000 >"$T/j.out" 2>/dev/null
check "ping --json: a failure is one JSON object with its error" python3 -c '
import json, sys
d = json.load(open(sys.argv[1])); assert d["error"]["code"] == "PORTER_E_TIMEOUT" and d["error"]["exit"] == 1, d' "$T/j.out"
"$CTL" --json ping -c x >"$T/j.out" 2>/dev/null
check "ping --json: a usage error is JSON on stdout" python3 -c '
import json, sys; d = json.load(open(sys.argv[1])); assert d["error"]["code"] == "usage", d' "$T/j.out"

echo "$FAILS failed"
[ "$FAILS" = 0 ]
