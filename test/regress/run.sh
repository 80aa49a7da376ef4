#!/usr/bin/env bash
# Runs the pg_regress suite (REGRESS in the Makefile: sql/<test>.sql against
# expected/<test>.out) on a temporary instance that preloads velostream: it is
# `make installcheck` with pg_regress's --temp-instance and --temp-config
# (velostream.conf here). The extension must be installed (make install).
# Runs as root: the suite is copied to a directory the postgres user owns,
# since PostgreSQL refuses to run as root. pg_regress's initdb takes its
# locale from the environment, so it runs in a clean one with LANG=C.UTF-8
# (present on every Debian 12), whatever the caller's LANG and LC_*.
# On failure the diffs are printed and the outputs copied to results/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d /tmp/velostream-regress.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r "$root/Makefile" "$root/velostream.control" "$root/sql" "$root/expected" "$here/velostream.conf" "$work/"
chown -R postgres "$work"
set +e
runuser -u postgres -- env -i PATH="$PATH" HOME="$work" LANG=C.UTF-8 \
  make -C "$work" --no-print-directory installcheck \
  EXTRA_REGRESS_OPTS="--temp-instance=$work/tmp_check --temp-config=$work/velostream.conf --port=${VELOSTREAM_REGRESS_PORT:-55432}"
rc=$?
set -e
if [ $rc -ne 0 ]; then
  [ -f "$work/regression.diffs" ] && cat "$work/regression.diffs"
  mkdir -p "$root/results" && cp "$work"/results/*.out "$root/results/" 2>/dev/null || true
  [ -d "$work/tmp_check/log" ] && tail -n 50 "$work"/tmp_check/log/*.log
fi
exit $rc
