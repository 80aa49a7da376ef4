#!/usr/bin/env bash
# Differential query generator test (README, "Differential query generator"):
# DG_QUERIES (default 1000) random continuous views from a grammar over the
# flights columns (keys, expressions, WHERE, aggregates with and without
# FILTER / DISTINCT, select-list expressions, HAVING), each fed a slice of real
# flights in several transactions and compared with the same SELECT run as a
# batch query over a plain table; queries with unsupported constructs must be
# refused with the expected SQLSTATE. The generator and the checks are in
# differential.py, the slice and the comparison in differential.sql.
# Seeded and reproducible: DG_SEED (default 1); DG_ONLY=N reruns query N alone;
# DG_KEEP=1 leaves the cluster and the views running (and fails the last check);
# DG_NATIVE=off has PostgreSQL's executor evaluate every computed column
# (velostream.native_expressions), to compare both paths.
# Prints PASS/FAIL lines; exits non-zero on any failure.
#   long profile: DG_QUERIES=10000 DG_SEED=7 bash test/integration/differential.sh
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/test/cluster.sh"
[ -n "${DG_KEEP:-}" ] || trap cluster_stop EXIT   # DG_KEEP=1: leave the cluster running to inspect
work=/tmp/velostream-differential
cluster_start "$work" 55471 "velostream.flush_interval = 50" "timezone = 'UTC'" \
  "velostream.native_expressions = ${DG_NATIVE:-on}"
data="$root/data/flights-2001-01.csv.gz"
chmod o+r "$data"

# Two streams (one partition: every view owns its groups; two partitions: a
# view owns its groups if it groups by the routing column, else shares them)
# and the slice of flights they are fed from (differential.sql).
psql_c "
CREATE EXTENSION velostream;
CREATE FOREIGN TABLE s1 (ts timestamptz, delay int, distance int, origin text, destination text)
  SERVER velostream OPTIONS (partitions '1');
CREATE FOREIGN TABLE s2 (ts timestamptz, delay int, distance int, origin text, destination text)
  SERVER velostream OPTIONS (partitions '2');
CREATE TABLE dg_raw (ts timestamptz, delay int, distance int, origin text, destination text);" &&
psql_c "\\copy dg_raw FROM PROGRAM 'zcat $data' (FORMAT csv, HEADER)" &&
psql_f "$root/test/integration/differential.sql" &&
psql_c "\\copy (SELECT ts, delay, distance, origin, destination FROM dg_plain WHERE id BETWEEN 1201 AND 1900) TO '$work/chunk.csv' (FORMAT csv)" ||
  { echo "FAIL: differential: setup"; exit 1; }
rows=$(psql_c "SELECT count(*) FROM dg_plain")
echo "slice: $rows rows ($(psql_c "SELECT count(*) FROM dg_plain WHERE delay = 0") with delay = 0)"

DG_PSQL="$PGBIN/psql -X -q -At -h $VS_DIR -p $VS_PORT -U postgres -d postgres" DG_WORK="$work" \
  python3 "$root/test/integration/differential.py"
rc=$?
left=$(psql_c "SELECT count(*) FROM velostream.views")
[ "$left" = 0 ] && echo "PASS: differential: every view dropped, none left in velostream.views" \
  || { echo "FAIL: differential: $left views left in velostream.views"; rc=1; }
exit $rc
