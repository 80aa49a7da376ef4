#!/usr/bin/env bash
# Where a Kafka worker's time goes (issue 10): WORKERS workers (default 1:
# partitions '1') catching up on the flights in an 80-partition topic of the
# embedded broker, under `perf record -g` for 6 s; prints the top costs, the
# CPU seconds each worker and the broker used meanwhile (on 2 cores, 12 are
# all there is), the workers' last cycles (their DEBUG1 lines: rows consumed,
# read+aggregate and flush+commit times), then how many messages the view
# counted by then.
#   [WORKERS=2] bash bench/kafka_profile.sh      (as root; needs perf, build/ tools built)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/test/cluster.sh"
work=$(mktemp -d /tmp/kperf.XXXXXX)
"$root/build/velostream-kafka-mock" --topic flights:80 --bootstrap-file "$work/bootstrap" </dev/null >/dev/null 2>&1 &
mock=$!
trap 'kill $mock 2>/dev/null; cluster_stop; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do [ -s "$work/bootstrap" ] && break; sleep 0.1; done
BS=$(cat "$work/bootstrap")
data="$root/../shared/data/flights-3m.csv.gz"; [ -f "$data" ] || data="$root/data/flights-2001-01.csv.gz"; zcat "$data" | tail -n +2 > "$work/flights.csv"
"$root/build/velostream-kafka-produce" --brokers "$BS" --topic flights < "$work/flights.csv"
cluster_start /tmp/kperf-pg 55457 "shared_buffers = '1GB'" "max_wal_size = '4GB'" "log_min_messages = debug1"
psql_c "CREATE EXTENSION velostream; CREATE SERVER kafka FOREIGN DATA WRAPPER velostream OPTIONS (brokers '$BS')"
psql_c "CREATE FOREIGN TABLE flights_k (ts timestamptz, delay int, distance int, origin text, destination text)
      SERVER kafka OPTIONS (topic 'flights', format 'csv', start_offset 'earliest', partitions '${WORKERS:-1}');
    CREATE MATERIALIZED VIEW k_by_route WITH (velostream.continuous) AS
      SELECT origin, destination, tumble(ts, interval '1 day') AS day, count(*) AS n, sum(delay) AS total_delay
      FROM flights_k GROUP BY origin, destination, tumble(ts, interval '1 day');"
sleep 1
pids=$(pgrep -f "velostream worker" | paste -sd, -)
cpu() {  # cpu PID...: user+system CPU seconds so far of each
  local p
  for p in "$@"; do awk -v t="$(getconf CLK_TCK)" '{printf "%.2f ", ($14 + $15) / t}' "/proc/$p/stat"; done
}
before="$(cpu ${pids//,/ } $mock)"
perf record -q -F 5000 -g -o "$work/perf.data" -p "$pids" -- sleep 6 2>/dev/null
after="$(cpu ${pids//,/ } $mock)"
perf report -i "$work/perf.data" --no-children --stdio --percent-limit 1.5 2>/dev/null | grep -E "^ +[0-9]" | head -40
echo "--- CPU seconds in the 6 s (workers $pids, then the broker): before $before, after $after"
paste <(echo "$before" | tr ' ' '\n') <(echo "$after" | tr ' ' '\n') | awk 'NF == 2 {printf "%.2f ", $2 - $1} END {print ""}'
[ -n "${PERF_OUT:-}" ] && cp "$work/perf.data" "$PERF_OUT"  # PERF_OUT=FILE keeps the profile
echo "--- cycles:"
grep -E "velostream: .*(cycle|flushed|read)" "$VS_DIR/server.log" | tail -5
psql_c "SELECT sum(n) FROM k_by_route"
