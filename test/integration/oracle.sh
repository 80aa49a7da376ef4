#!/usr/bin/env bash
# Oracle test: every continuous view equals the same SELECT run as a batch
# query over the same rows in a plain table, on real flights (January 2001,
# 508,239 rows). Also covers INSERT ... SELECT into a stream and numeric /
# float8 columns. Prints PASS/FAIL lines; exits non-zero on any failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/test/cluster.sh"
trap cluster_stop EXIT
cluster_start /tmp/velostream-oracle 55441
data="$root/data/flights-2001-01.csv.gz"
chmod o+r "$data"

psql_f "$root/test/integration/oracle_views.sql"
# numeric and float8 columns, fed by INSERT ... SELECT
psql_c "
CREATE FOREIGN TABLE flights_x (ts timestamptz, delay float8, distance numeric, origin text) SERVER velostream;
CREATE MATERIALIZED VIEW x_by_origin WITH (velostream.continuous) AS
  SELECT origin, count(*) AS n, sum(distance) AS miles, avg(distance) AS avg_miles, min(delay) AS min_delay,
         max(delay) AS max_delay, sum(delay) AS total_delay, avg(delay) AS avg_delay
  FROM flights_x GROUP BY origin;"

start=$(date +%s%N)
psql_c "\\copy flights FROM PROGRAM 'zcat $data' (FORMAT csv, HEADER)"
psql_c "\\copy flights_plain FROM PROGRAM 'zcat $data' (FORMAT csv, HEADER)"
psql_c "INSERT INTO flights_x SELECT ts, delay / 7.0, distance / 3.0, origin FROM flights_plain"
for v in delay_by_origin long_delays totals west_coast_daily origin_spread x_by_origin; do
  [ "$(psql_c "SELECT velostream.wait('$v', '600 s')")" = t ] || { echo "FAIL: $v did not catch up"; exit 1; }
done
echo "all views complete after $(( ($(date +%s%N) - start) / 1000000 )) ms"

fail=0
check() {  # check NAME SQL-returning-a-count-of-differences
  local got
  got=$(psql_c "$2")
  if [ "$got" = 0 ]; then echo "PASS: $1"; else echo "FAIL: $1 ($got differences)"; fail=1; fi
}
rows=$(psql_c "SELECT count(*) FROM flights_plain")
[ "$rows" = 508239 ] && echo "PASS: loaded $rows rows" || { echo "FAIL: loaded $rows rows"; fail=1; }
for v in delay_by_origin long_delays totals west_coast_daily origin_spread; do
  check "$v equals its batch query ($(psql_c "SELECT count(*) FROM $v") rows)" \
    "SELECT count(*) FROM ((TABLE $v EXCEPT TABLE oracle_$v) UNION ALL (TABLE oracle_$v EXCEPT TABLE $v)) d"
done
# numeric exactly; float8 sums depend on summation order, so within 1e-9 relative.
check "x_by_origin (numeric exact, float8 within 1e-9)" "
  WITH o AS (SELECT origin, count(*) AS n, sum(distance / 3.0) AS miles, avg(distance / 3.0) AS avg_miles,
                    min(delay / 7.0) AS min_delay, max(delay / 7.0) AS max_delay, sum(delay / 7.0) AS total_delay,
                    avg(delay / 7.0) AS avg_delay
             FROM flights_plain GROUP BY origin)
  SELECT count(*) FROM o FULL JOIN x_by_origin v USING (origin)
  WHERE v.n IS DISTINCT FROM o.n OR v.miles IS DISTINCT FROM o.miles OR v.avg_miles IS DISTINCT FROM o.avg_miles
     OR v.min_delay IS DISTINCT FROM o.min_delay OR v.max_delay IS DISTINCT FROM o.max_delay
     OR abs(v.total_delay - o.total_delay) > 1e-9 * greatest(1, abs(o.total_delay))
     OR abs(v.avg_delay - o.avg_delay) > 1e-9 * greatest(1, abs(o.avg_delay))
     OR v.total_delay IS NULL OR o.total_delay IS NULL"
check "nothing left in the stream logs" "SELECT coalesce(sum(backlog), 0) FROM velostream.stats"
check "no dead letters" "SELECT count(*) FROM velostream.errors"
exit $fail
