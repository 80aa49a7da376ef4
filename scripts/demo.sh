#!/usr/bin/env bash
# The main job, end to end: installs what it needs, builds the extension and
# its Kafka tools, starts a throwaway PostgreSQL cluster with velostream
# preloaded and an embedded Kafka-protocol broker (librdkafka's mock cluster),
# streams the January 2001 flights through Kafka into continuous views with a
# progress display, and shows the live aggregates refreshing. The cluster and
# the broker keep running afterwards so you can explore with psql;
# `scripts/demo.sh stop` stops both.
#
#   scripts/demo.sh [--rate MSGS_PER_S] [--brokers HOST:PORT] [--topic NAME] [--source kafka|copy]
#   scripts/demo.sh stop
#
# --brokers points the stream at a real Kafka instead of the embedded broker
# (the topic must exist or be auto-created). --source copy feeds the stream
# with COPY batches instead of Kafka.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
DEMO_DIR=/tmp/velostream-demo
PORT=55433
rate=50000
brokers=""
topic=flights
source=kafka
batch=10000
stop_demo() {
  [ -f "$DEMO_DIR/mock.pid" ] && kill "$(cat "$DEMO_DIR/mock.pid")" 2>/dev/null || true
  rm -f "$DEMO_DIR/mock.pid"
  if [ -d "$DEMO_DIR/data" ]; then
    runuser -u postgres -- "$(pg_config --bindir)/pg_ctl" -D "$DEMO_DIR/data" -m fast stop >/dev/null 2>&1 || true
  fi
}
while [ $# -gt 0 ]; do
  case $1 in
    --rate) rate=$2; shift 2 ;;
    --brokers) brokers=$2; shift 2 ;;
    --topic) topic=$2; shift 2 ;;
    --source) source=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    stop) stop_demo; echo "demo stopped"; exit 0 ;;
    *) echo "usage: $0 [--rate MSGS_PER_S] [--brokers HOST:PORT] [--topic NAME] [--source kafka|copy] | stop" >&2; exit 2 ;;
  esac
done

echo "== installing packages and building"
bash "$root/scripts/install-deps.sh"
make -C "$root" -s -j2 >/dev/null
make -C "$root" -s install >/dev/null
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" -j2 --target velostream-kafka-mock velostream-kafka-produce >/dev/null

stop_demo
source "$root/test/cluster.sh"
echo "== starting a throwaway cluster in $DEMO_DIR (port $PORT)"
cluster_start "$DEMO_DIR" "$PORT" "velostream.flush_interval = 100"
csv="$DEMO_DIR/flights-2001-01.csv"
zcat "$root/data/flights-2001-01.csv.gz" | tail -n +2 > "$csv"
chmod 644 "$csv"
total=$(wc -l < "$csv")

if [ "$source" = kafka ]; then
  if [ -z "$brokers" ]; then
    # 8 partitions: a mock partition keeps only about 100k messages / 5 MB.
    nohup "$root/build/velostream-kafka-mock" --topic "$topic:8" --bootstrap-file "$DEMO_DIR/bootstrap" \
      </dev/null >/dev/null 2>"$DEMO_DIR/mock.log" &
    echo $! > "$DEMO_DIR/mock.pid"
    for _ in $(seq 1 50); do [ -s "$DEMO_DIR/bootstrap" ] && break; sleep 0.1; done
    brokers=$(cat "$DEMO_DIR/bootstrap")
    echo "== embedded Kafka broker (librdkafka mock cluster) at $brokers, topic '$topic' with 8 partitions"
  else
    echo "== using Kafka at $brokers, topic '$topic'"
  fi
  stream=flights_k
  psql_c "SET client_min_messages = warning; CREATE EXTENSION velostream;
    CREATE SERVER kafka FOREIGN DATA WRAPPER velostream OPTIONS (brokers '$brokers');
    CREATE FOREIGN TABLE flights_k (ts timestamptz, delay int, distance int, origin text, destination text)
      SERVER kafka OPTIONS (topic '$topic', format 'csv', start_offset 'earliest');
    CREATE MATERIALIZED VIEW k_by_route WITH (velostream.continuous) AS
      SELECT origin, destination, tumble(ts, interval '1 day') AS day, count(*) AS n, sum(delay) AS total_delay
      FROM flights_k GROUP BY origin, destination, tumble(ts, interval '1 day');"
else
  stream=flights
  psql_c "SET client_min_messages = warning; CREATE EXTENSION velostream;
    CREATE FOREIGN TABLE flights (ts timestamptz, delay int, distance int, origin text, destination text)
      SERVER velostream;"
fi
psql_c "CREATE MATERIALIZED VIEW delay_by_origin WITH (velostream.continuous) AS
  SELECT origin, tumble(ts, interval '1 hour') AS window_start,
         count(*) AS flights, sum(delay) AS total_delay, avg(delay) AS avg_delay,
         min(delay) AS min_delay, max(delay) AS max_delay
  FROM $stream
  GROUP BY origin, tumble(ts, interval '1 hour');
