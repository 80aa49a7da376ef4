#!/usr/bin/env bash
# Freshness: milliseconds from COMMIT of a one-row INSERT into a stream until
# a continuous view shows it, over 50 samples; beside the baseline of the same
# INSERT + COMMIT + read-back on a plain table, in the same run.
#   bash bench/latency_bench.sh          (as root; prints a markdown table)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/test/cluster.sh"
trap cluster_stop EXIT
make -C "$root" -s -j2 >/dev/null && make -C "$root" -s install >/dev/null
cluster_start /tmp/velostream-latency 55452
psql_c "CREATE EXTENSION velostream;
  CREATE FOREIGN TABLE s (k int, v int) SERVER velostream;
  CREATE MATERIALIZED VIEW sv WITH (velostream.continuous) AS SELECT k, count(*) AS n FROM s GROUP BY k;
  CREATE TABLE plain (k int, v int);
  CREATE TABLE samples (kind text, ms float8);
  CREATE PROCEDURE measure(samples int) LANGUAGE plpgsql AS \$\$
  DECLARE t0 timestamptz; seen bigint;
  BEGIN
    FOR i IN 1..samples LOOP
      INSERT INTO s VALUES (1, i); COMMIT;
      t0 := clock_timestamp();
      LOOP
        SELECT n INTO seen FROM sv WHERE k = 1;
        EXIT WHEN seen = i;
        PERFORM pg_sleep(0.001);
      END LOOP;
      INSERT INTO samples VALUES ('stream', extract(epoch FROM clock_timestamp() - t0) * 1000); COMMIT;
      t0 := clock_timestamp();
      INSERT INTO plain VALUES (1, i); COMMIT;
      SELECT count(*) INTO seen FROM plain WHERE k = 1;
      INSERT INTO samples VALUES ('plain', extract(epoch FROM clock_timestamp() - t0) * 1000); COMMIT;
    END LOOP;
  END \$\$;"
sleep 2
psql_c "CALL measure(50)"
echo "| measure (50 samples, flush_interval 100ms) | median ms | p90 ms | max ms |"
echo "|---|---:|---:|---:|"
psql_c "SELECT '| ' || CASE kind WHEN 'plain' THEN 'baseline: INSERT + COMMIT + read back, plain table' ELSE 'COMMIT of a stream INSERT until the view shows it' END
        || ' | ' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1)
        || ' | ' || round(percentile_cont(0.9) WITHIN GROUP (ORDER BY ms)::numeric, 1)
        || ' | ' || round(max(ms)::numeric, 1) || ' |' FROM samples GROUP BY kind ORDER BY kind"
