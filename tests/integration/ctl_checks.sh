# ctl_checks.sh - the check helpers test_ctl.sh and test_ctl_cli.sh share.
# Sourced once they have set T (their temp directory). Each check prints
# "ok - what" or "not ok - what" with the evidence and counts failures in
# FAILS, which the script turns into its exit status.
FAILS=0
ok() { echo "ok - $1"; }
bad() {
	echo "not ok - $1"
	FAILS=$((FAILS + 1))
}
# check WHAT CONDITION...: runs the condition (a command).
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else bad "$what"; fi
}
# code WANT WHAT CMD...: CMD's exit status is WANT, with stdin closed and
# within 60 s (a hang fails too); its output is left in $T/code.out and
# $T/code.err.
code() {
	local want=$1 what=$2
	shift 2
	timeout 60 "$@" >"$T/code.out" 2>"$T/code.err" </dev/null
	local got=$?
	if [ "$got" = "$want" ]; then
		ok "$what (exit $got)"
	else
		bad "$what: exit $got, want $want"
		head -5 "$T/code.out" "$T/code.err"
	fi
}
