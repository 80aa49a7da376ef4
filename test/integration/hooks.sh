#!/usr/bin/env bash
# Hooks play well with others: with pg_stat_statements loaded before velostream
# (its hook below ours) and after it (its hook above ours), the statements
# velostream runs itself — CREATE of a continuous view, COPY into a stream on
# the fast path — are seen by pg_stat_statements with their text, calls and
# COPY's row count, and still do their work.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/test/cluster.sh"
trap cluster_stop EXIT
fail=0
pass() { echo "PASS: $*"; }
failed() { echo "FAIL: $*"; fail=1; }

for order in "pg_stat_statements,velostream" "velostream,pg_stat_statements"; do
  cluster_start /tmp/velostream-hooks 55447 "shared_preload_libraries = '$order'" "pg_stat_statements.track_utility = on"
  psql_c "CREATE EXTENSION velostream; CREATE EXTENSION pg_stat_statements;
          CREATE FOREIGN TABLE hs (k int, v int) SERVER velostream;"
  psql_c "CREATE MATERIALIZED VIEW hv WITH (velostream.continuous) AS SELECT k, count(*) AS n, sum(v) AS total FROM hs GROUP BY k"
  tag=$(seq 1 1000 | sed 's/$/,2/' | "$PGBIN/psql" -X -h "$VS_DIR" -p "$VS_PORT" -U postgres -d postgres \
          -c "COPY hs FROM STDIN (FORMAT csv)" 2>&1)
  [ "$tag" = "COPY 1000" ] && pass "[$order] COPY into a stream reports COPY 1000" || failed "[$order] COPY said: $tag"
  psql_c "SELECT velostream.wait('hv')" >/dev/null
  got=$(psql_c "SELECT count(*) || '/' || sum(n) || '/' || sum(total) FROM hv")
  [ "$got" = "1000/1000/2000" ] && pass "[$order] the view counted the COPY" || failed "[$order] view: $got"
  got=$(psql_c "SELECT calls || '/' || rows FROM pg_stat_statements WHERE query LIKE 'COPY hs FROM STDIN%'")
  [ "$got" = "1/1000" ] && pass "[$order] pg_stat_statements sees COPY into the stream (1 call, 1000 rows)" \
    || failed "[$order] pg_stat_statements COPY entry: '$got'"
  got=$(psql_c "SELECT calls FROM pg_stat_statements WHERE query LIKE 'CREATE MATERIALIZED VIEW hv WITH (velostream.continuous)%'")
  [ "$got" = 1 ] && pass "[$order] pg_stat_statements sees CREATE MATERIALIZED VIEW ... velostream.continuous" \
    || failed "[$order] pg_stat_statements CREATE entry: '$got'"
  out=$(psql_c "CALL velostream._run_intercepted()" 2>&1)
  echo "$out" | grep -q "is internal to velostream" && pass "[$order] the internal procedure refuses direct calls" \
    || failed "[$order] CALL velostream._run_intercepted(): $out"
  cluster_stop
done
exit $fail
