#!/bin/bash
# test_units - the systemd units and the configuration file, checked with
# systemd's own tools and porterd itself:
#   - systemd-analyze verify accepts both units (ExecStart points at the
#     porterd in the build tree);
#   - systemd-analyze security --offline rates the service at 2.0 or less;
#   - the per-user units (systemd/user/) pass systemd-analyze --user verify,
#     listen where porterd and libporter look by default
#     ($XDG_RUNTIME_DIR/porter/porter.sock), read no system config, and
#     both services raise LimitNOFILE;
#   - systemd/porterd.conf is exactly what porterd --print-example-config
#     prints, porterd accepts it, and --check-config lists the same keys
#     with the same values;
#   - a bad file exits 2 naming file:line:key, and an empty --config reads
#     no file.
# Usage: test_units.sh PORTERD SOURCE_DIR UNIT_DIR
set -u
porterd=$1 src=$2 units=$3
fail=0
tmp=$(mktemp -d /tmp/porter-units-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

check() { # check NAME COMMAND... : runs, reports, remembers failures
	local name=$1
	shift
	if "$@"; then
		echo "ok   $name"
	else
		echo "FAIL $name"
		fail=1
	fi
}

verify_units() {
	local out
	out=$(cd "$units" && systemd-analyze verify --man=no ./porterd.socket ./porterd.service 2>&1)
	local rc=$?
	[ -n "$out" ] && echo "$out"
	[ $rc -eq 0 ] && [ -z "$out" ]
}

security() {
	local out
	out=$(systemd-analyze security --offline=true --threshold=20 "$units/porterd.service" 2>&1)
	local rc=$?
	echo "$out" | grep 'Overall exposure'
	local level
	level=$(echo "$out" | sed -n 's/.*Overall exposure level for porterd.service: \([0-9.]*\).*/\1/p')
	[ $rc -eq 0 ] && [ -n "$level" ] && awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }'
}

verify_user_units() {
	local out rc
	mkdir -m 0700 "$tmp/xdg"
	out=$(cd "$units/user" && XDG_RUNTIME_DIR="$tmp/xdg" \
		systemd-analyze --user verify --man=no ./porterd.socket ./porterd.service 2>&1)
	rc=$?
	[ -n "$out" ] && echo "$out"
	[ $rc -eq 0 ] && [ -z "$out" ]
}

# ListenStream=%t/... is the path porterd and libporter derive from
# XDG_RUNTIME_DIR when no socket is named.
user_socket_is_default() {
	local listen def
	listen=$(sed -n 's/^ListenStream=//p' "$units/user/porterd.socket")
	[ "$listen" = "%t/porter/porter.sock" ] || { echo "ListenStream=$listen"; return 1; }
	def=$(XDG_RUNTIME_DIR=/run/user/4242 "$porterd" --config '' --check-config |
		sed -n 's/^socket = //p')
	[ "$def" = "/run/user/4242/porter/porter.sock" ] || { echo "porterd's default: $def"; return 1; }
	grep -qx 'SocketMode=0600' "$units/user/porterd.socket" &&
		grep -qx 'DirectoryMode=0700' "$units/user/porterd.socket"
}

# The per-user daemon must not pick up the system daemon's settings.
user_reads_no_system_config() {
	grep -qx "ExecStart=.*/porterd --config ''" "$units/user/porterd.service"
}

limit_nofile() {
	grep -qx 'LimitNOFILE=65536' "$units/porterd.service" &&
		grep -qx 'LimitNOFILE=65536' "$units/user/porterd.service"
}

example_in_sync() {
	"$porterd" --print-example-config >"$tmp/example.conf" &&
		diff -u "$src/systemd/porterd.conf" "$tmp/example.conf"
}

