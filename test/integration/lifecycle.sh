#!/usr/bin/env bash
# Lifecycle: CREATE EXTENSION needs shared_preload_libraries and the
# configured database; workers start with a stream, are restarted when they
# exit, and stop when the stream or the extension is dropped.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/test/cluster.sh"
trap cluster_stop EXIT
fail=0
pass() { echo "PASS: $*"; }
failed() { echo "FAIL: $*"; fail=1; }
workers() { pgrep -P "$(head -n 1 "$VS_DIR/data/postmaster.pid")" -f "velostream worker" | wc -l; }
wait_workers() {  # wait_workers N: up to 10 s for exactly N partition workers
  for _ in $(seq 1 50); do [ "$(workers)" -eq "$1" ] && return 0; sleep 0.2; done
  return 1
}

# 1. Without shared_preload_libraries.
cluster_start /tmp/velostream-life 55443 "shared_preload_libraries = ''"
out=$(psql_c "CREATE EXTENSION velostream" 2>&1)
if echo "$out" | grep -q "velostream must be loaded via shared_preload_libraries" &&
   echo "$out" | grep -q "HINT:  Add 'velostream' to shared_preload_libraries"; then
  pass "CREATE EXTENSION without preloading fails with a hint"
else failed "no preload error: $out"; fi
cluster_stop

# 2. In another database than velostream.database.
cluster_start /tmp/velostream-life 55443
psql_c "CREATE DATABASE other"
out=$("$PGBIN/psql" -X -At -h "$VS_DIR" -p "$VS_PORT" -U postgres -d other -c "CREATE EXTENSION velostream" 2>&1)
echo "$out" | grep -q 'can only be created in database "postgres"' && pass "CREATE EXTENSION in another database fails" \
  || failed "other database: $out"

# 3. Workers follow streams.
psql_c "CREATE EXTENSION velostream;
  CREATE FOREIGN TABLE s (k text, v int) SERVER velostream OPTIONS (partitions '3');
  CREATE MATERIALIZED VIEW sv WITH (velostream.continuous) AS SELECT k, sum(v) AS total FROM s GROUP BY k;"
wait_workers 3 && pass "3 partition workers for a 3-partition stream" || failed "expected 3 workers, saw $(workers)"

# 4. A worker that exits (SIGTERM, no crash restart) is restarted and loses nothing.
psql_c "INSERT INTO s SELECT 'a', 1 FROM generate_series(1, 1000)"
psql_c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'velostream worker' LIMIT 1" >/dev/null
psql_c "INSERT INTO s SELECT 'a', 1 FROM generate_series(1, 1000)"
sleep 0.5
wait_workers 3 && pass "terminated worker restarted" || failed "worker not restarted: $(workers)"
[ "$(psql_c "SELECT velostream.wait('sv', '30 s')")" = t ] && [ "$(psql_c "SELECT total FROM sv")" = 2000 ] \
  && pass "rows around the restart counted once (2000)" || failed "sv.total = $(psql_c "SELECT total FROM sv")"

# 4b. Views created while rows flow: each counts exactly the rows of the
# transactions that commit with or after its CREATE, even when a worker is busy
# starting the previous view. Odd views: the CREATE and the INSERT in one
# transaction; even views: in two (one psql session, autocommit).
views=25
for i in $(seq 1 $views); do
  create="CREATE MATERIALIZED VIEW c$i WITH (velostream.continuous) AS SELECT k, count(*) AS n FROM s GROUP BY k"
  insert="INSERT INTO s SELECT 'k' || g, 1 FROM generate_series(1, 30) g"
  if [ $((i % 2)) = 1 ]; then psql_c "$create; $insert" >/dev/null
  else printf '%s;\n%s;\n' "$create" "$insert" | psql_f - >/dev/null; fi
done
bad=""
for i in $(seq 1 $views); do
  [ "$(psql_c "SELECT velostream.wait('c$i', '30 s')")" = t ] || bad="$bad c$i:timeout"
  n=$(psql_c "SELECT sum(n) FROM c$i")
  [ "$n" = $((30 * (views - i + 1))) ] || bad="$bad c$i:$n"
done
[ -z "$bad" ] && pass "$views views created between inserts count exactly the rows committed with or after their CREATE" \
  || failed "views created between inserts miscounted:$bad"

# 5. Dropping the stream stops its workers; DROP EXTENSION removes everything.
psql_c "SET client_min_messages = warning; DROP FOREIGN TABLE s CASCADE"
wait_workers 0 && pass "workers stop when their stream is dropped" || failed "workers left: $(workers)"
psql_c "CREATE FOREIGN TABLE s2 (k text) SERVER velostream;
  CREATE MATERIALIZED VIEW s2v WITH (velostream.continuous) AS SELECT k, count(*) FROM s2 GROUP BY k;"
wait_workers 2 || failed "no workers for s2"
psql_c "SET client_min_messages = warning; DROP EXTENSION velostream CASCADE"
wait_workers 0 && pass "DROP EXTENSION stops the workers" || failed "workers left after DROP EXTENSION: $(workers)"
left=$(psql_c "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE nspname = 'velostream' OR relname IN ('s2', 's2v')")
[ "$left" = 0 ] && pass "DROP EXTENSION leaves no relation behind" || failed "$left relations left"
psql_c "CREATE EXTENSION velostream" && pass "CREATE EXTENSION again after DROP" || failed "re-create failed"
exit $fail
