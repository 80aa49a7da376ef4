#!/usr/bin/env bash
# Crash test: real flights are loaded in chunks, each chunk in one transaction
# that COPYs it into the stream and into a plain table. Meanwhile partition
# workers are killed with SIGKILL (PostgreSQL then restarts every backend) and
# the server is stopped with an immediate shutdown (no checkpoint) right
# after a commit. A chunk whose transaction died is loaded again. In the end
# every view must equal its batch query over the plain table exactly: no row
# lost, none counted twice, no aborted row counted.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/test/cluster.sh"
trap 'cluster_stop; rm -rf "$chunks"' EXIT
cluster_start /tmp/velostream-crash 55442 "velostream.flush_interval = 20" "restart_after_crash = on"
chunks=$(mktemp -d /tmp/velostream-chunks.XXXXXX)
zcat "$root/data/flights-2001-01.csv.gz" | tail -n +2 | split -l 20000 - "$chunks/chunk."
chmod -R o+rx "$chunks"
psql_f "$root/test/integration/oracle_views.sql"
sleep 1

# load CHUNK: one transaction into both tables; retried until it commits.
load() {
  local tries=0
  until "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$VS_DIR" -p "$VS_PORT" -U postgres -d postgres >/dev/null 2>&1 <<SQL
BEGIN;
\\copy flights FROM '$1' (FORMAT csv)
\\copy flights_plain FROM '$1' (FORMAT csv)
COMMIT;
SQL
  do
    tries=$((tries + 1))
    [ $tries -lt 200 ] || { echo "FAIL: could not load $1"; exit 1; }
    sleep 0.2
  done
  if [ $tries -gt 0 ]; then echo "chunk $(basename "$1") committed after $tries failed attempts"; fi
}

# kill_worker: SIGKILL one partition worker of this cluster.
kill_worker() {
  local pm pid
  pm=$(head -n 1 "$VS_DIR/data/postmaster.pid")
  pid=$(pgrep -P "$pm" -f "velostream worker" | head -n 1 || true)
  if [ -n "$pid" ]; then kill -9 "$pid"; kills=$((kills + 1)); echo "killed worker $pid during chunk $n"; fi
}

kills=0
n=0
for f in "$chunks"/chunk.*; do
  n=$((n + 1))
  if [ $n -eq 9 ]; then
    # immediate shutdown right after a commit, then start again
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$VS_DIR/data" -m immediate -w stop >/dev/null
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$VS_DIR/data" -l "$VS_DIR/server.log" -w start >/dev/null
    echo "immediate shutdown and restart before chunk $n"
  fi
  load "$f" &
  loader=$!
  case $n in
    5|12|19) sleep 0.1; kill_worker ;;   # lands while chunks stream in
  esac
  wait $loader
done
echo "loaded $n chunks, killed $kills workers"

fail=0
for v in delay_by_origin long_delays totals west_coast_daily origin_spread; do
  ok=$(psql_c "SELECT velostream.wait('$v', '600 s')" || echo f)
  [ "$ok" = t ] || { echo "FAIL: $v did not catch up"; fail=1; }
done
rows=$(psql_c "SELECT count(*) FROM flights_plain")
echo "oracle holds $rows committed rows"
[ "$rows" -ge 508239 ] || { echo "FAIL: oracle lost rows"; fail=1; }
for v in delay_by_origin long_delays totals west_coast_daily origin_spread; do
  d=$(psql_c "SELECT count(*) FROM ((TABLE $v EXCEPT TABLE oracle_$v) UNION ALL (TABLE oracle_$v EXCEPT TABLE $v)) d")
  if [ "$d" = 0 ]; then echo "PASS: $v equals its batch query after crashes"; else echo "FAIL: $v ($d differences)"; fail=1; fi
done
total=$(psql_c "SELECT n FROM totals")
[ "$total" = "$rows" ] && echo "PASS: totals.n = $total = committed rows" || { echo "FAIL: totals.n=$total rows=$rows"; fail=1; }
restarts=$(grep -c "restarting worker\|worker for stream flights partition" "$VS_DIR/server.log" || true)
echo "worker starts seen in the log: $restarts"
[ "$kills" -ge 1 ] || { echo "FAIL: no worker was killed"; fail=1; }
exit $fail
