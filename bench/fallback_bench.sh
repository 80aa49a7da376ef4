#!/usr/bin/env bash
# Aggregate and expression paths (issue 9): records per second through one
# continuous view at a time on a one-partition stream (one worker, one core),
# for a view the engine runs natively and for views that need PostgreSQL's
# aggregate protocol (src/pg/pg_aggregate.cpp); and for views with computed
# columns (src/pg/computed.cpp), each measured twice in the same run: with
# velostream.native_expressions = on (the engine's vectorized expressions,
# src/pg/native_expr.cpp) and off (PostgreSQL's executor per row); beside a
# plain COPY of the same rows into a heap table and build/engine_bench's
# delay_by_origin, in the same run. Uses the full 3M-row flights file when
# ../shared is there (or $FLIGHTS_CSV), else the vendored January.
#   bash bench/fallback_bench.sh [RUNS]          (as root; prints markdown tables; ~3 min for 3 runs)
#   bash bench/fallback_bench.sh --perf [NAME..] one catch-up per view (and per mode; or just the views
#                                                named) under `perf record -g -p <worker>`; prints the top costs
# Per view and run, two measures (the computed-column views: catch-up only):
#   COPY-to-visible: wall clock from the start of the COPY until velostream.wait()
#     is true (COPY and worker run concurrently, on the machine's 2 cores);
#   catch-up (per core): the stream paused during the COPY, then resumed; wall
#     clock from the resume until velostream.wait() is true: the worker alone.
#     "busy" adds up the worker's own cycle times (its DEBUG1 log lines:
#     read+aggregate, flush+commit), without the idle wait for the resume to be seen;
#     for the computed-column views also "read+aggregate" alone (reading and decoding
#     the log, the expressions, aggregating; not writing the groups).
# Every view's table is checked against its query over the heap table in the last run
# (for the computed-column views, in both modes).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
perf_mode=0
only=""
if [ "${1:-}" = "--perf" ]; then perf_mode=1; runs=1; shift; only=" $* "; else runs=${1:-3}; fi
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

