#!/usr/bin/env bash
# COPY-to-visible throughput: rows per second from the start of a COPY into a
# stream until both continuous views of issue 3 reflect every row, beside a
# plain COPY of the same rows into a heap table, in the same run. Uses the full
# 3M-row flights file when ../shared is there, else the vendored January.
#   bash bench/copy_bench.sh [RUNS]       (as root; prints a markdown table)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
data="$root/../shared/data/flights-3m.csv.gz"
[ -f "$data" ] || data="$root/data/flights-2001-01.csv.gz"
source "$root/test/cluster.sh"
trap 'cluster_stop; rm -rf "$csv" "$chunks"' EXIT
make -C "$root" -s -j2 >/dev/null && make -C "$root" -s install >/dev/null
cluster_start /tmp/velostream-bench 55450 "shared_buffers = '1GB'" "max_wal_size = '4GB'" "checkpoint_timeout = '30min'"
csv=$(mktemp /tmp/velostream-bench.XXXXXX.csv)
zcat "$data" | tail -n +2 > "$csv"
chmod o+r "$csv"
rows=$(wc -l < "$csv")
chunks=$(mktemp -d /tmp/velostream-bench-chunks.XXXXXX)
split -n l/30 "$csv" "$chunks/c."
chmod -R o+rx "$chunks"
psql_c "CREATE EXTENSION velostream"

views="
    CREATE MATERIALIZED VIEW delay_by_origin WITH (velostream.continuous) AS
      SELECT origin, tumble(ts, interval '1 hour') AS window_start, count(*) AS flights, sum(delay) AS total_delay,
             avg(delay) AS avg_delay, min(delay) AS min_delay, max(delay) AS max_delay
      FROM flights GROUP BY origin, tumble(ts, interval '1 hour');
    CREATE MATERIALIZED VIEW long_delays WITH (velostream.continuous) AS
      SELECT origin, destination, count(*) AS n, sum(distance) AS miles
      FROM flights WHERE delay > 15 GROUP BY origin, destination;"
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
plain_rates=(); stream_rates=(); copy_only_rates=(); chunked_rates=()
# Run 0 warms the fresh cluster up (WAL segments, caches, worker start) for
# both sides and is not counted.
for r in $(seq 0 "$runs"); do
  psql_c "DROP TABLE IF EXISTS plain; CREATE TABLE plain (ts timestamptz, delay int, distance int, origin text, destination text)"
  psql_c "CHECKPOINT"
  t0=$(now_ms)
  psql_c "\\copy plain FROM '$csv' (FORMAT csv)"
  t1=$(now_ms)
  plain_rates+=($(( rows * 1000 / (t1 - t0) )))

  psql_c "SET client_min_messages = warning; DROP FOREIGN TABLE IF EXISTS flights CASCADE;
    CREATE FOREIGN TABLE flights (ts timestamptz, delay int, distance int, origin text, destination text) SERVER velostream;
    $views"
  sleep 2  # let the launcher start the partition workers
  psql_c "CHECKPOINT"
  t0=$(now_ms)
  psql_c "\\copy flights FROM '$csv' (FORMAT csv)"
  t1=$(now_ms)
  psql_c "SELECT velostream.wait('delay_by_origin', '1800 s') AND velostream.wait('long_delays', '1800 s')" >/dev/null
  t2=$(now_ms)
  copy_only_rates+=($(( rows * 1000 / (t1 - t0) )))
  stream_rates+=($(( rows * 1000 / (t2 - t0) )))
  n=$(psql_c "SELECT sum(flights) FROM delay_by_origin")
  [ "$n" = "$rows" ] || { echo "views hold $n rows, expected $rows" >&2; exit 1; }

  # The same rows as 30 COPY transactions in a row: the workers start on the
  # first committed chunk instead of waiting for one big COMMIT.
  # (fresh views: a continuous view's table cannot be truncated)
  psql_c "SET client_min_messages = warning; DROP MATERIALIZED VIEW delay_by_origin; DROP MATERIALIZED VIEW long_delays;
    DELETE FROM velostream.view_partition_stats; $views"
  sleep 2
  psql_c "CHECKPOINT"
  t0=$(now_ms)
  for c in "$chunks"/c.*; do psql_c "\\copy flights FROM '$c' (FORMAT csv)"; done
  psql_c "SELECT velostream.wait('delay_by_origin', '1800 s') AND velostream.wait('long_delays', '1800 s')" >/dev/null
  t2=$(now_ms)
  chunked_rates+=($(( rows * 1000 / (t2 - t0) )))
  n=$(psql_c "SELECT sum(flights) FROM delay_by_origin")
  [ "$n" = "$rows" ] || { echo "views hold $n rows after chunked COPY, expected $rows" >&2; exit 1; }
  if [ "$r" = 0 ]; then
    echo "warm-up run: plain COPY ${plain_rates[-1]} rows/s; COPY-to-visible ${stream_rates[-1]} rows/s (not counted)" >&2
    plain_rates=(); stream_rates=(); copy_only_rates=(); chunked_rates=()
    continue
  fi
  echo "run $r: plain COPY ${plain_rates[-1]} rows/s; stream COPY ${copy_only_rates[-1]} rows/s; COPY-to-visible ${stream_rates[-1]} rows/s; chunked ${chunked_rates[-1]} rows/s" >&2
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
p=$(median "${plain_rates[@]}"); c=$(median "${copy_only_rates[@]}"); s=$(median "${stream_rates[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo "| measure ($rows rows, median of $runs) | rows/s | vs plain COPY |"
echo "|---|---:|---:|"
echo "| plain COPY into a heap table (baseline) | $p | 1.00x |"
echo "| COPY into the stream (statement only) | $c | $(ratio "$c" "$p")x |"
echo "| COPY into the stream until both views are complete | $s | $(ratio "$s" "$p")x |"
k=$(median "${chunked_rates[@]}")
echo "| the same rows as 30 COPY transactions, until both views are complete | $k | $(ratio "$k" "$p")x |"
