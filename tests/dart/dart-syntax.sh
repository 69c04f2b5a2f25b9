#!/bin/sh
# The Dart syntax check's driver, run by ctest.
#
#   dart-syntax.sh setup    NPM_DIR          install the parser into NPM_DIR
#   dart-syntax.sh check    NPM_DIR PATH...  parse every .dart file under PATH
#   dart-syntax.sh selftest NPM_DIR          prove the check catches errors
#   dart-syntax.sh api      NPM_DIR PACKAGE  check calls of the package's API
#                                            (check_api_calls.js)
#   dart-syntax.sh api-selftest NPM_DIR PACKAGE  prove that check catches them
#
# The parser is web-tree-sitter with the Dart grammar from
# @repomix/tree-sitter-wasms, pinned in package.json / package-lock.json
# here. (The tree-sitter-dart package's own .wasm predates Dart 3 and rejects
# sealed classes, records and switch expressions, which the package uses.)
# Node.js and npm are not taken from Debian's package list: they must be on
# PATH; without them the check fails and says so.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mode=${1:?usage: dart-syntax.sh setup|check|selftest|api|api-selftest NPM_DIR [PATH...]}
dir=${2:?NPM_DIR missing}
shift 2

need() {
	if ! command -v "$1" >/dev/null 2>&1; then
		echo "dart-syntax: '$1' not found on PATH. The Dart syntax check needs" \
		     "Node.js 18 or later with npm (Debian: apt-get install nodejs npm)." >&2
		exit 1
	fi
}

need node
case $mode in
setup)
	need npm
	mkdir -p "$dir"
	# Reinstall only when the pinned versions changed.
	if [ -f "$dir/node_modules/.package-lock.json" ] &&
	   cmp -s "$here/package-lock.json" "$dir/package-lock.json"; then
		echo "dart-syntax: parser already installed in $dir"
		exit 0
	fi
	cp "$here/package.json" "$here/package-lock.json" "$dir/"
	cd "$dir"
	# --ignore-scripts: nothing is compiled or downloaded beyond the
	# registry tarballs.
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	echo "dart-syntax: parser installed in $dir"
	;;
check)
	exec node "$here/parse_dart.js" "$dir/node_modules" "$@"
	;;
selftest)
	exec node "$here/selftest.js" "$dir/node_modules"
	;;
api)
	exec node "$here/check_api_calls.js" "$dir/node_modules" "$@"
	;;
api-selftest)
	exec node "$here/check_api_calls_selftest.js" "$dir/node_modules" "$@"
	;;
*)
	echo "dart-syntax: unknown mode $mode" >&2
	exit 2
	;;
esac
