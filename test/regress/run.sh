#!/usr/bin/env bash
# Runs the pg_regress suite against a temporary instance that preloads
# velostream (the extension must be installed: make install). Runs as root:
# the suite is copied to a directory the postgres user owns, since
# PostgreSQL refuses to run as root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pgbin=$(pg_config --bindir)
regress=$(dirname "$(pg_config --pgxs)")/../test/regress/pg_regress
work=$(mktemp -d /tmp/velostream-regress.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r "$here/sql" "$here/expected" "$here/velostream.conf" "$work/"
chown -R postgres "$work"
tests=$(cd "$here/sql" && ls *.sql | sed 's/\.sql$//' | sort)
set +e
runuser -u postgres -- bash -c "cd '$work' && '$regress' --temp-instance='$work/tmp_check' \
  --temp-config='$work/velostream.conf' --bindir='$pgbin' --inputdir=. --outputdir=. \
  --port=${VELOSTREAM_REGRESS_PORT:-55432} $(echo $tests)"
rc=$?
set -e
if [ $rc -ne 0 ]; then
  [ -f "$work/regression.diffs" ] && cat "$work/regression.diffs"
  mkdir -p "$here/results" && cp "$work"/results/*.out "$here/results/" 2>/dev/null || true
  [ -d "$work/tmp_check/log" ] && tail -n 50 "$work"/tmp_check/log/*.log
fi
exit $rc