CREATE MATERIALIZED VIEW long_delays WITH (velostream.continuous) AS
  SELECT origin, destination, count(*) AS n, sum(distance) AS miles
  FROM $stream WHERE delay > 15 GROUP BY origin, destination;"
echo "stream '$stream' and continuous views $(psql_c "SELECT string_agg(view::text, ', ' ORDER BY view::text) FROM velostream.views") created"

show() {
  "$PGBIN/psql" -X -h "$VS_DIR" -p "$VS_PORT" -U postgres -d postgres -P footer=off <<'SQL'
\echo 'Busiest airports (delay_by_origin, hourly windows merged):'
SELECT origin, sum(flights) AS flights, round(sum(total_delay)::numeric / nullif(sum(flights), 0), 1) AS avg_delay_min,
       max(max_delay) AS worst_delay
  FROM delay_by_origin GROUP BY origin ORDER BY flights DESC LIMIT 5;
\echo 'Routes with the most flights delayed over 15 minutes (long_delays):'
SELECT origin || ' -> ' || destination AS route, n AS delayed_flights, miles
  FROM long_delays ORDER BY n DESC, route LIMIT 5;
SQL
}
progress() {  # progress SENT: one status line
  local counted
  counted=$(psql_c "SELECT coalesce(sum(flights), 0) FROM delay_by_origin")
  local line
  line=$(printf 'sent %7d / %d   in the views %7d (%3d%%)' "$1" "$total" "$counted" $((counted * 100 / total)))
  if [ -t 1 ]; then printf '\r%s' "$line"; else echo "$line"; fi
}

echo "== streaming $total real flights (January 2001) at up to $rate rows/s via $source"
if [ "$source" = kafka ]; then
  "$root/build/velostream-kafka-produce" --brokers "$brokers" --topic "$topic" --rate "$rate" < "$csv" &
  producer=$!
  ticks=0
  while kill -0 "$producer" 2>/dev/null; do
    sleep 1
    ticks=$((ticks + 1))
    sent=$(psql_c "SELECT coalesce(sum(high_watermark), 0) FROM velostream.kafka_stats")
    progress "$sent"
    if [ $((ticks % 4)) -eq 0 ]; then echo; show; fi
  done
  wait "$producer"
else
  chunks="$DEMO_DIR/chunks"
  mkdir -p "$chunks"
  split -l "$batch" "$csv" "$chunks/c."
  chmod -R o+rx "$chunks"
  sent=0; i=0; start=$(date +%s%N)
  for f in "$chunks"/c.*; do
    psql_c "\\copy flights FROM '$f' (FORMAT csv)"
    sent=$((sent + $(wc -l < "$f"))); i=$((i + 1))
    elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 )); target_ms=$(( sent * 1000 / rate ))
    [ $target_ms -gt $elapsed_ms ] && sleep "$(awk -v ms=$((target_ms - elapsed_ms)) 'BEGIN {print ms / 1000}')"
    [ $((i % 5)) -eq 0 ] && progress "$sent"
    [ $((i % 15)) -eq 0 ] && { echo; show; }
  done
  rm -rf "$chunks"
fi
for v in $(psql_c "SELECT view::text FROM velostream.views"); do
  psql_c "SELECT velostream.wait('$v', '300 s')" >/dev/null
done
progress "$total"; echo
echo "== all $total flights are in the views:"
show
"$PGBIN/psql" -X -h "$VS_DIR" -p "$VS_PORT" -U postgres -d postgres -P footer=off \
  -c "SELECT view, sum(events_in) AS events_in, sum(groups_upserted) AS groups_upserted, max(last_flush) AS last_flush, sum(backlog) AS backlog FROM velostream.stats GROUP BY view ORDER BY view::text"
if [ "$source" = kafka ]; then
  "$PGBIN/psql" -X -h "$VS_DIR" -p "$VS_PORT" -U postgres -d postgres -P footer=off \
    -c "SELECT stream, count(*) AS topic_partitions, sum(messages) AS messages, sum(lag) AS lag, sum(dead_letters) AS dead_letters FROM velostream.kafka_stats GROUP BY stream"
fi
cat <<MSG

The cluster$([ -f "$DEMO_DIR/mock.pid" ] && echo " and the embedded broker ($brokers) are" || echo " is") still running. Connect with:
  psql -h $DEMO_DIR -p $PORT -U postgres
and try:
  SELECT * FROM delay_by_origin ORDER BY avg_delay DESC LIMIT 10;
$(if [ "$source" = kafka ]; then cat <<KAFKA
  SELECT * FROM velostream.kafka_stats;
Produce more with kcat (one CSV line per message), then read the views again:
  echo '2001-02-01T08:00:00Z,42,300,SFO,LAX' | kcat -P -b $brokers -t $topic
KAFKA
else cat <<COPY
  SELECT * FROM velostream.stats;
Insert more rows, then read the views again:
  INSERT INTO flights VALUES ('2001-02-01 08:00+00', 42, 300, 'SFO', 'LAX');
COPY
fi)
Stop everything with:
  bash $root/scripts/demo.sh stop
MSG