# Keys and values as "key = value" lines: from the example file (commented
# keys have no built-in default) and from --check-config.
check_config_matches() {
	"$porterd" --config "$src/systemd/porterd.conf" --check-config >"$tmp/check.out" || return 1
	grep -q '^# configuration OK$' "$tmp/check.out" || return 1
	sed -n 's/^#\{0,1\}\([a-z][a-z-]*\) =.*/\1/p' "$src/systemd/porterd.conf" | sort >"$tmp/keys.example"
	sed -n 's/^\([a-z][a-z-]*\) =.*/\1/p' "$tmp/check.out" | sort >"$tmp/keys.check"
	diff -u "$tmp/keys.example" "$tmp/keys.check" || return 1
	# Every default in the example is the value porterd runs with, except
	# workers, which --check-config shows resolved (0 means one per CPU).
	local k v
	while IFS= read -r line; do
		k=${line%% = *}
		v=${line#* = }
		[ "$k" = workers ] && continue
		grep -qxF -- "$k = $v" "$tmp/check.out" || grep -qxF -- "$k = ${v}" <(sed 's/ $//' "$tmp/check.out") || {
			echo "default of $k differs: example '$v'"
			return 1
		}
	done < <(grep -E '^[a-z][a-z-]* = ' "$src/systemd/porterd.conf")
}

bad_file_named() {
	printf '# comment\nmax-frame = 4096\n\nmax-inflight = lots\nno-such-key = 1\n' >"$tmp/bad.conf"
	"$porterd" --config "$tmp/bad.conf" --check-config >"$tmp/bad.out" 2>"$tmp/bad.err"
	local rc=$?
	cat "$tmp/bad.err"
	[ $rc -eq 2 ] &&
		grep -q "^porterd: $tmp/bad.conf:4: max-inflight: expected an integer" "$tmp/bad.err" &&
		grep -q "^porterd: $tmp/bad.conf:5: no-such-key: unknown key" "$tmp/bad.err" &&
		! grep -q 'configuration OK' "$tmp/bad.out"
}

missing_file() {
	"$porterd" --config "$tmp/none.conf" --check-config >/dev/null 2>"$tmp/missing.err"
	[ $? -eq 2 ] && grep -q "none.conf: No such file" "$tmp/missing.err"
}

no_file() {
	"$porterd" --config '' --log-level debug --check-config >"$tmp/nofile.out" &&
		! grep -q '^# read' "$tmp/nofile.out" &&
		grep -qx 'log-level = debug' "$tmp/nofile.out"
}

flags_override_file() {
	printf 'max-inflight = 9\nlog-level = warn\n' >"$tmp/ok.conf"
	"$porterd" --config "$tmp/ok.conf" --max-inflight 11 --check-config >"$tmp/ok.out" &&
		grep -qx 'max-inflight = 11' "$tmp/ok.out" &&
		grep -qx 'log-level = warn' "$tmp/ok.out" &&
		grep -qx "# read $tmp/ok.conf" "$tmp/ok.out"
}

metrics_listen_loopback_only() {
	"$porterd" --metrics-listen 0.0.0.0:9466 --check-config >/dev/null 2>"$tmp/ml.err"
	[ $? -eq 2 ] && grep -q "metrics-listen: expected 127.0.0.1:PORT" "$tmp/ml.err" &&
		"$porterd" --metrics-listen '[::1]:9466' --check-config >/dev/null
}

# The default file is read when it exists, and its absence is no error.
default_file() {
	"$porterd" --check-config >"$tmp/default.out" || return 1
	if [ -e /etc/porter/porterd.conf ]; then
		grep -qx '# read /etc/porter/porterd.conf' "$tmp/default.out"
	else
		! grep -q '^# read' "$tmp/default.out"
	fi
}

check "systemd-analyze verify porterd.socket porterd.service" verify_units
check "systemd-analyze security exposure <= 2.0" security
check "systemd-analyze --user verify of the per-user units" verify_user_units
check "per-user socket at \$XDG_RUNTIME_DIR/porter/porter.sock, 0600" user_socket_is_default
check "per-user service reads no system config" user_reads_no_system_config
check "LimitNOFILE in both services" limit_nofile
check "systemd/porterd.conf matches --print-example-config" example_in_sync
check "--check-config lists the example's keys and defaults" check_config_matches
check "bad file: exit 2, file:line:key" bad_file_named
check "missing --config file: exit 2" missing_file
check "--config '' reads no file" no_file
check "default /etc/porter/porterd.conf optional" default_file
check "flags override the file" flags_override_file
check "metrics-listen takes loopback only" metrics_listen_loopback_only
exit $fail
