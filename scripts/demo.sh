#!/usr/bin/env bash
# The main job, end to end: installs what it needs, builds and installs the
# extension, starts a throwaway PostgreSQL cluster with velostream preloaded,
# creates a stream and continuous views, streams the January 2001 flights into
# it in paced batches with a progress display, and shows the live aggregates
# refreshing. The cluster keeps running afterwards so you can explore it with
# psql; `scripts/demo.sh stop` stops it.
#
#   scripts/demo.sh [--rate ROWS_PER_SECOND] [--batch ROWS]    (as root)
#   scripts/demo.sh stop
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
DEMO_DIR=/tmp/velostream-demo
PORT=55433
rate=50000
batch=10000
while [ $# -gt 0 ]; do
  case $1 in
    --rate) rate=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    stop)
      source "$root/test/cluster.sh" 2>/dev/null || true
      runuser -u postgres -- "$(pg_config --bindir)/pg_ctl" -D "$DEMO_DIR/data" -m fast stop && exit 0 ;;
    *) echo "usage: $0 [--rate ROWS_PER_SECOND] [--batch ROWS] | stop" >&2; exit 2 ;;
  esac
done

echo "== installing packages and building"
bash "$root/scripts/install-deps.sh"
make -C "$root" -s -j2 >/dev/null
make -C "$root" -s install >/dev/null

echo "== starting a throwaway cluster in $DEMO_DIR (port $PORT)"
source "$root/test/cluster.sh"
cluster_start "$DEMO_DIR" "$PORT" "velostream.flush_interval = 100"

psql_c "
SET client_min_messages = warning;
CREATE EXTENSION velostream;
CREATE FOREIGN TABLE flights (ts timestamptz, delay int, distance int, origin text, destination text)
  SERVER velostream;
CREATE MATERIALIZED VIEW delay_by_origin WITH (velostream.continuous) AS
  SELECT origin, tumble(ts, interval '1 hour') AS window_start,
         count(*) AS flights, sum(delay) AS total_delay, avg(delay) AS avg_delay,
         min(delay) AS min_delay, max(delay) AS max_delay
  FROM flights
  GROUP BY origin, tumble(ts, interval '1 hour');
CREATE MATERIALIZED VIEW long_delays WITH (velostream.continuous) AS
  SELECT origin, destination, count(*) AS n, sum(distance) AS miles
  FROM flights WHERE delay > 15 GROUP BY origin, destination;"
echo "stream 'flights' and continuous views 'delay_by_origin', 'long_delays' created"

chunks=$(mktemp -d /tmp/velostream-demo-chunks.XXXXXX)
trap 'rm -rf "$chunks"' EXIT
zcat "$root/data/flights-2001-01.csv.gz" | tail -n +2 | split -l "$batch" - "$chunks/c."
chmod -R o+rx "$chunks"
total=$(cat "$chunks"/c.* | wc -l)

show() {
  "$PGBIN/psql" -X -h "$VS_DIR" -p "$VS_PORT" -U postgres -d postgres -P footer=off <<'SQL'
\echo 'Busiest airports (from delay_by_origin, hourly windows merged):'
SELECT origin, sum(flights) AS flights, round(sum(total_delay)::numeric / nullif(sum(flights), 0), 1) AS avg_delay_min,
       max(max_delay) AS worst_delay
  FROM delay_by_origin GROUP BY origin ORDER BY flights DESC LIMIT 5;
\echo 'Routes with the most flights delayed over 15 minutes (long_delays):'
SELECT origin || ' -> ' || destination AS route, n AS delayed_flights, miles
  FROM long_delays ORDER BY n DESC, route LIMIT 5;
SQL
}

echo "== streaming $total real flights (January 2001) at up to $rate rows/s in batches of $batch"
sent=0
start=$(date +%s%N)
i=0
for f in "$chunks"/c.*; do
  psql_c "\\copy flights FROM '$f' (FORMAT csv)"
  n=$(wc -l < "$f")
  sent=$((sent + n))
  i=$((i + 1))
  elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  # pace: wait until the target rate allows the rows sent so far
  target_ms=$(( sent * 1000 / rate ))
  if [ $target_ms -gt $elapsed_ms ]; then sleep "$(printf '0.%03d' $(( (target_ms - elapsed_ms) % 1000 )))"; sleep $(( (target_ms - elapsed_ms) / 1000 )); fi
  line=$(printf 'sent %7d / %d rows (%3d%%)  %6d rows/s' "$sent" "$total" $((sent * 100 / total)) $((sent * 1000 / (elapsed_ms + 1))))
  if [ -t 1 ]; then printf '\r%s' "$line"; elif [ $((i % 5)) -eq 0 ]; then echo "$line"; fi
  if [ $((i % 15)) -eq 0 ]; then echo; show; fi
done
echo
psql_c "SELECT velostream.wait('delay_by_origin', '120 s'), velostream.wait('long_delays', '120 s')" >/dev/null
echo "== all $total flights are in the views:"
show
"$PGBIN/psql" -X -h "$VS_DIR" -p "$VS_PORT" -U postgres -d postgres -P footer=off \
  -c "SELECT view, sum(events_in) AS events_in, sum(groups_upserted) AS groups_upserted, max(last_flush) AS last_flush, sum(backlog) AS backlog FROM velostream.stats GROUP BY view"
cat <<MSG

The cluster is still running. Connect with:
  psql -h $DEMO_DIR -p $PORT -U postgres
and try:
  SELECT * FROM delay_by_origin ORDER BY avg_delay DESC LIMIT 10;
  INSERT INTO flights VALUES (now(), 42, 300, 'SFO', 'LAX');  -- then read the views again
Stop it with:
  bash $root/scripts/demo.sh stop
MSG
