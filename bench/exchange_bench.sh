#!/usr/bin/env bash
# Exchanged groups (issue 11): what a view pays for exchanging its groups
# between partitions. Two streams of two partitions, each with the same two
# views: a first view counting by origin (which makes origin the routing
# column) and an emit-final session view (30-minute gap). On the baseline
# stream the session view groups by origin (owned: every group in the worker
# that reads its rows); on the other by destination (exchanged: each worker
# sends the sessions the other partition owns to its log at every flush, and
# merges the ones it receives). Same rows, same number of groups (origins and
# destinations are the same airports). Per run: the stream paused during a
# COPY of the flights, then resumed; wall clock from the resume until both
# views have counted every row (velostream.wait) and closed their windows
# through the last watermark: the two workers alone, on the machine's 2 cores.
# Uses ../shared/data/flights-3m.csv.gz (in time order; watermark_delay
# '1 day', so no row is late), else the vendored January.
#   bash bench/exchange_bench.sh [RUNS]     (as root; prints a markdown table)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
data=${FLIGHTS_CSV:-$root/../shared/data/flights-3m.csv.gz}
[ -f "$data" ] || data="$root/data/flights-2001-01.csv.gz"
source "$root/test/cluster.sh"
csv=$(mktemp /tmp/velostream-exchange-bench.XXXXXX.csv)
trap 'cluster_stop; rm -f "$csv"' EXIT
make -C "$root" -s -j2 >/dev/null && make -C "$root" -s install >/dev/null
cluster_start /tmp/velostream-exchange-bench 55483 "shared_buffers = '1GB'" "max_wal_size = '4GB'" \
  "checkpoint_timeout = '30min'" "velostream.flush_interval = 200"
zcat "$data" | tail -n +2 > "$csv"
chmod 644 "$csv"
rows=$(wc -l < "$csv")
psql_c "CREATE EXTENSION velostream"

# run NAME KEY: seconds from the resume until both views are complete
run() {
  local name=$1 key=$2 start end
  psql_c "SET client_min_messages = warning; DROP FOREIGN TABLE IF EXISTS $name CASCADE;
    CREATE FOREIGN TABLE $name (ts timestamptz, delay int, distance int, origin text, destination text)
      SERVER velostream OPTIONS (partitions '2', event_time 'ts', watermark_delay '1 day');
    CREATE MATERIALIZED VIEW ${name}_first WITH (velostream.continuous) AS
      SELECT origin, count(*) AS n FROM $name GROUP BY origin;
    CREATE MATERIALIZED VIEW ${name}_sess WITH (velostream.continuous, velostream.emit = 'final') AS
      SELECT $key, session(ts, interval '30 minutes') AS session_start, count(*) AS n, sum(delay) AS total_delay
      FROM $name GROUP BY $key, session(ts, interval '30 minutes');
    SELECT velostream.pause('$name');" >/dev/null
  psql_c "\\copy $name FROM '$csv' (FORMAT csv)" >/dev/null
  start=$(date +%s.%N)
  psql_c "SELECT velostream.resume('$name')" >/dev/null
  [ "$(psql_c "SELECT velostream.wait('${name}_first', '3600 s') AND velostream.wait('${name}_sess', '3600 s')")" = t ] \
    || { echo "$name did not catch up" >&2; exit 1; }
  # windows closed through the last watermark on both partitions
  for _ in $(seq 1 6000); do
    [ "$(psql_c "SELECT bool_and(watermark IS NOT DISTINCT FROM partition_watermark) AND count(*) = 2
                   FROM velostream.stats WHERE view = '${name}_sess'::regclass")" = t ] && break
    sleep 0.05
  done
  end=$(date +%s.%N)
  [ "$(psql_c "SELECT sum(events_in) FROM velostream.stats WHERE view = '${name}_sess'::regclass")" = "$rows" ] \
    || { echo "$name: the session view did not read every row" >&2; exit 1; }
  awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}'
}
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

owned="" exchanged=""
for _ in $(seq 1 "$runs"); do
  owned="$owned $(run b_owned origin)"
  exchanged="$exchanged $(run b_exchanged destination)"
done
# the last run's exchanged sessions equal the owned view's over the same rows, by airport
check=$(psql_c "SELECT count(*) FROM (SELECT destination, count(*), sum(n) FROM b_exchanged_sess GROUP BY 1) x")
groups_o=$(psql_c "SELECT count(*) FROM b_owned_sess")
groups_x=$(psql_c "SELECT count(*) FROM b_exchanged_sess")
mo=$(echo "$owned" | median)
mx=$(echo "$exchanged" | median)
echo "| session view (emit final), 2 partitions | rows | closed sessions | seconds (median of $runs) | rows/s | vs owned |"
echo "|---|---:|---:|---:|---:|---:|"
echo "| owned: by origin, the routing column (baseline) | $rows | $groups_o | $mo | $(awk -v r="$rows" -v s="$mo" 'BEGIN {printf "%.0f", r / s}') | 1.00x |"
echo "| exchanged: by destination ($check airports) | $rows | $groups_x | $mx | $(awk -v r="$rows" -v s="$mx" 'BEGIN {printf "%.0f", r / s}') | $(awk -v a="$mo" -v b="$mx" 'BEGIN {printf "%.2f", a / b}')x |"
echo
echo "Runs (seconds): owned$owned; exchanged$exchanged."
