#!/usr/bin/env bash
# Bounded state (issue 11): a view with STATE_KEYS (default 10,000,000)
# distinct keys, GROUP BY k with count, sum and avg, on a one-partition stream
# (one worker), fed in INSERTs of 1,000,000 rows; the worker's private memory
# (RssAnon of /proc/PID/status: its heap, not the shared buffers it touched)
# before the rows, sampled every 0.2 s for its peak, and at the end, and the
# time until the view has counted every row. Once with
# velostream.state_memory = STATE_BUDGET (default 64MB) and once, the
# baseline of the same run, with a budget the state never reaches (8GB).
#   bash bench/state_memory_bench.sh     (as root; prints a markdown table)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
keys=${STATE_KEYS:-10000000}
budget=${STATE_BUDGET:-64MB}
source "$root/test/cluster.sh"
make -C "$root" -s -j2 >/dev/null && make -C "$root" -s install >/dev/null
trap cluster_stop EXIT
cluster_start /tmp/velostream-statemem 55457 "shared_buffers = '1GB'" "max_wal_size = '8GB'" \
  "velostream.flush_interval = 200"
psql_c "CREATE EXTENSION velostream"
rss_kb() { awk '/^RssAnon:/ {print $2}' "/proc/$1/status"; }
echo "| velostream.state_memory | keys | private MB before | private MB peak | private MB at the end | peak - before | groups evicted | seconds | vs baseline (peak - before) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
base=""
for b in 8GB "$budget"; do
  psql_c "ALTER SYSTEM SET velostream.state_memory = '$b'" >/dev/null && psql_c "SELECT pg_reload_conf()" >/dev/null && sleep 1
  name=b_$(echo "$b" | tr -cd 'a-zA-Z0-9')
  psql_c "CREATE FOREIGN TABLE $name (k bigint, v int) SERVER velostream OPTIONS (partitions '1');
    CREATE MATERIALIZED VIEW v_$name WITH (velostream.continuous) AS
      SELECT k, count(*) AS n, sum(v) AS total, avg(v) AS mean FROM $name GROUP BY k;"
  oid=$(psql_c "SELECT '$name'::regclass::oid")
  pid=""
  for _ in $(seq 1 100); do pid=$(pgrep -f "velostream worker $oid/0" | head -n 1 || true); [ -n "$pid" ] && break; sleep 0.1; done
  sleep 2
  before=$(rss_kb "$pid")
  peak=0
  ( while kill -0 "$pid" 2>/dev/null; do r=$(rss_kb "$pid" 2>/dev/null || echo 0); echo "$r"; sleep 0.2; done ) > "/tmp/statemem.$name" &
  sampler=$!
  start=$(date +%s.%N)
  for i in $(seq 0 $(( (keys + 999999) / 1000000 - 1 ))); do
    psql_c "INSERT INTO $name SELECT i, (i * 7919) % 1000 FROM generate_series($i::bigint * 1000000 + 1, least(($i + 1)::bigint * 1000000, $keys)) i"
  done
  [ "$(psql_c "SELECT velostream.wait('v_$name', '3600 s')")" = t ] || { echo "v_$name did not catch up" >&2; exit 1; }
  end=$(date +%s.%N)
  sleep 1
  last=$(rss_kb "$pid")
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  peak=$(sort -n "/tmp/statemem.$name" | tail -n 1)
  [ "$last" -gt "$peak" ] && peak=$last
  [ "$(psql_c "SELECT count(*) FROM v_$name")" = "$keys" ] || { echo "v_$name has the wrong group count" >&2; exit 1; }
  state=$(psql_c "SELECT state_table FROM velostream.views WHERE view = 'v_$name'::regclass")
  evicted=$(psql_c "SELECT count(*) FROM $state WHERE key IS NOT NULL")
  grown=$(( peak - before ))
  [ -z "$base" ] && base=$grown
  echo "| $b | $keys | $(( before / 1024 )) | $(( peak / 1024 )) | $(( last / 1024 )) | $(( grown / 1024 )) | $evicted | $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.0f", b - a}') | $(awk -v a="$grown" -v b="$base" 'BEGIN {printf "%.2f", a / b}')x |"
  psql_c "SET client_min_messages = warning; DROP FOREIGN TABLE $name CASCADE"
  rm -f "/tmp/statemem.$name"
done
