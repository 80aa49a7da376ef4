#!/usr/bin/env bash
# COPY-to-visible throughput: rows per second from the start of a COPY into a
# stream until both continuous views of issue 3 reflect every row, beside what
# users would run instead, in the same run: a plain COPY of the same rows into
# a heap table (the baseline), an AFTER INSERT ... FOR EACH ROW trigger keeping
# a summary table with INSERT ... ON CONFLICT DO UPDATE, and a plain COPY
# followed by REFRESH MATERIALIZED VIEW of the batch query. Bulk (one COPY of
# every row) and trickle (TRICKLE_TXNS COPY transactions of equal size, 600 by
# default: 5,000 rows each on the 3M flights). Uses the full 3M-row flights
# file when ../shared is there, else the vendored January.
#   bash bench/copy_bench.sh [RUNS]       (as root; prints a markdown table)
# The trigger runs once per shape (it is 20x+ slower; its first run counts).
# Two reference rows, same run: a plain COPY followed by an INSERT of the
# views' final rows into tables with the same unique indexes (the result
# writes any incremental path makes, done after the COPY rather than beside
# it), and the trickle's COPYs into the stream with its workers paused (the
# ceiling no view work can pass).
# PARTITIONS=n: the stream's partitions (default 2); COPY_ONLY=1: the bulk
# COPY rows only (for the scaling table of bench/run_all.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
parts=${PARTITIONS:-2}        # the stream's partitions (workers)
copy_only=${COPY_ONLY:-0}     # 1: only the bulk COPY (no trickle, trigger, REFRESH)
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
trickle_txns=${TRICKLE_TXNS:-600}
mkdir "$chunks/t"
split -a 4 -n l/$trickle_txns "$csv" "$chunks/t/t."
chmod -R o+rx "$chunks"
# one psql script of $trickle_txns COPY statements (autocommit: a transaction each)
trickle_sql() { for c in "$chunks"/t/t.*; do echo "\\copy $1 FROM '$c' (FORMAT csv)"; done; }
trickle_sql plain > "$chunks/trickle_plain.sql"
trickle_sql flights > "$chunks/trickle_stream.sql"
trickle_sql trig > "$chunks/trickle_trig.sql"
chmod o+r "$chunks"/*.sql
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
plain_rates=(); stream_rates=(); copy_only_rates=(); chunked_rates=(); bound_rates=()
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
    CREATE FOREIGN TABLE flights (ts timestamptz, delay int, distance int, origin text, destination text)
      SERVER velostream OPTIONS (partitions '$parts');
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
  # The least any incremental path writes: the views' final rows, once, into
  # tables with the same unique indexes (after the plain COPY's time).
  psql_c "DROP TABLE IF EXISTS w_origin, w_long;
    CREATE TABLE w_origin (LIKE delay_by_origin INCLUDING INDEXES) WITH (fillfactor = 70);
    CREATE TABLE w_long (LIKE long_delays INCLUDING INDEXES) WITH (fillfactor = 70); CHECKPOINT"
  t3=$(now_ms)
  psql_c "INSERT INTO w_origin SELECT * FROM delay_by_origin; INSERT INTO w_long SELECT * FROM long_delays"
  t4=$(now_ms)
  bound_rates+=($(( rows * 1000 / (rows * 1000 / ${plain_rates[-1]} + t4 - t3) )))
  groups=$(psql_c "SELECT (SELECT count(*) FROM delay_by_origin) + (SELECT count(*) FROM long_delays)")

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
    plain_rates=(); stream_rates=(); copy_only_rates=(); chunked_rates=(); bound_rates=()
    continue
  fi
  echo "run $r: plain COPY ${plain_rates[-1]} rows/s; stream COPY ${copy_only_rates[-1]} rows/s; COPY-to-visible ${stream_rates[-1]} rows/s; chunked ${chunked_rates[-1]} rows/s" >&2
done

if [ "$copy_only" != 1 ]; then
# Trickle: $trickle_txns COPY transactions, plain and into the stream (median of RUNS).
trickle_plain=(); trickle_stream=(); trickle_statement=()
for r in $(seq 1 "$runs"); do
  psql_c "DROP TABLE IF EXISTS plain; CREATE TABLE plain (ts timestamptz, delay int, distance int, origin text, destination text)"
  psql_c "CHECKPOINT"
  t0=$(now_ms)
  psql_f "$chunks/trickle_plain.sql" >/dev/null
  t1=$(now_ms)
  trickle_plain+=($(( rows * 1000 / (t1 - t0) )))
  psql_c "SET client_min_messages = warning; DROP MATERIALIZED VIEW delay_by_origin; DROP MATERIALIZED VIEW long_delays;
    DELETE FROM velostream.view_partition_stats; $views"
  sleep 2
  psql_c "CHECKPOINT"
  t0=$(now_ms)
  psql_f "$chunks/trickle_stream.sql" >/dev/null
  psql_c "SELECT velostream.wait('delay_by_origin', '1800 s') AND velostream.wait('long_delays', '1800 s')" >/dev/null
  t2=$(now_ms)
  trickle_stream+=($(( rows * 1000 / (t2 - t0) )))
  n=$(psql_c "SELECT sum(flights) FROM delay_by_origin")
  [ "$n" = "$rows" ] || { echo "views hold $n rows after the trickle, expected $rows" >&2; exit 1; }
  # The COPYs alone, the workers paused: what no view work can exceed.
  psql_c "SET client_min_messages = warning; DROP MATERIALIZED VIEW delay_by_origin; DROP MATERIALIZED VIEW long_delays;
    DELETE FROM velostream.view_partition_stats; $views"
  psql_c "SELECT velostream.pause('flights')" >/dev/null
  sleep 1
  psql_c "CHECKPOINT"
  t0=$(now_ms)
  psql_f "$chunks/trickle_stream.sql" >/dev/null
  t1=$(now_ms)
  trickle_statement+=($(( rows * 1000 / (t1 - t0) )))
  psql_c "SELECT velostream.resume('flights')" >/dev/null
  psql_c "SELECT velostream.wait('delay_by_origin', '1800 s') AND velostream.wait('long_delays', '1800 s')" >/dev/null
  echo "trickle run $r: plain ${trickle_plain[-1]} rows/s; stream-to-visible ${trickle_stream[-1]} rows/s; statements only ${trickle_statement[-1]} rows/s" >&2
done

# What users would run instead. The trigger keeps the same two summaries as
# the views (count, sum, avg's sum, min, max per origin and hour; count and
# miles per route of the late flights), one upsert per row and summary.
trigger_setup="DROP TABLE IF EXISTS trig, sum_by_origin, sum_long;
  CREATE TABLE trig (ts timestamptz, delay int, distance int, origin text, destination text);
  CREATE TABLE sum_by_origin (origin text, hour timestamptz, flights bigint, total_delay bigint, n_delay bigint,
                              min_delay int, max_delay int, PRIMARY KEY (origin, hour));
  CREATE TABLE sum_long (origin text, destination text, n bigint, miles bigint, PRIMARY KEY (origin, destination));
  CREATE OR REPLACE FUNCTION trig_summaries() RETURNS trigger LANGUAGE plpgsql AS \$\$
  BEGIN
    INSERT INTO sum_by_origin VALUES (NEW.origin, date_bin('1 hour', NEW.ts, timestamptz '1970-01-01 00:00+00'), 1,
                                      NEW.delay, (NEW.delay IS NOT NULL)::int, NEW.delay, NEW.delay)
      ON CONFLICT (origin, hour) DO UPDATE SET flights = sum_by_origin.flights + 1,
        total_delay = coalesce(sum_by_origin.total_delay, 0) + coalesce(excluded.total_delay, 0),
        n_delay = sum_by_origin.n_delay + excluded.n_delay,
        min_delay = least(sum_by_origin.min_delay, excluded.min_delay),
        max_delay = greatest(sum_by_origin.max_delay, excluded.max_delay);
    IF NEW.delay > 15 THEN
      INSERT INTO sum_long VALUES (NEW.origin, NEW.destination, 1, NEW.distance)
        ON CONFLICT (origin, destination) DO UPDATE SET n = sum_long.n + 1, miles = sum_long.miles + excluded.miles;
    END IF;
    RETURN NULL;
  END \$\$;
  CREATE TRIGGER summaries AFTER INSERT ON trig FOR EACH ROW EXECUTE FUNCTION trig_summaries();"
psql_c "$trigger_setup"
psql_c "CHECKPOINT"
t0=$(now_ms)
psql_c "\\copy trig FROM '$csv' (FORMAT csv)"
t1=$(now_ms)
trigger_bulk=$(( rows * 1000 / (t1 - t0) ))
n=$(psql_c "SELECT sum(flights) FROM sum_by_origin")
[ "$n" = "$rows" ] || { echo "trigger summary holds $n rows, expected $rows" >&2; exit 1; }
psql_c "$trigger_setup"
psql_c "CHECKPOINT"
t0=$(now_ms)
psql_f "$chunks/trickle_trig.sql" >/dev/null
t1=$(now_ms)
trigger_trickle=$(( rows * 1000 / (t1 - t0) ))
echo "trigger: bulk $trigger_bulk rows/s, trickle $trigger_trickle rows/s" >&2
psql_c "SET client_min_messages = warning; DROP TABLE trig, sum_by_origin, sum_long"

# COPY into a heap, then REFRESH MATERIALIZED VIEW of the views' batch queries.
refresh_rates=()
for r in $(seq 1 "$runs"); do
  psql_c "SET client_min_messages = warning; DROP MATERIALIZED VIEW IF EXISTS mv_by_origin, mv_long;
    DROP TABLE IF EXISTS plain; CREATE TABLE plain (ts timestamptz, delay int, distance int, origin text, destination text);
    CREATE MATERIALIZED VIEW mv_by_origin AS
      SELECT origin, date_bin('1 hour', ts, timestamptz '1970-01-01 00:00+00') AS window_start, count(*) AS flights,
             sum(delay) AS total_delay, avg(delay) AS avg_delay, min(delay) AS min_delay, max(delay) AS max_delay
      FROM plain GROUP BY 1, 2 WITH NO DATA;
    CREATE MATERIALIZED VIEW mv_long AS
      SELECT origin, destination, count(*) AS n, sum(distance) AS miles FROM plain WHERE delay > 15 GROUP BY 1, 2
      WITH NO DATA;"
  psql_c "CHECKPOINT"
  t0=$(now_ms)
  psql_c "\\copy plain FROM '$csv' (FORMAT csv)"
  psql_c "REFRESH MATERIALIZED VIEW mv_by_origin; REFRESH MATERIALIZED VIEW mv_long"
  t1=$(now_ms)
  refresh_rates+=($(( rows * 1000 / (t1 - t0) )))
  echo "refresh run $r: COPY + REFRESH ${refresh_rates[-1]} rows/s" >&2
done

fi

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
p=$(median "${plain_rates[@]}"); c=$(median "${copy_only_rates[@]}"); s=$(median "${stream_rates[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo "| measure ($rows rows, $parts partitions, median of $runs) | rows/s | vs plain COPY |"
echo "|---|---:|---:|"
echo "| plain COPY into a heap table (baseline) | $p | 1.00x |"
echo "| COPY into the stream (statement only) | $c | $(ratio "$c" "$p")x |"
echo "| COPY into the stream until both views are complete | $s | $(ratio "$s" "$p")x |"
k=$(median "${chunked_rates[@]}")
echo "| the same rows as 30 COPY transactions, until both views are complete | $k | $(ratio "$k" "$p")x |"
bd=$(median "${bound_rates[@]}")
echo "| plain COPY, then INSERT of the views' final rows ($groups) into tables with the same unique indexes (the writes any incremental path makes, after the COPY instead of beside it) | $bd | $(ratio "$bd" "$p")x |"
[ "$copy_only" = 1 ] && exit 0
echo "| AFTER INSERT trigger upserting two summary tables (one COPY, one run) | $trigger_bulk | $(ratio "$trigger_bulk" "$p")x |"
rf=$(median "${refresh_rates[@]}")
echo "| plain COPY, then REFRESH MATERIALIZED VIEW of both batch queries | $rf | $(ratio "$rf" "$p")x |"
echo "| stream until complete vs the trigger | | $(ratio "$s" "$trigger_bulk")x |"
echo
tp=$(median "${trickle_plain[@]}"); ts=$(median "${trickle_stream[@]}")
echo "| trickle: $trickle_txns COPY transactions of $(( rows / trickle_txns )) rows (median of $runs) | rows/s | vs plain COPYs |"
echo "|---|---:|---:|"
echo "| plain COPYs into a heap table (baseline) | $tp | 1.00x |"
echo "| COPYs into the stream until both views are complete | $ts | $(ratio "$ts" "$tp")x |"
echo "| COPYs into a table whose AFTER INSERT trigger upserts two summaries (one run) | $trigger_trickle | $(ratio "$trigger_trickle" "$tp")x |"
echo "| stream until complete vs the trigger | | $(ratio "$ts" "$trigger_trickle")x |"
tst=$(median "${trickle_statement[@]}")
echo "| ceiling: the COPYs into the stream alone, its workers paused | $tst | $(ratio "$tst" "$tp")x |"
echo "| ceiling vs the trigger | | $(ratio "$tst" "$trigger_trickle")x |"
