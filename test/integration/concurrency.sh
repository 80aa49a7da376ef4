#!/usr/bin/env bash
# Concurrency: four sessions COPY a quarter of the January flights each, at
# the same time, into a 4-partition stream, while a fifth session inserts and
# rolls back. Rows are routed by origin: long_delays is owned by the workers,
# while hourly and totals have groups every worker updates concurrently (the
# key-ordered upserts must not deadlock). Every view must equal its batch query.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/test/cluster.sh"
work=$(mktemp -d /tmp/velostream-conc.XXXXXX)
chmod 755 "$work"
trap 'cluster_stop; rm -rf "$work"' EXIT
cluster_start /tmp/velostream-conc-pg 55445 "velostream.flush_interval = 20" "deadlock_timeout = '100ms'"
zcat "$root/data/flights-2001-01.csv.gz" | tail -n +2 > "$work/flights.csv"
split -n l/4 "$work/flights.csv" "$work/q."
chmod 644 "$work"/*
psql_c "CREATE EXTENSION velostream;
CREATE FOREIGN TABLE flights (ts timestamptz, delay int, distance int, origin text, destination text)
  SERVER velostream OPTIONS (partitions '4');
CREATE TABLE flights_plain (ts timestamptz, delay int, distance int, origin text, destination text);
CREATE MATERIALIZED VIEW long_delays WITH (velostream.continuous) AS
  SELECT origin, destination, count(*) AS n, sum(distance) AS miles, avg(delay) AS mean
  FROM flights WHERE delay > 15 GROUP BY origin, destination;
CREATE MATERIALIZED VIEW hourly WITH (velostream.continuous) AS
  SELECT tumble(ts, interval '1 hour') AS hour, count(*) AS n, max(delay) AS worst FROM flights GROUP BY 1;
CREATE MATERIALIZED VIEW totals WITH (velostream.continuous) AS
  SELECT count(*) AS n, sum(delay) AS total FROM flights;"
fail=0
# Rows are routed by origin (long_delays, the first view, groups by it), so
# long_delays is owned by the partition workers; hourly and totals have
# groups every worker writes (merged in SQL).
modes=$(psql_c "SELECT string_agg(view::text || '=' || owned, ',' ORDER BY view::text) FROM velostream.views")
route=$(psql_c "SELECT attname FROM velostream.streams s JOIN pg_attribute a ON a.attrelid = s.stream AND a.attnum = s.route_column")
[ "$modes" = "hourly=false,long_delays=true,totals=false" ] && [ "$route" = origin ] \
  && echo "PASS: rows routed by origin; long_delays owned, hourly and totals shared by all workers" \
  || { echo "FAIL: route '$route', modes $modes"; fail=1; }
sleep 1
for q in "$work"/q.*; do
  psql_c "\\copy flights FROM '$q' (FORMAT csv)" &
done
for i in $(seq 1 50); do
  psql_c "BEGIN; INSERT INTO flights VALUES ('2001-01-15 12:00+00', 999, 1, 'RLB', 'ACK'); ROLLBACK;" &>/dev/null
done &
wait
psql_c "\\copy flights_plain FROM '$work/flights.csv' (FORMAT csv)"
for v in long_delays hourly totals; do
  [ "$(psql_c "SELECT velostream.wait('$v', '300 s')")" = t ] || { echo "FAIL: $v did not catch up"; fail=1; }
done
check() {
  local d
  d=$(psql_c "SELECT count(*) FROM ((TABLE $1 EXCEPT $2) UNION ALL ($2 EXCEPT TABLE $1)) d")
  [ "$d" = 0 ] && echo "PASS: $1 equals its batch query after 4 concurrent COPYs" || { echo "FAIL: $1 ($d differences)"; fail=1; }
}
check long_delays "SELECT origin, destination, count(*), sum(distance), avg(delay) FROM flights_plain WHERE delay > 15 GROUP BY 1, 2"
check hourly "SELECT tumble(ts, interval '1 hour'), count(*), max(delay) FROM flights_plain GROUP BY 1"
check totals "SELECT count(*), sum(delay) FROM flights_plain"
deadlocks=$(grep -c "deadlock detected" "$VS_DIR/server.log" || true)
[ "$deadlocks" = 0 ] && echo "PASS: no deadlock between workers" || { echo "FAIL: $deadlocks deadlocks"; fail=1; }
busy=$(psql_c "SELECT count(DISTINCT partition) FROM velostream.stats WHERE view = 'long_delays'::regclass AND events_in > 0")
[ "$busy" = 4 ] && echo "PASS: all 4 partition workers consumed rows" || { echo "FAIL: only $busy workers consumed"; fail=1; }
exit $fail
