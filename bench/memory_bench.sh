#!/usr/bin/env bash
# Worker memory per live group (issue 10): a one-partition stream (one worker)
# with one owned view GROUP BY k, fed MEMORY_GROUPS (default 1,000,000) distinct keys
# in one INSERT; the worker's private memory (RssAnon of /proc/PID/status: its
# heap, not the shared buffers it touched, which VmRSS also counts) before the
# rows and after the view has counted them, divided by the groups.
# One view per aggregate list, each on its own stream and worker, so each
# figure is that view's alone; beside the baseline of a view with count(*)
# only, in the same run.
#   bash bench/memory_bench.sh     (as root; prints a markdown table)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
groups=${MEMORY_GROUPS:-1000000}
source "$root/test/cluster.sh"
make -C "$root" -s -j2 >/dev/null && make -C "$root" -s install >/dev/null
trap cluster_stop EXIT
cluster_start /tmp/velostream-mem 55456 "shared_buffers = '1GB'" "max_wal_size = '4GB'"
psql_c "CREATE EXTENSION velostream"
variants=(
  "count|count(*) AS n"
  "count_sum_avg|count(*) AS n, sum(v) AS total, avg(v) AS mean"
  "min_max|min(v) AS lo, max(v) AS hi"
  "numeric_sum|sum(v::numeric) AS total"
  "text_max|max(t) AS last_t"
  "stddev|stddev_samp(v) AS sd"
  "distinct|count(DISTINCT v % 10) AS kinds"
)
rss_kb() { awk '/^RssAnon:/ {print $2}' "/proc/$1/status"; }
worker_of() {  # the pid of stream $1's worker (its process title names the stream's oid)
  local oid
  oid=$(psql_c "SELECT '$1'::regclass::oid")
  for _ in $(seq 1 100); do
    pid=$(pgrep -f "velostream worker $oid/0" | head -n 1 || true)
    [ -n "$pid" ] && { echo "$pid"; return; }
    sleep 0.1
  done
  echo "no worker for $1" >&2; exit 1
}
echo "| view (GROUP BY k over $groups distinct keys, one worker) | private MB before | private MB after | bytes per group | vs count(*) |"
echo "|---|---:|---:|---:|---:|"
base=""
for v in "${variants[@]}"; do
  IFS='|' read -r name aggs <<< "$v"
  psql_c "CREATE FOREIGN TABLE m_$name (k bigint, v int, t text) SERVER velostream OPTIONS (partitions '1');
    CREATE MATERIALIZED VIEW mv_$name WITH (velostream.continuous) AS SELECT k, $aggs FROM m_$name GROUP BY k;"
  pid=$(worker_of "m_$name")
  sleep 2
  before=$(rss_kb "$pid")
  psql_c "INSERT INTO m_$name SELECT i, (i::bigint * 7919) % 1000, 'value ' || (i % 5000) FROM generate_series(1, $groups) i"
  [ "$(psql_c "SELECT velostream.wait('mv_$name', '600 s')")" = t ] || { echo "mv_$name did not catch up" >&2; exit 1; }
  [ "$(psql_c "SELECT count(*) FROM mv_$name")" = "$groups" ] || { echo "mv_$name has the wrong group count" >&2; exit 1; }
  sleep 1
  after=$(rss_kb "$pid")
  per=$(( (after - before) * 1024 / groups ))
  [ -z "$base" ] && base=$per
  echo "| $aggs | $(( before / 1024 )) | $(( after / 1024 )) | $per | $(awk -v a="$per" -v b="$base" 'BEGIN {printf "%.2f", a / b}')x |"
  psql_c "SET client_min_messages = warning; DROP FOREIGN TABLE m_$name CASCADE"
done
