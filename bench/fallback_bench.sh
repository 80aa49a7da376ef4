#!/usr/bin/env bash
# Aggregate and expression paths (issue 9): records per second through one
# continuous view at a time on a one-partition stream (one worker, one core),
# for a view the engine runs natively and for views that need PostgreSQL's
# aggregate protocol (src/pg/pg_aggregate.cpp) or the executor's expression
# evaluation (computed columns, src/pg/computed.cpp); beside a plain COPY of
# the same rows into a heap table and build/engine_bench's delay_by_origin, in
# the same run. Uses the full 3M-row flights file when ../shared is there (or
# $FLIGHTS_CSV), else the vendored January.
#   bash bench/fallback_bench.sh [RUNS]          (as root; prints a markdown table)
#   bash bench/fallback_bench.sh --perf          one catch-up per view under
#                                                `perf record -g -p <worker>`; prints the top costs
# Per view and run, two measures:
#   COPY-to-visible: wall clock from the start of the COPY until velostream.wait()
#     is true (COPY and worker run concurrently, on the machine's 2 cores);
#   catch-up (per core): the stream paused during the COPY, then resumed; wall
#     clock from the resume until velostream.wait() is true: the worker alone.
#     "busy" adds up the worker's own cycle times (its DEBUG1 log lines:
#     read+aggregate, flush+commit), without the idle wait for the resume to be seen.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
perf_mode=0
if [ "${1:-}" = "--perf" ]; then perf_mode=1; runs=1; else runs=${1:-3}; fi
data=${FLIGHTS_CSV:-$root/../shared/data/flights-3m.csv.gz}
[ -f "$data" ] || data="$root/data/flights-2001-01.csv.gz"
dir=/tmp/velostream-fallback-bench
source "$root/test/cluster.sh"
csv=""
trap 'cluster_stop; [ -z "$csv" ] || rm -f "$csv"' EXIT
make -C "$root" -s -j2 >/dev/null && make -C "$root" -s install >/dev/null
cluster_start "$dir" 55481 "shared_buffers = '1GB'" "max_wal_size = '4GB'" "checkpoint_timeout = '30min'" \
  "log_min_messages = debug1"
csv=$(mktemp /tmp/velostream-fallback-bench.XXXXXX.csv)
zcat "$data" | tail -n +2 > "$csv"
chmod o+r "$csv"
rows=$(wc -l < "$csv")
psql_c "CREATE EXTENSION velostream"

