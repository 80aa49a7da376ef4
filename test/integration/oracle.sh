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

# The two views of issue 9, verbatim: route_daily (expression keys, so its
# groups span flights' partitions) and airport_reach (owned: flights routes
# by origin); and each also the other way: route_daily on a one-partition
# stream (owned), airport_reach on a stream routed by destination (shared).
# Those two streams get the rows by INSERT ... SELECT in four transactions.
ROUTE="  SELECT origin || '-' || destination AS route,
         date_trunc('day', ts AT TIME ZONE 'America/New_York') AS local_day,
         CASE WHEN distance < 500 THEN 'short' WHEN distance < 1500 THEN 'medium' ELSE 'long' END AS haul,
         count(*) AS flights,
         count(*) FILTER (WHERE delay > 15) AS delayed,
         round(avg(greatest(delay, 0)), 2) AS avg_delay,
         stddev_samp(delay) AS sd_delay,
         bool_or(delay > 120) AS any_long_delay,
         max(ts) AS last_departure
  FROM %s
  WHERE origin IN ('ORD', 'ATL', 'DFW', 'LAX') AND coalesce(delay, 0) > -30
  GROUP BY 1, 2, 3
  HAVING count(*) >= 5"
REACH="  SELECT origin,
         count(DISTINCT destination) AS destinations,
         hll_cardinality(hll_add_agg(hll_hash_text(destination))) AS destinations_approx,
         tdigest_percentile(delay, 100, 0.99) AS p99_delay
  FROM %s
  GROUP BY origin"
psql_c "
CREATE EXTENSION hll;
CREATE EXTENSION tdigest;
CREATE FOREIGN TABLE flights1 (ts timestamptz, delay int, distance int, origin text, destination text)
  SERVER velostream OPTIONS (partitions '1');
CREATE FOREIGN TABLE flights_d (ts timestamptz, delay int, distance int, origin text, destination text)
  SERVER velostream OPTIONS (partitions '2');
CREATE MATERIALIZED VIEW by_destination WITH (velostream.continuous) AS
  SELECT destination, count(*) AS n FROM flights_d GROUP BY destination;
CREATE MATERIALIZED VIEW route_daily WITH (velostream.continuous) AS $(printf "$ROUTE" flights);
CREATE MATERIALIZED VIEW route_daily_owned WITH (velostream.continuous) AS $(printf "$ROUTE" flights1);
CREATE VIEW oracle_route_daily AS $(printf "$ROUTE" flights_plain);
CREATE MATERIALIZED VIEW airport_reach WITH (velostream.continuous) AS $(printf "$REACH" flights);
CREATE MATERIALIZED VIEW airport_reach_shared WITH (velostream.continuous) AS $(printf "$REACH" flights_d);
CREATE VIEW oracle_airport_reach AS $(printf "$REACH" flights_plain);"

start=$(date +%s%N)
psql_c "\\copy flights FROM PROGRAM 'zcat $data' (FORMAT csv, HEADER)"
psql_c "\\copy flights_plain FROM PROGRAM 'zcat $data' (FORMAT csv, HEADER)"
psql_c "INSERT INTO flights_x SELECT ts, delay / 7.0, distance / 3.0, origin FROM flights_plain"
for q in 0 1 2 3; do
  psql_c "INSERT INTO flights1 SELECT * FROM flights_plain WHERE extract(day FROM ts)::int % 4 = $q;
          INSERT INTO flights_d SELECT * FROM flights_plain WHERE extract(day FROM ts)::int % 4 = $q;"
done
for v in delay_by_origin long_delays totals west_coast_daily origin_spread x_by_origin route_daily route_daily_owned \
         airport_reach airport_reach_shared; do
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
for v in route_daily route_daily_owned; do
  check "$v (issue 9, verbatim) equals its batch query ($(psql_c "SELECT count(*) FROM $v") rows)" \
    "SELECT count(*) FROM ((TABLE $v EXCEPT TABLE oracle_route_daily) UNION ALL (TABLE oracle_route_daily EXCEPT TABLE $v)) d"
done
# Distinct counts exact; hll's estimate equal to the batch sketch's (a union of
# sketches is the sketch of the union); tdigest's p99 within 2% of the range
# of delays of the batch digest's (merged digests are approximations).
range=$(psql_c "SELECT max(delay) - min(delay) FROM flights_plain")
for v in airport_reach airport_reach_shared; do
  check "$v (issue 9, verbatim) equals its batch query ($(psql_c "SELECT count(*) FROM $v") rows; p99 within 2% of $range)" "
    SELECT count(*) FROM $v v FULL JOIN oracle_airport_reach o USING (origin)
    WHERE v.destinations IS DISTINCT FROM o.destinations OR v.destinations_approx IS DISTINCT FROM o.destinations_approx
       OR NOT abs(v.p99_delay - o.p99_delay) <= 0.02 * $range OR v.p99_delay IS NULL <> (o.p99_delay IS NULL)"
done
check "$(psql_c "SELECT string_agg(view::text || ' ' || CASE WHEN owned THEN 'owned' ELSE 'shared' END, ', ' ORDER BY view::text) FROM velostream.views WHERE view::text ~ '^(route_daily|airport_reach)'")" \
  "SELECT count(*) FROM velostream.views WHERE (view::text IN ('route_daily', 'airport_reach_shared') AND owned)
     OR (view::text IN ('route_daily_owned', 'airport_reach') AND NOT owned)"
check "nothing left in the stream logs" "SELECT coalesce(sum(backlog), 0) FROM velostream.stats"
check "no dead letters" "SELECT count(*) FROM velostream.errors"
exit $fail
