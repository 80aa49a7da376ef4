#!/usr/bin/env bash
# Freshness (issue 10): at steady input rates (RATES, default 10000 100000
# 500000 rows/s), the time from an event's commit (COPY path) or its
# acknowledgement by the broker (Kafka path) until a continuous view shows it:
# p50 / p99 / max over every batch of SECONDS (default 15) seconds, measured
# by build/velostream-freshness (bench/freshness.cpp, libpqxx + librdkafka),
# which commits (or produces) a batch every 20 ms. Each rate gets a fresh
# stream with two views: fr_batches (GROUP BY batch, what the generator
# watches) and fr_by_origin (GROUP BY origin; count, avg, max). Default
# settings (velostream.flush_interval = 100ms, 2 partitions / workers).
#   bash bench/freshness_bench.sh [OUT_DIR]   (as root; prints markdown tables;
#                                              writes OUT_DIR/freshness.dat and,
#                                              with gnuplot, OUT_DIR/freshness.png)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/bench}
rates=${RATES:-10000 100000 500000}
seconds=${SECONDS_PER_RATE:-15}
source "$root/test/cluster.sh"
make -C "$root" -s -j2 >/dev/null && make -C "$root" -s install >/dev/null
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" -j2 --target velostream-freshness velostream-kafka-mock >/dev/null
work=$(mktemp -d /tmp/velostream-fresh.XXXXXX)
"$root/build/velostream-kafka-mock" --topic fr:40 --bootstrap-file "$work/bootstrap" </dev/null >/dev/null 2>&1 &
mock=$!
trap 'kill $mock 2>/dev/null; cluster_stop; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do [ -s "$work/bootstrap" ] && break; sleep 0.1; done
BS=$(cat "$work/bootstrap")
cluster_start /tmp/velostream-fresh-pg 55455 "shared_buffers = '1GB'" "max_wal_size = '4GB'"
psql_c "CREATE EXTENSION velostream; CREATE SERVER kafka FOREIGN DATA WRAPPER velostream OPTIONS (brokers '$BS')"
conninfo="host=$VS_DIR port=$VS_PORT user=postgres dbname=postgres"
views="CREATE MATERIALIZED VIEW fr_batches WITH (velostream.continuous) AS
         SELECT batch, count(*) AS n FROM fr GROUP BY batch;
       CREATE MATERIALIZED VIEW fr_by_origin WITH (velostream.continuous) AS
         SELECT origin, count(*) AS n, avg(delay) AS avg_delay, max(seq) AS last_seq FROM fr GROUP BY origin;"
: > "$work/results"
for path in copy kafka; do
  for rate in $rates; do
    psql_c "SET client_min_messages = warning; DROP FOREIGN TABLE IF EXISTS fr CASCADE"
    if [ $path = copy ]; then
      psql_c "CREATE FOREIGN TABLE fr (batch bigint, seq bigint, origin text, delay int) SERVER velostream; $views"
      extra=()
    else
      # a fresh topic position: the stream starts at the topic's end
      psql_c "CREATE FOREIGN TABLE fr (batch bigint, seq bigint, origin text, delay int)
                SERVER kafka OPTIONS (topic 'fr', format 'csv', start_offset 'latest'); $views"
      extra=(--kafka "$BS" --topic fr)
    fi
    sleep 3  # workers started (and, for Kafka, assigned at the topic's end)
    line=$("$root/build/velostream-freshness" --conninfo "$conninfo" --rate "$rate" --seconds "$seconds" "${extra[@]}" ||
           echo "failed")
    echo "$path rate $rate: $line" >&2
    echo "$path $rate $line" >> "$work/results"
  done
done
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
{
  echo "# path target_rate achieved_rate p50_ms p99_ms max_ms"
  while read -r path rate rest; do
    echo "$path $rate $(field "$rest" achieved_rate) $(field "$rest" p50_ms) $(field "$rest" p99_ms) $(field "$rest" max_ms)"
  done < "$work/results"
} > "$out/freshness.dat"
echo "| path | target rows/s | achieved rows/s | p50 ms | p99 ms | max ms | batches not seen |"
echo "|---|---:|---:|---:|---:|---:|---:|"
while read -r path rate rest; do
  echo "| $([ $path = copy ] && echo "COPY (a transaction every 20 ms)" || echo "Kafka (a produced batch every 20 ms)") | $rate | $(field "$rest" achieved_rate) | $(field "$rest" p50_ms) | $(field "$rest" p99_ms) | $(field "$rest" max_ms) | $(field "$rest" missing) |"
done < "$work/results"
if command -v gnuplot >/dev/null; then
  gnuplot <<EOF
set terminal pngcairo size 900,500
set output '$out/freshness.png'
set title 'Freshness: commit (COPY) or broker ack (Kafka) to visible in the view'
set xlabel 'input rate (rows/s, log scale)'
set ylabel 'milliseconds (log scale)'
set logscale xy
set key left top
set grid
plot '< grep ^copy $out/freshness.dat' using 3:5 with linespoints title 'COPY p99', \
     '< grep ^copy $out/freshness.dat' using 3:4 with linespoints title 'COPY p50', \
     '< grep ^kafka $out/freshness.dat' using 3:5 with linespoints title 'Kafka p99', \
     '< grep ^kafka $out/freshness.dat' using 3:4 with linespoints title 'Kafka p50'
EOF
fi
