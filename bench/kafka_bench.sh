#!/usr/bin/env bash
# Kafka-to-visible throughput: messages per second from creating a Kafka
# stream (start_offset 'earliest') over a topic that already holds the flights
# until its continuous view (issue 4's k_by_route) has counted every message;
# beside a bare librdkafka consumer that reads the same messages and does
# nothing (build/velostream-kafka-drain), in the same run. For each format
# in FORMATS (default "csv json") and each worker count in WORKERS (default
# "1 2"; the stream's partitions option) and each view in VIEWS (default
# "k_by_route k_by_origin": k_by_route writes 570,842 groups, one for every
# 5 messages, so writing the result table bounds it; k_by_origin writes 300,
# so its figure is the ingestion path's). The broker is the embedded mock
# cluster, on the same 2 cores; the 3M-row file is split over 80 partitions
# per topic (a mock partition keeps only ~100k messages / ~5 MB).
#   bash bench/kafka_bench.sh [RUNS]      (as root; prints a markdown table)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
formats=${FORMATS:-csv json}
workers_list=${WORKERS:-1 2}
views=${VIEWS:-k_by_route k_by_origin}
data="$root/../shared/data/flights-3m.csv.gz"
[ -f "$data" ] || data="$root/data/flights-2001-01.csv.gz"
source "$root/test/cluster.sh"
make -C "$root" -s -j2 >/dev/null && make -C "$root" -s install >/dev/null
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" -j2 --target velostream-kafka-mock velostream-kafka-produce velostream-kafka-drain >/dev/null
work=$(mktemp -d /tmp/velostream-kbench.XXXXXX)
"$root/build/velostream-kafka-mock" --topic flights_csv:80 --topic flights_json:80 --bootstrap-file "$work/bootstrap" \
  </dev/null >/dev/null 2>&1 &
mock=$!
trap 'kill $mock 2>/dev/null; cluster_stop; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do [ -s "$work/bootstrap" ] && break; sleep 0.1; done
BS=$(cat "$work/bootstrap")
zcat "$data" | tail -n +2 > "$work/flights.csv"
rows=$(wc -l < "$work/flights.csv")
for f in $formats; do
  if [ "$f" = json ]; then
    # {"ts": "...", "delay": 33, ...}; an empty CSV field is null
    awk -F, '{ printf "{\"ts\": \"%s\", \"delay\": %s, \"distance\": %s, \"origin\": \"%s\", \"destination\": \"%s\"}\n",
               $1, ($2 == "" ? "null" : $2), ($3 == "" ? "null" : $3), $4, $5 }' "$work/flights.csv" \
      | "$root/build/velostream-kafka-produce" --brokers "$BS" --topic flights_json
  else
    "$root/build/velostream-kafka-produce" --brokers "$BS" --topic flights_csv < "$work/flights.csv"
  fi
done
cluster_start /tmp/velostream-kbench-pg 55453 "shared_buffers = '1GB'" "max_wal_size = '4GB'"
psql_c "CREATE EXTENSION velostream; CREATE SERVER kafka FOREIGN DATA WRAPPER velostream OPTIONS (brokers '$BS')"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo "| measure ($rows messages, 80 partitions, median of $runs) | msg/s | vs bare consumer |"
echo "|---|---:|---:|"
for f in $formats; do
  base=()
  for r in $(seq 1 "$runs"); do
    out=$("$root/build/velostream-kafka-drain" --brokers "$BS" --topic "flights_$f" --count "$rows")
    base+=($(echo "$out" | sed -E 's/.*: ([0-9]+) msg\/s/\1/'))
  done
  b=$(median "${base[@]}")
  echo "bare consumer, $f: ${base[*]}" >&2
  echo "| bare librdkafka consumer, $f messages, no processing (baseline) | $b | 1.00x |"
  for view in $views; do
    case $view in
      k_by_route) query="SELECT origin, destination, tumble(ts, interval '1 day') AS day, count(*) AS n, sum(delay) AS total_delay
          FROM flights_k GROUP BY origin, destination, tumble(ts, interval '1 day')" ;;
      k_by_origin) query="SELECT origin, count(*) AS n, sum(delay) AS total_delay, avg(delay) AS avg_delay, max(distance) AS longest
          FROM flights_k GROUP BY origin" ;;
      *) echo "unknown view $view" >&2; exit 2 ;;
    esac
    for w in $workers_list; do
      vis=()
      for r in $(seq 1 "$runs"); do
        psql_c "SET client_min_messages = warning; DROP FOREIGN TABLE IF EXISTS flights_k CASCADE"
        t0=$(now_ms)
        psql_c "CREATE FOREIGN TABLE flights_k (ts timestamptz, delay int, distance int, origin text, destination text)
            SERVER kafka OPTIONS (topic 'flights_$f', format '$f', start_offset 'earliest', partitions '$w');
          CREATE MATERIALIZED VIEW $view WITH (velostream.continuous) AS $query;"
        until [ "$(psql_c "SELECT coalesce(sum(n), 0) FROM $view")" = "$rows" ]; do sleep 0.1; done
        t1=$(now_ms)
        vis+=($(( rows * 1000 / (t1 - t0) )))
        echo "$f, $view, $w workers, run $r: Kafka-to-visible ${vis[-1]} msg/s" >&2
      done
      v=$(median "${vis[@]}")
      echo "| Kafka-to-visible, $f, $w worker$([ "$w" = 1 ] || echo s), view $view complete | $v | $(ratio "$v" "$b")x |"
    done
  done
done
