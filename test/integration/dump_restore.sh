#!/usr/bin/env bash
# Dump and restore, upgrades and DROPs (catalog version 0.7).
#  1. A source cluster gets a 4-partition INSERT/COPY stream with three views
#     (owned by origin with count/sum/avg/min/max, shared by destination with
#     avg, a tumble hour window with WHERE), a Kafka stream with an avg view and
#     three dead letters; the local stream is then paused and more rows are
#     committed to it (they wait in its partition logs). Its transaction ids
#     are pushed far beyond a fresh cluster's first. pg_dump -Fc.
#  2. The dump is restored into a fresh cluster with pg_restore (serial), and
#     into another with pg_restore -j 2; the serial restore is dumped again
#     (still paused, its rows waiting) and that dump restored into a third
#     fresh cluster section by section (pre-data, then data and post-data once
#     the streams' workers run). Each restore must succeed with no
#     error; the catalog (streams, routing column, pause state, views), the
#     results, the stats counters and the dead letters must be carried; the
#     stream stays paused with its waiting rows until resume() counts them
#     exactly once; a view created after the restore counts none of the rows
#     committed before it; rows inserted and Kafka messages produced after the
#     restore are counted once (Kafka offsets carried). Every view is compared
#     with its own SELECT run as a batch query over a plain "truth" table
#     holding the same rows (EXCEPT ALL both ways); the truth tables travel in
#     the same dump.
#  3. ALTER EXTENSION velostream UPDATE from 0.1 and from 0.2 with a stream,
#     views and rows waiting: no worker runs before the UPDATE; after it the
#     extension is 0.7 and the views count the waiting rows exactly.
#  4. DROP FOREIGN TABLE ... CASCADE, DROP SCHEMA ... CASCADE and DROP OWNED BY
#     a non-superuser remove the stream's and views' tables in schema
#     velostream, never the extension, and the other streams go on.
#  5. ALTER EXTENSION velostream UPDATE from 0.4 with a two-worker Kafka
#     stream without partition logs (as 0.4 made them) and a shared view: the
#     update creates the logs, the waiting messages are counted once, and a
#     later first view routes the stream and owns its groups.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/test/cluster.sh"
work=$(mktemp -d /tmp/velostream-dump.XXXXXX)
chmod 755 "$work"
trap 'kafka_mock_stop; cluster_stop; rm -rf "$work"' EXIT
kafka_mock_start "$work" --topic dr:4 --topic upk:2

SRC_DIR=/tmp/velostream-dump-src;      SRC_PORT=55461
SERIAL_DIR=/tmp/velostream-dump-j1;    SERIAL_PORT=55462
PARALLEL_DIR=/tmp/velostream-dump-j2;  PARALLEL_PORT=55463
DDL_DIR=/tmp/velostream-dump-ddl;      DDL_PORT=55464
REDUMP_DIR=/tmp/velostream-dump-again; REDUMP_PORT=55465

npass=0; nfail=0
pass() { echo "PASS: $*"; npass=$((npass + 1)); }
failed() { echo "FAIL: $*"; nfail=$((nfail + 1)); }
# psql_as ROLE SQL: like psql_c, logged in as ROLE
psql_as() {
  "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -At -h "$VS_DIR" -p "$VS_PORT" -U "$1" -d postgres -c "$2"
}
produce() { "$root/build/velostream-kafka-produce" --brokers "$BS" --topic dr; }

# The flights, without the header, cut into the chunks each phase sends.
zcat "$root/data/flights-2001-01.csv.gz" | tail -n +2 > "$work/flights.csv"
chunk() { sed -n "$1,$2p" "$work/flights.csv" > "$work/$3.csv"; chmod 644 "$work/$3.csv"; }
chunk 1 40000 local1             # counted before the dump
chunk 40001 55000 waiting        # committed to the paused stream before the dump
chunk 55001 70000 local_j1       # inserted after the serial restore
chunk 70001 85000 local_j2       # inserted after the parallel restore
chunk 85001 100000 local_again   # inserted after restoring a dump of the serial restore
chunk 100001 120000 kafka1       # produced before the dump
chunk 120001 130000 kafka_j1     # produced after the serial restore
chunk 130001 140000 kafka_j2     # produced after the parallel restore
chunk 140001 150000 kafka_again  # produced after restoring a dump of the serial restore
: > "$work/kafka_after_dump.csv" # every message produced after the dump

# The views, %s being the stream or its truth table.
declare -A Q
Q[fl_by_origin]="SELECT origin, count(*) AS n, sum(delay) AS total_delay, avg(delay) AS avg_delay,
                        min(delay) AS min_delay, max(delay) AS max_delay FROM %s GROUP BY origin"
Q[fl_by_dest]="SELECT dest, count(*) AS n, avg(delay) AS avg_delay, sum(distance) AS miles FROM %s GROUP BY dest"
Q[fl_hourly]="SELECT tumble(ts, interval '1 hour') AS hour, count(*) AS n, avg(delay) AS avg_delay,
                     max(distance) AS longest FROM %s WHERE delay > 15 GROUP BY tumble(ts, interval '1 hour')"