# name@label@SELECT (over stream flights); every view groups by origin but the last (a route expression).
# stddev_samp and friends over integers return numeric and run through pg_aggregate; over
# real/double precision, and bool_and/bool_or, they are native.
views=(
  "native@native: count(*), sum, avg, min, max (delay)@SELECT origin, count(*) AS n, sum(delay) AS total, avg(delay) AS mean, min(delay) AS lo, max(delay) AS hi FROM flights GROUP BY origin"
  "pg_agg@pg_aggregate: stddev_samp(delay), bit_or(distance) (integer columns)@SELECT origin, stddev_samp(delay) AS sd, bit_or(distance) AS bits FROM flights GROUP BY origin"
  "pg_agg_mixed@stddev_samp(delay) (pg_aggregate), bool_or(delay > 120) (native over a computed column)@SELECT origin, stddev_samp(delay) AS sd, bool_or(delay > 120) AS any_late FROM flights GROUP BY origin"
  "pg_agg_text@pg_aggregate: min(destination) (text)@SELECT origin, min(destination) AS first_dest FROM flights GROUP BY origin"
  "computed@computed: count(*) FILTER (WHERE coalesce(delay, 0) > 15), avg(greatest(delay, 0))@SELECT origin, count(*) FILTER (WHERE coalesce(delay, 0) > 15) AS late, avg(greatest(delay, 0)) AS mean_late FROM flights GROUP BY origin"
  "computed_key@computed key: GROUP BY origin \|\| '-' \|\| destination; count(*)@SELECT origin || '-' || destination AS route, count(*) AS n FROM flights GROUP BY 1"
)

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# fresh_view NAME SQL: a new one-partition stream with just this view on it
fresh_view() {
  psql_c "SET client_min_messages = warning; DROP FOREIGN TABLE IF EXISTS flights CASCADE;
    CREATE FOREIGN TABLE flights (ts timestamptz, delay int, distance int, origin text, destination text)
      SERVER velostream OPTIONS (partitions '1');
    CREATE MATERIALIZED VIEW $1 WITH (velostream.continuous) AS $2"
  sleep 2  # let the launcher start the partition worker
}
# check NAME: the view read every row, without errors
check() {
  local n e
  n=$(psql_c "SELECT sum(events_in) FROM velostream.stats WHERE view = '$1'::regclass")
  e=$(psql_c "SELECT count(*) FROM velostream.errors")
  [ "$n" = "$rows" ] && [ "$e" = 0 ] || { echo "$1 read $n rows of $rows, $e errors" >&2; exit 1; }
}
worker_pid() { psql_c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'velostream worker'"; }
# wait_view NAME: velostream.wait() must say true
wait_view() { [ "$(psql_c "SELECT velostream.wait('$1', '1800 s')")" = t ] || { echo "wait($1) timed out" >&2; exit 1; }; }

declare -A live cu busy
plain_rates=(); engine_line=""
# Run 0 warms the fresh cluster up (WAL segments, caches) and is not counted.
first=0; [ "$perf_mode" = 1 ] && first=1
for r in $(seq "$first" "$runs"); do
  if [ "$perf_mode" = 0 ]; then
    psql_c "SET client_min_messages = warning; DROP TABLE IF EXISTS plain; CREATE TABLE plain (ts timestamptz, delay int, distance int, origin text, destination text)"
    psql_c "CHECKPOINT"
    t0=$(now_ms)
    psql_c "\\copy plain FROM '$csv' (FORMAT csv)"
    t1=$(now_ms)
    [ "$r" = 0 ] || plain_rates+=($(( rows * 1000 / (t1 - t0) )))
  fi
  for v in "${views[@]}"; do
    IFS='@' read -r name label sql <<< "$v"
    lv=-
    if [ "$perf_mode" = 0 ]; then
      # COPY-to-visible: COPY and the worker at the same time
      fresh_view "$name" "$sql"
      psql_c "CHECKPOINT"
      t0=$(now_ms)
      psql_c "\\copy flights FROM '$csv' (FORMAT csv)"
      wait_view "$name"
      t1=$(now_ms)
      check "$name"
      lv=$(( rows * 1000 / (t1 - t0) ))
      [ "$r" = 0 ] || live[$name]+="$lv "
    fi
    # catch-up: COPY into the paused stream, then time the worker alone
    fresh_view "$name" "$sql"
    psql_c "SELECT velostream.pause('flights')" >/dev/null
    psql_c "CHECKPOINT"
    psql_c "\\copy flights FROM '$csv' (FORMAT csv)"
    off=$(stat -c %s "$dir/server.log")
    if [ "$perf_mode" = 1 ]; then
      pid=$(worker_pid)
      perf record -q -F 10000 -g -o "$dir/perf-$name.data" -p "$pid" 2>/dev/null &
      perf_pid=$!
      sleep 0.5
    fi
    t0=$(now_ms)
    psql_c "SELECT velostream.resume('flights')" >/dev/null
    wait_view "$name"
    t1=$(now_ms)
    sleep 0.2  # the worker logs its last cycle right after its COMMIT
    if [ "$perf_mode" = 1 ]; then
      kill -INT "$perf_pid"; wait "$perf_pid" || true
      # self costs, long C++ names shortened; and the shares of the shared objects
      perf report -i "$dir/perf-$name.data" --no-children --percent-limit 1.5 --stdio 2>/dev/null \
        | grep -E '^ +[0-9.]+%' | head -15 \
        | sed -E 's/absl::[^ ]*raw_hash_set<.*>::find<.*>/absl flat_hash_map<string_view, uint32>::find/;
                  s/std::__cxx11::basic_string<.*>::/std::string::/; s/  +/  /g' > "$dir/perf-$name.txt" || true
      perf report -i "$dir/perf-$name.data" --no-children --sort dso --stdio -g none 2>/dev/null \
        | grep -E '^ +[0-9.]+%' | head -6 | sed -E 's/  +/  /g' > "$dir/perf-$name-dso.txt" || true
      echo "== $label: catch-up $(( rows * 1000 / (t1 - t0) )) rec/s; top self costs ($dir/perf-$name.txt):"
      cat "$dir/perf-$name.txt"
      echo "   by shared object:"; cat "$dir/perf-$name-dso.txt"
    fi
    # DEBUG1: "velostream: flights/0 consumed N rows: read+aggregate X us, flush+commit Y us"
    b=$(tail -c +"$((off + 1))" "$dir/server.log" |
        sed -n 's/.*consumed \([0-9]*\) rows: read+aggregate \([0-9]*\) us, flush+commit \([0-9]*\) us.*/\1 \2 \3/p' |
        awk '{n += $1; us += $2 + $3} END {if (n != '"$rows"' || us == 0) print 0; else printf "%d", n * 1e6 / us}')
    check "$name"
    if [ "$r" = "$runs" ] && [ "$perf_mode" = 0 ]; then
      # the view equals the same query over the heap table (outside the timings)
      d=$(psql_c "SELECT count(*) FROM ((TABLE $name EXCEPT ${sql/FROM flights/FROM plain})
                                        UNION ALL (${sql/FROM flights/FROM plain} EXCEPT TABLE $name)) d")
      [ "$d" = 0 ] || { echo "$name differs from its query over the heap table in $d rows" >&2; exit 1; }
    fi
    cv=$(( rows * 1000 / (t1 - t0) ))
    if [ "$r" != 0 ]; then
      cu[$name]+="$cv "
      busy[$name]+="$b "
    fi
    echo "run $r$([ "$r" = 0 ] && echo ' (warm-up, not counted)'), $name: COPY-to-visible $lv, catch-up $cv, busy $b rec/s" >&2
  done
done
[ "$perf_mode" = 1 ] && exit 0
cluster_stop

# The engine alone, right after, on the same machine.
[ -x "$root/build/engine_bench" ] ||
  { cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
    cmake --build "$root/build" -j2 --target engine_bench >/dev/null; }
eb=$("$root/build/engine_bench" --benchmark_filter='Baseline_SumColumn|DelayByOriginHourly' --benchmark_min_time=1 \
      --benchmark_format=csv 2>/dev/null)
eng_base=$(echo "$eb" | awk -F, '/BM_Baseline_SumColumn/ {printf "%.0f", $NF}')
eng_dbo=$(echo "$eb" | awk -F, '/BM_DelayByOriginHourly/ {printf "%.0f", $NF}')

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
p=$(median "${plain_rates[@]}")
nl=$(median ${live[native]}); nc=$(median ${cu[native]}); nb=$(median ${busy[native]})
echo "| path ($rows rows, one-partition stream, one view, median of $runs) | COPY-to-visible rec/s | vs plain COPY | catch-up rec/s (1 core) | vs native | worker busy rec/s | vs native |"
echo "|---|---:|---:|---:|---:|---:|---:|"
echo "| plain COPY into a heap table (baseline) | $p | 1.00x | | | | |"
for v in "${views[@]}"; do
  IFS='@' read -r name label sql <<< "$v"
  l=$(median ${live[$name]}); c=$(median ${cu[$name]}); b=$(median ${busy[$name]})
  echo "| $label | $l | $(ratio "$l" "$p")x | $c | $(ratio "$c" "$nc")x | $b | $(ratio "$b" "$nb")x |"
done
echo
echo "| engine_bench (same run) | records/s |"
echo "|---|---:|"
echo "| baseline: sum one int column | $eng_base |"
echo "| delay_by_origin: GROUP BY origin, tumble(ts, 1 h); count, sum, avg, min, max | $eng_dbo |"
echo
for v in "${views[@]}"; do
  IFS='@' read -r name label sql <<< "$v"
  echo "runs $name: COPY-to-visible ${live[$name]}; catch-up ${cu[$name]}; busy ${busy[$name]}" >&2
done
echo "runs plain COPY: ${plain_rates[*]}" >&2