# name@label@SELECT (over stream flights), measured with native expressions on (the default);
# every view groups by origin. stddev_samp and friends over integers return numeric and run
# through pg_aggregate; over real/double precision, and bool_and/bool_or, they are native.
views=(
  "native@native: count(*), sum, avg, min, max (delay)@SELECT origin, count(*) AS n, sum(delay) AS total, avg(delay) AS mean, min(delay) AS lo, max(delay) AS hi FROM flights GROUP BY origin"
  "pg_agg@stddev_samp(delay) (native moments + PostgreSQL's final function since c0aeb1d), bit_or(distance) (pg_aggregate)@SELECT origin, stddev_samp(delay) AS sd, bit_or(distance) AS bits FROM flights GROUP BY origin"
  "pg_agg_mixed@stddev_samp(delay) (as above), bool_or(delay > 120) (native over a computed column)@SELECT origin, stddev_samp(delay) AS sd, bool_or(delay > 120) AS any_late FROM flights GROUP BY origin"
  "min_text@min(destination) (text; native since 50d0d2d, through pg_aggregate before)@SELECT origin, min(destination) AS first_dest FROM flights GROUP BY origin"
)
# Views with computed columns (GROUP BY expressions, WHERE, FILTER, aggregate arguments), each
# measured (catch-up only) twice in every run: velostream.native_expressions = on (the engine's
# vectorized expressions where the translator has a native form) and off (PostgreSQL's executor
# per row for every computed column). The last one has no native form: executor either way.
expr_views=(
  "route_daily@route_daily (issue 9, verbatim: \|\| key, date_trunc of AT TIME ZONE key, CASE key, FILTER, avg(greatest), bool_or(delay > 120), WHERE IN + coalesce; stddev_samp through pg_aggregate)@SELECT origin || '-' || destination AS route, date_trunc('day', ts AT TIME ZONE 'America/New_York') AS local_day, CASE WHEN distance < 500 THEN 'short' WHEN distance < 1500 THEN 'medium' ELSE 'long' END AS haul, count(*) AS flights, count(*) FILTER (WHERE delay > 15) AS delayed, round(avg(greatest(delay, 0)), 2) AS avg_delay, stddev_samp(delay) AS sd_delay, bool_or(delay > 120) AS any_long_delay, max(ts) AS last_departure FROM flights WHERE origin IN ('ORD', 'ATL', 'DFW', 'LAX') AND coalesce(delay, 0) > -30 GROUP BY 1, 2, 3 HAVING count(*) >= 5"
  "where_in@route_daily's WHERE origin IN ('ORD', 'ATL', 'DFW', 'LAX') AND coalesce(delay, 0) > -30; GROUP BY origin; count(*), sum(delay)@SELECT origin, count(*) AS n, sum(delay) AS total FROM flights WHERE origin IN ('ORD', 'ATL', 'DFW', 'LAX') AND coalesce(delay, 0) > -30 GROUP BY origin"
  "concat_key@GROUP BY origin \|\| '-' \|\| destination (3,399 routes); count(*)@SELECT origin || '-' || destination AS route, count(*) AS n FROM flights GROUP BY 1"
  "case_key@GROUP BY CASE WHEN distance < 500 THEN 'short' WHEN distance < 1500 ... END (3 groups); count(*), avg(delay)@SELECT CASE WHEN distance < 500 THEN 'short' WHEN distance < 1500 THEN 'medium' ELSE 'long' END AS haul, count(*) AS n, avg(delay) AS mean FROM flights GROUP BY 1"
  "arith_arg@GROUP BY origin; sum(delay * 2 + distance)@SELECT origin, sum(delay * 2 + distance) AS s FROM flights GROUP BY origin"
  "filter_coalesce@GROUP BY origin; count(*) FILTER (WHERE coalesce(delay, 0) > 15), avg(greatest(delay, 0))@SELECT origin, count(*) FILTER (WHERE coalesce(delay, 0) > 15) AS late, avg(greatest(delay, 0)) AS mean_late FROM flights GROUP BY origin"
  "local_day@GROUP BY date_trunc('day', ts AT TIME ZONE 'America/New_York') (182 days); count(*), max(delay)@SELECT date_trunc('day', ts AT TIME ZONE 'America/New_York') AS local_day, count(*) AS n, max(delay) AS worst FROM flights GROUP BY 1"
  "local_hour@GROUP BY extract(hour FROM ts AT TIME ZONE 'America/New_York') (24 groups); count(*), avg(delay)@SELECT extract(hour FROM ts AT TIME ZONE 'America/New_York') AS local_hour, count(*) AS n, avg(delay) AS mean FROM flights GROUP BY 1"
  "no_native@no native form (executor either way): GROUP BY origin; count(*) FILTER (WHERE sqrt(distance) > 30), sum(length(destination))@SELECT origin, count(*) FILTER (WHERE sqrt(distance) > 30) AS far, sum(length(destination)) AS letters FROM flights GROUP BY origin"
)

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
log_size() { stat -c %s "$dir/server.log"; }
# fresh_view NAME SQL: a new one-partition stream with just this view on it, and its worker started
fresh_view() {
  local off
  off=$(log_size)
  psql_c "SET client_min_messages = warning; DROP FOREIGN TABLE IF EXISTS flights CASCADE;
    CREATE FOREIGN TABLE flights (ts timestamptz, delay int, distance int, origin text, destination text)
      SERVER velostream OPTIONS (partitions '1');
    CREATE MATERIALIZED VIEW $1 WITH (velostream.continuous) AS $2"
  # the launcher looks for new streams every 500 ms
  for _ in $(seq 1 100); do
    tail -c +"$((off + 1))" "$dir/server.log" | grep -q 'worker for stream flights partition 0 started' && return 0
    sleep 0.05
  done
  echo "no worker started for $1" >&2; exit 1
}
# set_native on|off: velostream.native_expressions for workers started from now on
set_native() {
  psql_c "ALTER SYSTEM SET velostream.native_expressions = $1"
  psql_c "SELECT pg_reload_conf()" >/dev/null
  for _ in $(seq 1 50); do
    [ "$(psql_c "SHOW velostream.native_expressions")" = "$1" ] && return 0
    sleep 0.1
  done
  echo "velostream.native_expressions did not become $1" >&2; exit 1
}
# check NAME: the view read every row, without errors
check() {
  local n e
  n=$(psql_c "SELECT sum(events_in) FROM velostream.stats WHERE view = '$1'::regclass")
  e=$(psql_c "SELECT count(*) FROM velostream.errors")
  [ "$n" = "$rows" ] && [ "$e" = 0 ] || { echo "$1 read $n rows of $rows, $e errors" >&2; exit 1; }
}
# check_heap NAME SQL: the view equals the same query over the heap table
check_heap() {
  local d
  d=$(psql_c "SELECT count(*) FROM ((TABLE $1 EXCEPT ${2/FROM flights/FROM plain})
                                    UNION ALL (${2/FROM flights/FROM plain} EXCEPT TABLE $1)) d")
  [ "$d" = 0 ] || { echo "$1 differs from its query over the heap table in $d rows" >&2; exit 1; }
  echo "$1: $(psql_c "SELECT count(*) FROM $1") rows, equal to its query over the heap table" >&2
}
worker_pid() { psql_c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'velostream worker'"; }
# wait_view NAME: velostream.wait() must say true
wait_view() { [ "$(psql_c "SELECT velostream.wait('$1', '1800 s')")" = t ] || { echo "wait($1) timed out" >&2; exit 1; }; }

# live NAME SQL: COPY-to-visible, COPY and the worker at the same time; sets lv
live_copy() {
  local t0 t1
  fresh_view "$1" "$2"
  psql_c "CHECKPOINT"
  t0=$(now_ms)
  psql_c "\\copy flights FROM '$csv' (FORMAT csv)"
  wait_view "$1"
  t1=$(now_ms)
  check "$1"
  lv=$(( rows * 1000 / (t1 - t0) ))
}
# catch_up NAME LABEL SQL [TAG]: COPY into the paused stream, then time the worker alone; sets cv
# (wall clock), b (busy: the worker's own cycle times) and ra (read+aggregate alone). --perf: $dir/perf-NAME[-TAG].*
catch_up() {
  local name=$1 label=$2 sql=$3 pf=$1${4:+-$4} off t0 t1 pid perf_pid
  fresh_view "$name" "$sql"
  psql_c "SELECT velostream.pause('flights')" >/dev/null
  psql_c "CHECKPOINT"
  psql_c "\\copy flights FROM '$csv' (FORMAT csv)"
  off=$(log_size)
  if [ "$perf_mode" = 1 ]; then
    pid=$(worker_pid)
    perf record -q -F 10000 -g -o "$dir/perf-$pf.data" -p "$pid" 2>/dev/null &
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
    perf report -i "$dir/perf-$pf.data" --no-children --percent-limit 1.5 --stdio 2>/dev/null \
      | grep -E '^ +[0-9.]+%' | head -15 \
      | sed -E 's/absl::[^ ]*raw_hash_set<.*>::find<.*>/absl flat_hash_map<string_view, uint32>::find/;
                s/std::__cxx11::basic_string<.*>::/std::string::/; s/  +/  /g' > "$dir/perf-$pf.txt" || true
    perf report -i "$dir/perf-$pf.data" --no-children --sort dso --stdio -g none 2>/dev/null \
      | grep -E '^ +[0-9.]+%' | head -6 | sed -E 's/  +/  /g' > "$dir/perf-$pf-dso.txt" || true
    echo "== $label: catch-up $(( rows * 1000 / (t1 - t0) )) rec/s; top self costs ($dir/perf-$pf.txt):"
    cat "$dir/perf-$pf.txt"
    echo "   by shared object:"; cat "$dir/perf-$pf-dso.txt"
  fi
  # DEBUG1: "velostream: flights/0 consumed N rows: read+aggregate X us, flush+commit Y us"
  read -r b ra < <(tail -c +"$((off + 1))" "$dir/server.log" |
      sed -n 's/.*consumed \([0-9]*\) rows: read+aggregate \([0-9]*\) us, flush+commit \([0-9]*\) us.*/\1 \2 \3/p' |
      awk '{n += $1; ra += $2; us += $2 + $3}
           END {if (n != '"$rows"' || us == 0) print 0, 0; else printf "%d %d\n", n * 1e6 / us, n * 1e6 / ra}')
  check "$name"
  cv=$(( rows * 1000 / (t1 - t0) ))
}

declare -A live cu busy agg
plain_rates=(); engine_line=""
# Run 0 warms the fresh cluster up (WAL segments, caches) and is not counted; the
# expression views, which come after the others in every run, skip it.
first=0; [ "$perf_mode" = 1 ] && first=1
started=$(date +%s)
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
    [ -z "${only// /}" ] || [[ "$only" == *" $name "* ]] || continue
    lv=-
    if [ "$perf_mode" = 0 ]; then
      live_copy "$name" "$sql"
      [ "$r" = 0 ] || live[$name]+="$lv "
    fi
    catch_up "$name" "$label" "$sql"
    # the view equals the same query over the heap table (outside the timings)
    [ "$r" = "$runs" ] && [ "$perf_mode" = 0 ] && check_heap "$name" "$sql"
    if [ "$r" != 0 ]; then
      cu[$name]+="$cv "
      busy[$name]+="$b "
    fi
    echo "run $r$([ "$r" = 0 ] && echo ' (warm-up, not counted)'), $name: COPY-to-visible $lv, catch-up $cv, busy $b rec/s" >&2
  done
  [ "$r" = 0 ] && continue
  # on then off in odd runs, off then on in even ones
  modes="on off"; [ $((r % 2)) = 0 ] && modes="off on"
  for v in "${expr_views[@]}"; do
    IFS='@' read -r name label sql <<< "$v"
    [ -z "${only// /}" ] || [[ "$only" == *" $name "* ]] || continue
    for m in $modes; do
      set_native "$m"
      catch_up "$name" "$label (native_expressions $m)" "$sql" "$m"
      [ "$r" = "$runs" ] && [ "$perf_mode" = 0 ] && check_heap "$name" "$sql"
      cu[$name/$m]+="$cv "
      busy[$name/$m]+="$b "
      agg[$name/$m]+="$ra "
      echo "run $r, $name, native_expressions $m: catch-up $cv, busy $b, read+aggregate $ra rec/s" >&2
    done
  done
  set_native on
done
echo "measured in $(( $(date +%s) - started )) s" >&2
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
echo "| computed columns ($rows rows, one view, median of $runs) | worker busy rec/s, native (on) | worker busy rec/s, executor (off) | native / executor | native vs the native view above | read+aggregate rec/s, on | read+aggregate rec/s, off | native / executor | catch-up rec/s, on | catch-up rec/s, off |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for v in "${expr_views[@]}"; do
  IFS='@' read -r name label sql <<< "$v"
  bn=$(median ${busy[$name/on]}); bx=$(median ${busy[$name/off]})
  an=$(median ${agg[$name/on]}); ax=$(median ${agg[$name/off]})
  cn=$(median ${cu[$name/on]}); cx=$(median ${cu[$name/off]})
  echo "| $label | $bn | $bx | **$(ratio "$bn" "$bx")x** | $(ratio "$bn" "$nb")x | $an | $ax | $(ratio "$an" "$ax")x | $cn | $cx |"
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
for v in "${expr_views[@]}"; do
  IFS='@' read -r name label sql <<< "$v"
  for m in on off; do
    echo "runs $name native_expressions $m: catch-up ${cu[$name/$m]}; busy ${busy[$name/$m]}; read+aggregate ${agg[$name/$m]}" >&2
  done
done
echo "runs plain COPY: ${plain_rates[*]}" >&2