Q[kf_by_origin]="SELECT origin, count(*) AS n, avg(delay) AS avg_delay, sum(distance) AS miles FROM %s GROUP BY origin"
# created after a restore: must not count the rows committed before it
Q[fl_new]="SELECT dest, count(*) AS n, sum(delay) AS total_delay FROM %s GROUP BY dest"
# issue 9's constructs: PostgreSQL-run aggregates, DISTINCT, expressions and
# HAVING in an owned view (by origin) and a shared one (expression key)
Q[fl_spread]="SELECT origin, count(*) AS n, stddev_samp(delay) AS sd, min(dest) AS first_dest, count(DISTINCT dest) AS dests,
  round(avg(greatest(delay, 0)), 2) AS avg_late FROM %s GROUP BY origin HAVING count(*) > 2"
Q[fl_routes]="SELECT origin || '-' || dest AS route, count(*) AS n, count(*) FILTER (WHERE coalesce(delay, 0) > 10) AS late,
  bool_or(delay > 60) AS any_long, stddev_samp(distance) AS sd FROM %s GROUP BY 1"
FL_VIEWS="fl_by_origin fl_by_dest fl_hourly fl_spread fl_routes"

# same VIEW WHAT: VIEW equals its batch query (view truth_VIEW), EXCEPT ALL both ways.
same() {
  local d n
  d=$(psql_c "SELECT count(*) FROM ((TABLE $1 EXCEPT ALL TABLE truth_$1) UNION ALL
                                    (TABLE truth_$1 EXCEPT ALL TABLE $1)) d" 2>&1)
  n=$(psql_c "SELECT count(*) || ' groups, ' || coalesce(sum(n), 0) || ' rows' FROM $1" 2>&1)
  if [ "$d" = 0 ]; then pass "$2: $1 equals its batch query ($n)"
  else failed "$2: $1 differs from its batch query: $d (view: $n; truth: $(psql_c "SELECT count(*) || ' groups, ' || coalesce(sum(n), 0) || ' rows' FROM truth_$1" 2>&1))"; fi
}
# wait_views WHAT VIEW...: velostream.wait() for each VIEW
wait_views() {
  local what=$1 v ok
  shift
  for v in "$@"; do
    ok=$(psql_c "SELECT velostream.wait('$v', '90 s')" 2>&1)
    [ "$ok" = t ] || failed "$what: velostream.wait('$v') returned $ok"
  done
}
# kafka_caught_up WHAT: kf_by_origin has counted as many rows as kf_truth holds
# (after a wait(), bounded polling, as test/integration/kafka.sh does).
kafka_caught_up() {
  local want got
  want=$(psql_c "SELECT count(*) FROM kf_truth")
  got=$(poll "SELECT coalesce(sum(n), 0) FROM kf_by_origin" "$want" 30)
  [ "$got" = "$want" ] || echo "($1: kf_by_origin counted $got of $want messages after 30 s)"
}
# stats_exact WHAT: velostream.stats' events_in / events_selected, summed over
# partitions, equal the rows each view has read / selected, counted in the truth tables.
stats_exact() {
  local got want
  got=$(psql_c "SELECT string_agg(view::text || '=' || ev || '/' || sel, ' ' ORDER BY view::text)
                  FROM (SELECT view, sum(events_in) AS ev, sum(events_selected) AS sel FROM velostream.stats
                         WHERE view::text IN ('fl_by_origin', 'fl_by_dest', 'fl_hourly', 'kf_by_origin') GROUP BY view) s" 2>&1)
  want=$(psql_c "SELECT format('fl_by_dest=%1\$s/%1\$s fl_by_origin=%1\$s/%1\$s fl_hourly=%1\$s/%2\$s kf_by_origin=%3\$s/%3\$s',
                   (SELECT count(*) FROM fl_truth), (SELECT count(*) FROM fl_truth WHERE delay > 15),
                   (SELECT count(*) FROM kf_truth))" 2>&1)
  [ "$got" = "$want" ] && pass "$1: velostream.stats events_in/events_selected exact ($got)" \
    || failed "$1: velostream.stats events_in/events_selected: got '$got', want '$want'"
}
STREAMS_SQL="SELECT string_agg(format('%s kind=%s partitions=%s paused=%s route_column=%s (%s)', stream, kind, partitions,
                                      paused, route_column, (SELECT count(log_table) FROM velostream.stream_partitions p
                                                              WHERE p.stream = s.stream)), '; ' ORDER BY stream::text)
               FROM velostream.streams s"
VIEWS_SQL="SELECT string_agg(format('%s on %s owned=%s keys=%s state=%s', view, stream, owned, key_columns,
                                    state_table IS NOT NULL), '; ' ORDER BY view::text) FROM velostream.views"
