#!/usr/bin/env bash
# test_install.sh - what README "Using libporter from C" tells a newcomer:
# install the build, compile the README's C example against it with
# pkg-config, run it. The install goes to a temp prefix given to
# `cmake --install --prefix` (no reconfigure), where porter.pc must point
# (it pointed at the configure's prefix, /usr/local, before). The library
# directory is lib, or lib/<multiarch> in a build configured with the
# prefix /usr (GNUInstallDirs), as README's install sections configure it.
# The installed porterctl runs as it is, without LD_LIBRARY_PATH.
#
#   test_install.sh BUILD_DIR README
set -uo pipefail
BUILD=$(realpath "$1")
README=$(realpath "$2")
T=$(mktemp -d /tmp/porter-install.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/ctl_checks.sh" # FAILS, ok, bad

cmake --install "$BUILD" --prefix "$T/p" >"$T/install.log" 2>&1 || { cat "$T/install.log"; exit 1; }
pc=$(find "$T/p" -name porter.pc)
LIBDIR=$(dirname "$(dirname "$pc")")
export PKG_CONFIG_PATH=$LIBDIR/pkgconfig
flags=$(pkg-config --cflags --libs porter) && ok "pkg-config knows porter" || bad "pkg-config knows porter"
case "$flags" in
"-I$T/p/"*) ok "... inside the install prefix: $flags" ;;
*) bad "... inside the install prefix: $flags" ;;
esac
# The README's first C block, as a reader would paste it into main().
{
	echo '#include <stdio.h>'
	awk '/^```c$/ { on = 1; next } on && /^```$/ { exit } on' "$README" | grep '^#include'
	echo 'int main(void) {'
	awk '/^```c$/ { on = 1; next } on && /^```$/ { exit } on' "$README" | grep -v '^#include'
	echo 'return 0; }'
} >"$T/app.c"
if cc "$T/app.c" -o "$T/app" $flags 2>"$T/cc.err"; then
	ok "the README's C example compiles against the install"
else
	bad "the README's C example compiles against the install"
	cat "$T/cc.err"
fi
# No daemon at that path: the example says why, from the installed library.
if [ -x "$T/app" ] && PORTER_SOCKET=$T/none.sock LD_LIBRARY_PATH=$LIBDIR "$T/app" 2>"$T/run.err" &&
	grep -q "porter: cannot connect to porterd at $T/none.sock" "$T/run.err"; then
	ok "... and runs, saying there is no daemon"
else
	bad "... and runs, saying there is no daemon"
	cat "$T/run.err" 2>/dev/null
fi
# Under /usr/local, CMake's default prefix, the loader finds nothing new
# until ldconfig runs; under --prefix DIR never: porterctl carries the way
# to its library. The daemon named does not exist, hence exit 3.
PORTER_SOCKET=$T/none.sock "$T/p/bin/porterctl" ping -c 1 >/dev/null 2>"$T/ctl.err"
rc=$?
if [ $rc = 3 ] && grep -q "$T/none.sock" "$T/ctl.err"; then
	ok "the installed porterctl runs without LD_LIBRARY_PATH"
else
	bad "the installed porterctl runs without LD_LIBRARY_PATH (exit $rc)"
	cat "$T/ctl.err"
fi
echo "$FAILS failed"
[ "$FAILS" = 0 ]
