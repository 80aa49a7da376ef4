#!/usr/bin/env bash
# Bounded state (issue 11): an owned view without windows keeps at most
# velostream.state_memory of groups in its worker; the least recently
# updated ones are evicted to its state table (one row per group, by key) and
# read back when their key reappears.
#  1. 400,000 distinct keys on two partitions with state_memory = 1MB (the
#     least): groups are evicted (state table rows with a key), and the view
#     equals its batch query.
#  2. The same keys again, in another order, with a worker killed (SIGKILL)
#     in the middle: every evicted group comes back with its state (counts 2,
#     sums doubled), nothing lost or counted twice.
#  3. Restart with the default budget: the view is unchanged and keeps
#     counting (replay reads the changelog, not the evicted rows).
#  4. pg_dump -Fc, restored into a fresh cluster with a 1MB budget: the
#     evicted groups travel with their keys, and every key once more is
#     counted onto them.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/test/cluster.sh"
work=$(mktemp -d /tmp/velostream-bounded.XXXXXX)
chmod 755 "$work"
trap 'cluster_stop; rm -rf "$work"' EXIT
cluster_start /tmp/velostream-bounded-pg 55449 "velostream.flush_interval = 50" "velostream.state_memory = '1MB'"
source "$root/test/checks.sh"
psql_c "CREATE EXTENSION velostream;
CREATE FOREIGN TABLE s (k int, v int, name text) SERVER velostream OPTIONS (partitions '2');
CREATE MATERIALIZED VIEW by_k WITH (velostream.continuous) AS
  SELECT k, count(*) AS n, sum(v) AS total, avg(v) AS mean, max(name) AS last_name FROM s GROUP BY k;
CREATE TABLE truth (k int, v int, name text);
CREATE VIEW oracle AS SELECT k, count(*) AS n, sum(v) AS total, avg(v) AS mean, max(name) AS last_name FROM truth GROUP BY k;" \
  || failed "creating the stream and view"
state=$(psql_c "SELECT state_table FROM velostream.views WHERE view = 'by_k'::regclass")

# 1. 400,000 keys, in 8 transactions
for i in $(seq 0 7); do
  psql_c "INSERT INTO s SELECT g, g % 97, 'n' || (g % 1000) FROM generate_series($i * 50000, $i * 50000 + 49999) g;
          INSERT INTO truth SELECT g, g % 97, 'n' || (g % 1000) FROM generate_series($i * 50000, $i * 50000 + 49999) g;"
done
wait_view by_k '180 s'
got=$(psql_c "SELECT count(*) FROM $state WHERE key IS NOT NULL")
[ "$got" -gt 100000 ] && pass "state_memory = 1MB: $got groups evicted to $state" || failed "evicted groups: $got"
same by_k oracle "400,000 keys, 1MB of state per worker"

# 2. the same keys again, reversed, with a worker killed in the middle
for i in $(seq 7 -1 0); do
  psql_c "INSERT INTO s SELECT g, g % 89, 'm' || (g % 777) FROM generate_series($i * 50000, $i * 50000 + 49999) g;
          INSERT INTO truth SELECT g, g % 89, 'm' || (g % 777) FROM generate_series($i * 50000, $i * 50000 + 49999) g;"
  if [ "$i" = 4 ]; then
    kill_worker
  fi
done
wait_view by_k '180 s'
same by_k oracle "every key again, a worker killed: evicted groups came back"
got=$(psql_c "SELECT (SELECT count(*) FROM by_k WHERE n <> 2), (SELECT sum(events_in) FROM velostream.stats WHERE view = 'by_k'::regclass)")
[ "$got" = "0|800000" ] && pass "every group counted twice, 800,000 rows read once" || failed "n <> 2 | events_in = $got"

# 3. restart with the default budget
psql_c "ALTER SYSTEM SET velostream.state_memory = '256MB'"
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$VS_DIR/data" -m fast -w restart -l "$VS_DIR/server.log" >/dev/null || failed "restart"
psql_c "INSERT INTO s SELECT g, 1, 'z' FROM generate_series(0, 999) g; INSERT INTO truth SELECT g, 1, 'z' FROM generate_series(0, 999) g;"
wait_view by_k '180 s'
same by_k oracle "restarted: replay and evicted groups"

# 4. dump and restore
evicted=$(psql_c "SELECT count(*) FROM $state WHERE key IS NOT NULL")
"$PGBIN/pg_dump" -h "$VS_DIR" -p "$VS_PORT" -U postgres -d postgres -Fc -f "$work/db.dump" || failed "pg_dump"
chmod 644 "$work/db.dump"
cluster_stop
cluster_start /tmp/velostream-bounded-pg2 55451 "velostream.flush_interval = 50" "velostream.state_memory = '1MB'"
out=$("$PGBIN/pg_restore" -h "$VS_DIR" -p "$VS_PORT" -U postgres -d postgres "$work/db.dump" 2>&1) \
  && ! echo "$out" | grep -qi error && pass "pg_restore of a view with $evicted evicted groups" || failed "pg_restore: $out"
state=$(psql_c "SELECT state_table FROM velostream.views WHERE view = 'by_k'::regclass")
got=$(psql_c "SELECT count(*) FROM $state WHERE key IS NOT NULL")
[ "$got" = "$evicted" ] && pass "restored: $got evicted groups with their keys" || failed "restored evicted groups: $got (want $evicted)"
psql_c "INSERT INTO s SELECT g, 3, 'r' FROM generate_series(0, 399999) g; INSERT INTO truth SELECT g, 3, 'r' FROM generate_series(0, 399999) g;"
wait_view by_k '180 s'
same by_k oracle "restored, every key once more"

echo "$npass passed, $nfail failed"
[ $nfail = 0 ]