ERRORS_SQL="SELECT count(*) || ' dead letters: ' || string_agg(partition || '@' || \"offset\" || ' ' || payload || ' (' || reason || ')',
                                                  ' | ' ORDER BY partition, \"offset\") ||
                   ', kafka_stats.dead_letters ' || (SELECT sum(dead_letters) FROM velostream.kafka_stats WHERE stream = 'kf'::regclass)
              FROM velostream.errors WHERE stream = 'kf'::regclass"

# no_orphans WHAT: every table velostream.stream_<oid>_p<n> / view_<oid>_state
# is named after an existing stream / view and is its catalog's log / state table.
no_orphans() {
  local orphans
  orphans=$(psql_c "SELECT coalesce(string_agg(relname, ' ' ORDER BY relname), '') FROM pg_class c
                     WHERE relnamespace = 'velostream'::regnamespace AND relkind IN ('r', 'p')
                       AND ((relname ~ '^stream_[0-9]+_p[0-9]+$' AND NOT EXISTS (
                              SELECT 1 FROM velostream.stream_partitions p WHERE p.log_table = c.oid
                                 AND c.relname = 'stream_' || p.stream::oid || '_p' || p.partition))
                         OR (relname ~ '^view_[0-9]+_state$' AND NOT EXISTS (
                              SELECT 1 FROM velostream.views v WHERE v.state_table = c.oid
                                 AND c.relname = 'view_' || v.view::oid || '_state')))" 2>&1)
  [ -z "$orphans" ] && pass "$1: every log and state table in schema velostream is named after its stream or view" \
    || failed "$1: tables in schema velostream that are not their stream's or view's: $orphans"
}

###############################################################################
# 1. The source database.
cluster_start "$SRC_DIR" "$SRC_PORT" "velostream.flush_interval = 50"
psql_c "CREATE EXTENSION velostream;
CREATE SERVER kafka FOREIGN DATA WRAPPER velostream OPTIONS (brokers '$BS');
CREATE TABLE fl_truth (ts timestamptz, delay int, distance int, origin text, dest text);
CREATE TABLE fl_waiting (LIKE fl_truth);   -- committed to the paused stream before the dump
CREATE TABLE kf_truth (LIKE fl_truth);
CREATE FOREIGN TABLE fl (ts timestamptz, delay int, distance int, origin text, dest text)
  SERVER velostream OPTIONS (partitions '4');
CREATE FOREIGN TABLE kf (ts timestamptz, delay int, distance int, origin text, dest text)
  SERVER kafka OPTIONS (topic 'dr', format 'csv', start_offset 'earliest', partitions '2');" || failed "source: setup"
for v in $FL_VIEWS; do
  psql_c "CREATE MATERIALIZED VIEW $v WITH (velostream.continuous) AS $(printf "${Q[$v]}" fl);
          CREATE VIEW truth_$v AS $(printf "${Q[$v]}" fl_truth);" || failed "source: creating $v"
done
psql_c "CREATE MATERIALIZED VIEW kf_by_origin WITH (velostream.continuous) AS $(printf "${Q[kf_by_origin]}" kf);
        CREATE VIEW truth_kf_by_origin AS $(printf "${Q[kf_by_origin]}" kf_truth);" || failed "source: creating kf_by_origin"
psql_c "\\copy fl FROM '$work/local1.csv' (FORMAT csv)" && psql_c "\\copy fl_truth FROM '$work/local1.csv' (FORMAT csv)" \
  || failed "source: COPY"
produce < "$work/kafka1.csv" || failed "source: producing"
printf '%s\n' 'not a flight' '2001-01-01T00:00:00Z,late,100,SFO,LAX' '2001-01-01T00:00:00Z,5,100,SFO' | produce \
  || failed "source: producing bad messages"
psql_c "\\copy kf_truth FROM '$work/kafka1.csv' (FORMAT csv)"
wait_views "source" $FL_VIEWS kf_by_origin
kafka_caught_up "source"
for v in $FL_VIEWS kf_by_origin; do same "$v" "source"; done
stats_exact "source"
# Push the transaction ids far beyond those of the clusters the dump goes to
# (30000 subtransactions that each take an id), so that ids carried over
# verbatim would be in the restored cluster's future.
psql_c "CREATE TEMP TABLE burn (i int);
DO \$\$BEGIN
  FOR i IN 1..30000 LOOP
    BEGIN INSERT INTO burn VALUES (i); RAISE EXCEPTION 'burn'; EXCEPTION WHEN raise_exception THEN NULL; END;
  END LOOP;
END\$\$;" || failed "source: burning transaction ids"
# Rows committed to the paused stream wait in its logs and go into the dump.
psql_c "SELECT velostream.pause('fl')" >/dev/null
psql_c "\\copy fl FROM '$work/waiting.csv' (FORMAT csv)" && psql_c "\\copy fl_waiting FROM '$work/waiting.csv' (FORMAT csv)" \
  || failed "source: COPY into the paused stream"
echo "(source: next transaction id $(psql_c "SELECT txid_current()"))"
waiting=$(wc -l < "$work/waiting.csv")
backlog=$(psql_c "SELECT sum(backlog) FROM velostream.stats WHERE view = 'fl_by_origin'::regclass")
[ "$backlog" = "$waiting" ] && pass "source: $waiting rows wait in the paused stream's logs" \
  || failed "source: backlog of the paused stream $backlog, want $waiting"
no_orphans "source"
src_streams=$(psql_c "$STREAMS_SQL")
src_views=$(psql_c "$VIEWS_SQL")
src_errors=$(psql_c "$ERRORS_SQL")
echo "(source streams: $src_streams)"
echo "(source views: $src_views)"
echo "(source errors: $src_errors)"
[ "${src_errors%% *}" = 3 ] && pass "source: 3 dead letters in velostream.errors" || failed "source: $src_errors"
out=$("$PGBIN/pg_dump" -h "$VS_DIR" -p "$VS_PORT" -U postgres -d postgres -Fc -f "$work/db.dump" 2>&1)
rc=$?
[ $rc = 0 ] && pass "pg_dump -Fc exits 0 ($(stat -c %s "$work/db.dump") bytes)" || failed "pg_dump -Fc: exit $rc: $out"
chmod 644 "$work/db.dump"
cluster_stop  # the restored Kafka stream reads the same topic: the source stops consuming

###############################################################################
# 2. Restores: serial, then parallel, each into a fresh cluster.
# restored LABEL DIR PORT HOW SUFFIX DUMP [REDUMP]: restores DUMP into a fresh
# cluster and checks it. HOW: "-j 1", "-j 2", or "sections": pre-data first,
# then, once the restored streams' workers run, data and post-data. With
# REDUMP, also dumps the restored database into file REDUMP while the stream
# is still paused with its rows waiting.
restored() {
  local label=$1 how=$4 sfx=$5 dump=$6 redump=${7:-} out rc got n
  cluster_start "$2" "$3" "velostream.flush_interval = 50"
  if [ "$how" = sections ]; then
    out=$("$PGBIN/pg_restore" -h "$VS_DIR" -p "$VS_PORT" -U postgres -d postgres --section=pre-data "$dump" 2>&1)
    rc=$?
    # The streams exist now: their workers may start (a Kafka stream's must
    # not consume its topic before its offsets are restored). 6 partitions.
    poll "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'velostream worker'" 6 5 >/dev/null
    sleep 2
    out="$out$("$PGBIN/pg_restore" -h "$VS_DIR" -p "$VS_PORT" -U postgres -d postgres --section=data \
                 --section=post-data "$dump" 2>&1)"
    rc=$((rc + $?))
    how="--section=pre-data, then --section=data --section=post-data,"
  else
    out=$("$PGBIN/pg_restore" -h "$VS_DIR" -p "$VS_PORT" -U postgres -d postgres $how "$dump" 2>&1)
    rc=$?
  fi
  if [ $rc = 0 ] && ! echo "$out" | grep -qi error; then pass "$label: pg_restore $how exits 0 with no error"
  else failed "$label: pg_restore $how: exit $rc: $(echo "$out" | grep -i error | head -n 8)"; fi
  got=$(psql_c "SELECT extversion FROM pg_extension WHERE extname = 'velostream'" 2>&1)
  [ "$got" = 0.7 ] && pass "$label: extension velostream 0.7 restored" || failed "$label: extension version '$got'"
  got=$(psql_c "$VIEWS_SQL" 2>&1)
  [ "$got" = "$src_views" ] && pass "$label: velostream.views lists the same views" \
    || failed "$label: velostream.views: '$got', want '$src_views'"
  no_orphans "$label"
  got=$(psql_c "$STREAMS_SQL" 2>&1)
  [ "$got" = "$src_streams" ] && pass "$label: velostream.streams carried (partitions, routing column, fl paused, logs)" \
    || failed "$label: velostream.streams: '$got', want '$src_streams'"

  # Kafka: the messages produced since the dump (none for the serial restore)
  # are counted, the ones before it not again.
  psql_c "\\copy kf_truth FROM '$work/kafka_after_dump.csv' (FORMAT csv)" || failed "$label: loading kf_truth"
  wait_views "$label" kf_by_origin
  kafka_caught_up "$label"
  same kf_by_origin "$label, Kafka offsets carried ($(wc -l < "$work/kafka_after_dump.csv") messages since the dump)"
  got=$(psql_c "$ERRORS_SQL" 2>&1)
  [ "$got" = "$src_errors" ] && pass "$label: velostream.errors and kafka_stats dead letters carried" \
    || failed "$label: dead letters '$got', want '$src_errors'"

  # The paused stream: still paused, its rows still waiting, results as dumped.
  for v in $FL_VIEWS; do same "$v" "$label, restored while paused"; done
  got=$(psql_c "SELECT sum(backlog) FROM velostream.stats WHERE view = 'fl_by_origin'::regclass" 2>&1)
  [ "$got" = "$waiting" ] && pass "$label: the $waiting rows committed to the paused stream wait in its logs" \
    || failed "$label: backlog of the paused stream '$got', want $waiting"
  stats_exact "$label, restored"
  if [ -n "$redump" ]; then
    out=$("$PGBIN/pg_dump" -h "$VS_DIR" -p "$VS_PORT" -U postgres -d postgres -Fc -f "$redump" 2>&1)
    rc=$?
    [ $rc = 0 ] && pass "$label: pg_dump -Fc of the restored database exits 0" || failed "$label: pg_dump -Fc: exit $rc: $out"
    chmod 644 "$redump"
  fi

  # A view created now must not count the rows committed before it (the
  # waiting ones); resume() counts those once in the dumped views.
  psql_c "CREATE TABLE fl_post (LIKE fl_truth);
          CREATE VIEW truth_fl_new AS $(printf "${Q[fl_new]}" fl_post);
          CREATE MATERIALIZED VIEW fl_new WITH (velostream.continuous) AS $(printf "${Q[fl_new]}" fl);" \
    || failed "$label: creating fl_new"
  psql_c "SELECT velostream.resume('fl')" >/dev/null || failed "$label: resume"
  wait_views "$label, resumed" $FL_VIEWS fl_new
  psql_c "INSERT INTO fl_truth TABLE fl_waiting"
  for v in $FL_VIEWS; do same "$v" "$label, resumed: the waiting rows counted once"; done
  n=$(psql_c "SELECT count(*) || ' groups, ' || coalesce(sum(n), 0) || ' rows' FROM fl_new" 2>&1)
  [ "$n" = "0 groups, 0 rows" ] && pass "$label: a view created after the restore counts none of the $waiting rows committed before it" \
    || failed "$label: fl_new, created after the restore, counted rows committed before it: $n"

  # Rows inserted and messages produced after the restore: counted once.
  psql_c "\\copy fl FROM '$work/local_$sfx.csv' (FORMAT csv)" || failed "$label: COPY after the restore"
  psql_c "\\copy fl_truth FROM '$work/local_$sfx.csv' (FORMAT csv)"
  psql_c "\\copy fl_post FROM '$work/local_$sfx.csv' (FORMAT csv)"
  produce < "$work/kafka_$sfx.csv" || failed "$label: producing after the restore"
  cat "$work/kafka_$sfx.csv" >> "$work/kafka_after_dump.csv"
  psql_c "\\copy kf_truth FROM '$work/kafka_$sfx.csv' (FORMAT csv)"
  wait_views "$label, after new rows" $FL_VIEWS fl_new kf_by_origin
  kafka_caught_up "$label, after new messages"
  for v in $FL_VIEWS fl_new kf_by_origin; do same "$v" "$label, rows after the restore"; done
  stats_exact "$label, rows after the restore"
  got=$(psql_c "SELECT paused FROM velostream.streams WHERE stream = 'fl'::regclass")
  [ "$got" = f ] && pass "$label: fl resumed" || failed "$label: fl paused = $got after resume"
  cluster_stop
}
restored "serial restore" "$SERIAL_DIR" "$SERIAL_PORT" "-j 1" j1 "$work/db.dump" "$work/again.dump"
restored "parallel restore" "$PARALLEL_DIR" "$PARALLEL_PORT" "-j 2" j2 "$work/db.dump"
# The serial restore's own dump, taken before it resumed the stream (its
# waiting rows were written by the restore, the views by the first cluster),
# restored section by section with the streams' workers running in between.
restored "restore of the restored database's dump, in sections" "$REDUMP_DIR" "$REDUMP_PORT" sections again "$work/again.dump"

###############################################################################
# 3. ALTER EXTENSION velostream UPDATE, from 0.1 and from 0.2.
cluster_start "$DDL_DIR" "$DDL_PORT" "velostream.flush_interval = 50"
workers() { pgrep -P "$(head -n 1 "$VS_DIR/data/postmaster.pid")" -f "velostream worker" | wc -l; }
UP_K="SELECT k, count(*) AS n, sum(v) AS total, avg(v) AS avg_v, min(v) AS min_v, max(v) AS max_v FROM %s GROUP BY k"
UP_V="SELECT v, count(*) AS n, avg(k) AS avg_k FROM %s GROUP BY v"
# up_rows N: N more rows into stream up and its truth table
up_rows() {
  psql_c "INSERT INTO up SELECT g % 37, g % 11 FROM generate_series(1, $1) g;
          INSERT INTO up_truth SELECT g % 37, g % 11 FROM generate_series(1, $1) g;"
}
# up_exact WHAT: both views of stream up caught up and equal to their batch queries
up_exact() {
  wait_views "$1" up_by_k up_by_v
  same up_by_k "$1"
  same up_by_v "$1"
}
for from in 0.1 0.2 0.6; do
  psql_c "SET client_min_messages = warning; DROP EXTENSION IF EXISTS velostream CASCADE;
          DROP TABLE IF EXISTS up_truth CASCADE;"
  for _ in $(seq 1 50); do [ "$(workers)" = 0 ] && break; sleep 0.2; done  # the dropped streams' workers exit
  psql_c "CREATE EXTENSION velostream VERSION '$from';
CREATE TABLE up_truth (k int, v int);
CREATE FOREIGN TABLE up (k int, v int) SERVER velostream OPTIONS (partitions '2');
CREATE MATERIALIZED VIEW up_by_k WITH (velostream.continuous) AS $(printf "$UP_K" up);
CREATE MATERIALIZED VIEW up_by_v WITH (velostream.continuous) AS $(printf "$UP_V" up);
CREATE VIEW truth_up_by_k AS $(printf "$UP_K" up_truth);
CREATE VIEW truth_up_by_v AS $(printf "$UP_V" up_truth);" || failed "on $from: creating a stream and views"
  up_rows 20000 || failed "on $from: INSERT"
  sleep 1.5
  got="$(workers) workers, $(psql_c "SELECT (SELECT count(*) FROM up_by_k) + (SELECT count(*) FROM up_by_v)") result rows"
  [ "$got" = "0 workers, 0 result rows" ] && pass "on the $from catalog no worker runs, rows wait" \
    || failed "on the $from catalog: $got (want 0 workers, 0 result rows)"
  psql_c "ALTER EXTENSION velostream UPDATE" || failed "ALTER EXTENSION velostream UPDATE from $from"
  got=$(psql_c "SELECT extversion FROM pg_extension WHERE extname = 'velostream'")
  [ "$got" = 0.7 ] && pass "ALTER EXTENSION velostream UPDATE from $from: version 0.7" \
    || failed "ALTER EXTENSION velostream UPDATE from $from: version '$got'"
  up_exact "updated from $from: the 20000 waiting rows"
  up_rows 5000
  up_exact "updated from $from: 5000 rows after the update"
done

###############################################################################
# 4. DROPs never reach the extension. Stream up (from the 0.2 update) goes on.
# tables_of STREAM: oids and names of the stream's logs and its views' state tables
tables_of() {
  psql_c "SELECT string_agg(c.oid || ':' || c.relname, ' ' ORDER BY c.relname) FROM pg_class c
           WHERE c.relnamespace = 'velostream'::regnamespace
             AND (c.oid IN (SELECT log_table FROM velostream.stream_partitions WHERE stream = '$1'::regclass)
                  OR c.oid IN (SELECT state_table FROM velostream.views WHERE stream = '$1'::regclass)
                  OR c.relname ~ ('^stream_' || '$1'::regclass::oid || '_p[0-9]+$')
                  OR c.relname IN (SELECT 'view_' || view::oid || '_state' FROM velostream.views
                                    WHERE stream = '$1'::regclass))"
}
# gone WHAT TABLES VIEWS...: after a DROP, none of TABLES (oid:name ...) is left,
# nor VIEWS; the extension is installed; no table of schema velostream is
# left without its stream or view; stream up still counts exactly.
gone() {
  local what=$1 tables=$2 t left="" orphans got
  shift 2
  for t in $tables; do
    [ "$(psql_c "SELECT count(*) FROM pg_class WHERE oid = ${t%%:*} OR (relname = '${t#*:}' AND relnamespace = 'velostream'::regnamespace)")" = 0 ] \
      || left="$left ${t#*:}"
  done
  for t in "$@"; do [ -z "$(psql_c "SELECT to_regclass('$t')")" ] || left="$left $t"; done
  [ -z "$left" ] && pass "$what: removed the stream's and views' tables ($(echo "$tables" | wc -w) in schema velostream)" \
    || failed "$what: left behind:$left"
  got=$(psql_c "SELECT count(*) FROM pg_extension WHERE extname = 'velostream'")
  [ "$got" = 1 ] && pass "$what: extension velostream still installed" || failed "$what: extension velostream dropped"
  got=$(psql_c "SELECT (SELECT string_agg(stream::text, ' ') FROM velostream.streams) || ' / ' ||
                       (SELECT string_agg(view::text, ' ' ORDER BY view::text) FROM velostream.views)" 2>&1)
  [ "$got" = "up / up_by_k up_by_v" ] && pass "$what: the catalog lists only the other stream and its views" \
    || failed "$what: catalog after the DROP: $got (want 'up / up_by_k up_by_v')"
  no_orphans "$what"
  up_rows 1000
  up_exact "$what: the other stream"
}
DK="SELECT k, count(*) AS n, avg(v) AS avg_v FROM %s GROUP BY k"
DV="SELECT v, count(*) AS n, avg(k) AS avg_k, sum(k) AS total FROM %s GROUP BY v"

psql_c "CREATE FOREIGN TABLE d1 (k int, v int) SERVER velostream OPTIONS (partitions '3');
CREATE MATERIALIZED VIEW d1_by_k WITH (velostream.continuous) AS $(printf "$DK" d1);
CREATE MATERIALIZED VIEW d1_by_v WITH (velostream.continuous) AS $(printf "$DV" d1);
INSERT INTO d1 SELECT g % 23, g % 7 FROM generate_series(1, 5000) g;" || failed "creating d1"
wait_views "d1" d1_by_k d1_by_v
tables=$(tables_of d1)
echo "(d1's tables: $tables)"
[ "$(echo "$tables" | grep -oE ':stream_[0-9]+_p[0-9]+' | wc -l)" = 3 ] && pass "d1: 3 partition logs before the DROP" \
  || failed "d1: logs before the DROP: $tables"
psql_c "DROP FOREIGN TABLE d1 CASCADE" || failed "DROP FOREIGN TABLE d1 CASCADE"
gone "DROP FOREIGN TABLE d1 CASCADE" "$tables" d1 d1_by_k d1_by_v

psql_c "CREATE SCHEMA dx;
CREATE FOREIGN TABLE dx.s (k int, v int) SERVER velostream OPTIONS (partitions '2');
CREATE MATERIALIZED VIEW dx.by_k WITH (velostream.continuous) AS $(printf "$DK" dx.s);
CREATE MATERIALIZED VIEW dx.by_v WITH (velostream.continuous) AS $(printf "$DV" dx.s);
CREATE MATERIALIZED VIEW public.dx_total WITH (velostream.continuous) AS SELECT count(*) AS n FROM dx.s;
INSERT INTO dx.s SELECT g % 23, g % 7 FROM generate_series(1, 5000) g;" || failed "creating schema dx"
wait_views "dx" dx.by_k dx.by_v dx_total
tables=$(tables_of dx.s)
echo "(dx.s's tables: $tables)"
psql_c "SET client_min_messages = warning; DROP SCHEMA dx CASCADE" || failed "DROP SCHEMA dx CASCADE"
gone "DROP SCHEMA dx CASCADE" "$tables" dx.s dx.by_k dx.by_v public.dx_total

psql_c "CREATE ROLE dr_user LOGIN;
CREATE SCHEMA dr_s;
GRANT USAGE, CREATE ON SCHEMA dr_s TO dr_user;
GRANT USAGE ON FOREIGN SERVER velostream TO dr_user;" || failed "creating role dr_user"
psql_as dr_user "CREATE FOREIGN TABLE dr_s.rs (k int, v int) SERVER velostream OPTIONS (partitions '2');
CREATE MATERIALIZED VIEW dr_s.rs_by_k WITH (velostream.continuous) AS $(printf "$DK" dr_s.rs);
CREATE MATERIALIZED VIEW dr_s.rs_by_v WITH (velostream.continuous) AS $(printf "$DV" dr_s.rs);
INSERT INTO dr_s.rs SELECT g % 23, g % 7 FROM generate_series(1, 5000) g;" || failed "dr_user: creating a stream and views"
got=$(psql_as dr_user "SELECT velostream.wait('dr_s.rs_by_k'), velostream.wait('dr_s.rs_by_v')" 2>&1)
got="$got $(psql_c "SELECT sum(n) FROM dr_s.rs_by_k")"
[ "$got" = "t|t 5000" ] && pass "dr_user's stream and views count its rows" || failed "dr_user's views: $got"
tables=$(tables_of dr_s.rs)
echo "(dr_s.rs's tables: $tables)"
psql_c "DROP OWNED BY dr_user" || failed "DROP OWNED BY dr_user"
gone "DROP OWNED BY dr_user" "$tables" dr_s.rs dr_s.rs_by_k dr_s.rs_by_v
out=$(psql_c "DROP ROLE dr_user" 2>&1) && pass "DROP ROLE dr_user after DROP OWNED: nothing left that it owns" \
  || failed "DROP ROLE dr_user after DROP OWNED: $out"

###############################################################################
# 5. ALTER EXTENSION velostream UPDATE from 0.4 with a two-worker Kafka stream: 0.4 gave Kafka streams no
#     partition logs (removed here from a stream the current library created)
#     and their views shared their groups. The update creates the logs; the
#     view goes on sharing, the waiting messages are counted once; a first
#     view created later chooses the routing column and owns its groups.
upk_produce() {  # upk_produce FROM TO: messages "k,v" for g in FROM..TO, and the same rows in upk_truth
  seq "$1" "$2" | awk '{print $1 % 37 "," $1 % 11}' > "$work/upk.csv"
  "$root/build/velostream-kafka-produce" --brokers "$BS" --topic upk < "$work/upk.csv" || failed "producing to upk"
  psql_c "INSERT INTO upk_truth SELECT g % 37, g % 11 FROM generate_series($1, $2) g"
}
psql_c "SET client_min_messages = warning; DROP EXTENSION IF EXISTS velostream CASCADE;"
for _ in $(seq 1 50); do [ "$(workers)" = 0 ] && break; sleep 0.2; done
psql_c "CREATE EXTENSION velostream VERSION '0.4';
CREATE SERVER kafka_up FOREIGN DATA WRAPPER velostream OPTIONS (brokers '$BS');
CREATE TABLE upk_truth (k int, v int);
CREATE FOREIGN TABLE upk (k int, v int) SERVER kafka_up
  OPTIONS (topic 'upk', format 'csv', start_offset 'earliest', partitions '2');
DO \$\$
DECLARE t regclass;
BEGIN
  FOR t IN SELECT log_table FROM velostream.stream_partitions WHERE stream = 'upk'::regclass LOOP
    UPDATE velostream.stream_partitions SET log_table = NULL WHERE log_table = t;
    EXECUTE format('ALTER EXTENSION velostream DROP TABLE %s', t);
    EXECUTE format('DROP TABLE %s', t);
  END LOOP;
END \$\$;
CREATE MATERIALIZED VIEW upk_by_k WITH (velostream.continuous) AS $(printf "$UP_K" upk);
CREATE VIEW truth_upk_by_k AS $(printf "$UP_K" upk_truth);" || failed "on 0.4: a Kafka stream and its view"
upk_produce 1 3000
got=$(psql_c "SELECT count(*) FILTER (WHERE log_table IS NULL) || ' logs missing, owned ' ||
                     (SELECT owned FROM velostream.views WHERE view = 'upk_by_k'::regclass)
              FROM velostream.stream_partitions WHERE stream = 'upk'::regclass")
[ "$got" = "2 logs missing, owned false" ] && pass "on 0.4: the Kafka stream has no logs, its view shares its groups" \
  || failed "on 0.4: $got"
psql_c "ALTER EXTENSION velostream UPDATE" || failed "ALTER EXTENSION velostream UPDATE from 0.4"
got=$(psql_c "SELECT extversion FROM pg_extension WHERE extname = 'velostream'") || true
got="$got: $(psql_c "SELECT count(*) FILTER (WHERE log_table IS NOT NULL) || ' logs, owned ' ||
                            (SELECT owned FROM velostream.views WHERE view = 'upk_by_k'::regclass) || ', route ' ||
                            (SELECT coalesce(route_column::text, 'none') FROM velostream.streams
                              WHERE stream = 'upk'::regclass)
                     FROM velostream.stream_partitions WHERE stream = 'upk'::regclass")"
[ "$got" = "0.7: 2 logs, owned false, route none" ] \
  && pass "UPDATE from 0.4: the Kafka stream got its logs, its view still shares ($got)" || failed "UPDATE from 0.4: $got"
upk_caught_up() {  # upk_caught_up WHAT VIEW
  poll "SELECT coalesce(sum(n), 0) FROM $2" "$(psql_c "SELECT count(*) FROM upk_truth")" 60 >/dev/null
  same "$2" "$1"
}
upk_caught_up "updated from 0.4: the 3000 waiting messages" upk_by_k
upk_produce 3001 5000
upk_caught_up "updated from 0.4: 2000 messages after the update" upk_by_k
# The stream's next first view chooses the routing column and owns its groups.
psql_c "DROP MATERIALIZED VIEW upk_by_k; DROP VIEW truth_upk_by_k; TRUNCATE upk_truth;
CREATE MATERIALIZED VIEW upk_by_v WITH (velostream.continuous) AS $(printf "$UP_V" upk);
CREATE VIEW truth_upk_by_v AS $(printf "$UP_V" upk_truth);" || failed "updated from 0.4: a new first view"
got=$(psql_c "SELECT owned || ', route ' || (SELECT attname FROM pg_attribute a JOIN velostream.streams s
                ON a.attrelid = s.stream AND a.attnum = s.route_column WHERE s.stream = 'upk'::regclass)
              FROM velostream.views WHERE view = 'upk_by_v'::regclass")
[ "$got" = "true, route v" ] && pass "updated from 0.4: a new first view routes the Kafka stream and owns its groups" \
  || failed "updated from 0.4: new first view: $got"
upk_produce 5001 9000
upk_caught_up "updated from 0.4: the new view counts the 4000 messages produced after it" upk_by_v

echo "(all checks done after ${SECONDS}s)"
if [ $nfail -gt 0 ]; then
  for d in "$SRC_DIR" "$SERIAL_DIR" "$PARALLEL_DIR" "$REDUMP_DIR" "$DDL_DIR"; do
    [ -f "$d/server.log" ] || continue
    echo "--- $d/server.log: $(grep -c 'ERROR' "$d/server.log") ERROR lines, the first 5:"
    grep -m 5 'ERROR' "$d/server.log"
  done
fi
echo "$npass passed, $nfail failed"
[ $nfail = 0 ]
