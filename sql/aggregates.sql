-- Any aggregate with a combine function runs through PostgreSQL's own
-- aggregate protocol (transition, combine, serialise, final functions), and
-- equals the same SELECT run as a batch query over the same rows.
CREATE EXTENSION velostream;
CREATE EXTENSION hll;
CREATE EXTENSION tdigest;
SET TIME ZONE 'UTC';
CREATE FOREIGN TABLE fl (ts timestamptz, delay int, distance int, origin text, destination text, price numeric,
                         f4 real) SERVER velostream OPTIONS (partitions '2');
CREATE TABLE fl_plain (ts timestamptz, delay int, distance int, origin text, destination text, price numeric,
                       f4 real);

CREATE MATERIALIZED VIEW pg_aggs WITH (velostream.continuous) AS
  SELECT origin, count(*) AS n,
         stddev_samp(delay) AS sd_int, var_pop(price) AS vp_num, stddev_pop(f4) AS sd_f4,
         variance(distance::float8) AS var_f8, sum(f4) AS sum_f4, avg(f4) AS avg_f4,
         bool_and(delay > 0) AS all_late, bool_or(delay > 100) AS any_long, every(distance < 3000) AS all_short,
         min(destination) AS first_dest, max(destination COLLATE "C") AS last_dest_c,
         sum(delay * 2) AS double_delay, max(date_bin('15 minutes', ts, timestamptz '2000-01-01 00:00+00')) AS last_shifted,
         bit_or(distance) AS bits, covar_pop(delay, distance) AS covar, corr(delay, distance) AS r
  FROM fl GROUP BY origin;
CREATE MATERIALIZED VIEW sketches WITH (velostream.continuous) AS
  SELECT origin, hll_add_agg(hll_hash_text(destination)) AS dests, tdigest(delay, 100) AS delays
  FROM fl GROUP BY origin;
CREATE VIEW oracle_pg_aggs AS
  SELECT origin, count(*) AS n,
         stddev_samp(delay) AS sd_int, var_pop(price) AS vp_num, stddev_pop(f4) AS sd_f4,
         variance(distance::float8) AS var_f8, sum(f4) AS sum_f4, avg(f4) AS avg_f4,
         bool_and(delay > 0) AS all_late, bool_or(delay > 100) AS any_long, every(distance < 3000) AS all_short,
         min(destination) AS first_dest, max(destination COLLATE "C") AS last_dest_c,
         sum(delay * 2) AS double_delay, max(date_bin('15 minutes', ts, timestamptz '2000-01-01 00:00+00')) AS last_shifted,
         bit_or(distance) AS bits, covar_pop(delay, distance) AS covar, corr(delay, distance) AS r
  FROM fl_plain GROUP BY origin;
\d pg_aggs
-- The same aggregates in a view whose groups span partitions (fl routes rows
-- by origin): partial states merged by the combine functions in its state table.
CREATE MATERIALIZED VIEW pg_aggs_shared WITH (velostream.continuous) AS
  SELECT destination AS origin, count(*) AS n,
         stddev_samp(delay) AS sd_int, var_pop(price) AS vp_num, stddev_pop(f4) AS sd_f4,
         variance(distance::float8) AS var_f8, sum(f4) AS sum_f4, avg(f4) AS avg_f4,
         bool_and(delay > 0) AS all_late, bool_or(delay > 100) AS any_long, every(distance < 3000) AS all_short,
         min(destination) AS first_dest, max(destination COLLATE "C") AS last_dest_c,
         sum(delay * 2) AS double_delay, max(date_bin('15 minutes', ts, timestamptz '2000-01-01 00:00+00')) AS last_shifted,
         bit_or(distance) AS bits, covar_pop(delay, distance) AS covar, corr(delay, distance) AS r
  FROM fl GROUP BY destination;
CREATE VIEW oracle_pg_aggs_shared AS
  SELECT destination AS origin, count(*) AS n,
         stddev_samp(delay) AS sd_int, var_pop(price) AS vp_num, stddev_pop(f4) AS sd_f4,
         variance(distance::float8) AS var_f8, sum(f4) AS sum_f4, avg(f4) AS avg_f4,
         bool_and(delay > 0) AS all_late, bool_or(delay > 100) AS any_long, every(distance < 3000) AS all_short,
         min(destination) AS first_dest, max(destination COLLATE "C") AS last_dest_c,
         sum(delay * 2) AS double_delay, max(date_bin('15 minutes', ts, timestamptz '2000-01-01 00:00+00')) AS last_shifted,
         bit_or(distance) AS bits, covar_pop(delay, distance) AS covar, corr(delay, distance) AS r
  FROM fl_plain GROUP BY destination;
-- FILTER (WHERE ...): the engine's predicate where it can evaluate it, the
-- executor otherwise; owned (by origin) and shared (by destination).
CREATE MATERIALIZED VIEW filtered WITH (velostream.continuous) AS
  SELECT origin, count(*) AS n, count(*) FILTER (WHERE delay > 15) AS late,
         sum(delay) FILTER (WHERE origin IN ('ATL', 'ORD')) AS hub_delay,
         avg(distance) FILTER (WHERE coalesce(delay, 0) > 10) AS late_avg_distance,
         stddev_samp(delay) FILTER (WHERE delay > 0) AS sd_late,
         count(*) FILTER (WHERE destination LIKE 'S%') AS to_s,
         max(price) FILTER (WHERE f4 IS NULL) AS max_price_no_f4
  FROM fl GROUP BY origin;
CREATE MATERIALIZED VIEW filtered_shared WITH (velostream.continuous) AS
  SELECT destination, count(*) AS n, count(*) FILTER (WHERE delay > 15) AS late,
         sum(delay) FILTER (WHERE origin IN ('ATL', 'ORD')) AS hub_delay,
         avg(distance) FILTER (WHERE coalesce(delay, 0) > 10) AS late_avg_distance,
         stddev_samp(delay) FILTER (WHERE delay > 0) AS sd_late,
         count(*) FILTER (WHERE destination LIKE 'S%') AS to_s,
         max(price) FILTER (WHERE f4 IS NULL) AS max_price_no_f4
  FROM fl GROUP BY destination;
CREATE VIEW oracle_filtered AS
  SELECT origin, count(*) AS n, count(*) FILTER (WHERE delay > 15) AS late,
         sum(delay) FILTER (WHERE origin IN ('ATL', 'ORD')) AS hub_delay,
         avg(distance) FILTER (WHERE coalesce(delay, 0) > 10) AS late_avg_distance,
         stddev_samp(delay) FILTER (WHERE delay > 0) AS sd_late,
         count(*) FILTER (WHERE destination LIKE 'S%') AS to_s,
         max(price) FILTER (WHERE f4 IS NULL) AS max_price_no_f4
  FROM fl_plain GROUP BY origin;
CREATE VIEW oracle_filtered_shared AS
  SELECT destination, count(*) AS n, count(*) FILTER (WHERE delay > 15) AS late,
         sum(delay) FILTER (WHERE origin IN ('ATL', 'ORD')) AS hub_delay,
         avg(distance) FILTER (WHERE coalesce(delay, 0) > 10) AS late_avg_distance,
         stddev_samp(delay) FILTER (WHERE delay > 0) AS sd_late,
         count(*) FILTER (WHERE destination LIKE 'S%') AS to_s,
         max(price) FILTER (WHERE f4 IS NULL) AS max_price_no_f4
  FROM fl_plain GROUP BY destination;
-- agg(DISTINCT column): the group's set of values as its partial state.
CREATE MATERIALIZED VIEW distinct_by_origin WITH (velostream.continuous) AS
  SELECT origin, count(DISTINCT destination) AS dests, sum(DISTINCT delay) AS sum_distinct_delay,
         avg(DISTINCT price) AS avg_distinct_price, count(DISTINCT f4) AS f4s,
         stddev_samp(DISTINCT delay) AS sd_distinct, count(DISTINCT delay) FILTER (WHERE delay > 0) AS late_delays
  FROM fl GROUP BY origin;
CREATE MATERIALIZED VIEW distinct_by_dest WITH (velostream.continuous) AS
  SELECT destination, count(DISTINCT destination) AS dests, sum(DISTINCT delay) AS sum_distinct_delay,
         avg(DISTINCT price) AS avg_distinct_price, count(DISTINCT f4) AS f4s,
         stddev_samp(DISTINCT delay) AS sd_distinct, count(DISTINCT delay) FILTER (WHERE delay > 0) AS late_delays
  FROM fl GROUP BY destination;
CREATE VIEW oracle_distinct_by_origin AS
  SELECT origin, count(DISTINCT destination) AS dests, sum(DISTINCT delay) AS sum_distinct_delay,
         avg(DISTINCT price) AS avg_distinct_price, count(DISTINCT f4) AS f4s,
         stddev_samp(DISTINCT delay) AS sd_distinct, count(DISTINCT delay) FILTER (WHERE delay > 0) AS late_delays
  FROM fl_plain GROUP BY origin;
CREATE VIEW oracle_distinct_by_dest AS
  SELECT destination, count(DISTINCT destination) AS dests, sum(DISTINCT delay) AS sum_distinct_delay,
         avg(DISTINCT price) AS avg_distinct_price, count(DISTINCT f4) AS f4s,
         stddev_samp(DISTINCT delay) AS sd_distinct, count(DISTINCT delay) FILTER (WHERE delay > 0) AS late_delays
  FROM fl_plain GROUP BY destination;
CREATE MATERIALIZED VIEW v WITH (velostream.continuous) AS
  SELECT origin, count(DISTINCT destination::bytea) FROM fl GROUP BY origin;
\echo :LAST_ERROR_SQLSTATE
SELECT view, owned FROM velostream.views ORDER BY view::text;

-- Rows with NULLs in every column, in four transactions.
CREATE TEMP TABLE src AS
  SELECT i, timestamptz '2024-01-01' + i * interval '7 minutes' AS ts,
         CASE WHEN i % 11 = 0 THEN NULL ELSE (i * 37) % 240 - 30 END AS delay,
         CASE WHEN i % 13 = 0 THEN NULL ELSE 100 + (i * 53) % 2900 END AS distance,
         CASE WHEN i % 97 = 0 THEN NULL ELSE (ARRAY['ORD', 'ATL', 'DFW', 'LAX', 'Zürich'])[1 + i % 5] END AS origin,
         CASE WHEN i % 17 = 0 THEN NULL ELSE (ARRAY['SFO', 'sea', 'JFK', 'Ängelholm', 'bos', 'MIA'])[1 + (i * 7) % 6] END
           AS destination,
         CASE WHEN i % 19 = 0 THEN NULL ELSE round((i * 1.37) % 500, 2) END AS price,
         CASE WHEN i % 23 = 0 THEN NULL ELSE ((i * 3) % 1000) / 8.0 END::real AS f4
  FROM generate_series(1, 4000) i;
INSERT INTO fl SELECT ts, delay, distance, origin, destination, price, f4 FROM src WHERE i % 4 = 0;
INSERT INTO fl SELECT ts, delay, distance, origin, destination, price, f4 FROM src WHERE i % 4 = 1;
INSERT INTO fl SELECT ts, delay, distance, origin, destination, price, f4 FROM src WHERE i % 4 = 2;
INSERT INTO fl SELECT ts, delay, distance, origin, destination, price, f4 FROM src WHERE i % 4 = 3;
INSERT INTO fl_plain SELECT ts, delay, distance, origin, destination, price, f4 FROM src;
SELECT velostream.wait('pg_aggs'), velostream.wait('pg_aggs_shared'), velostream.wait('sketches'),
       velostream.wait('filtered'), velostream.wait('filtered_shared'),
       velostream.wait('distinct_by_origin'), velostream.wait('distinct_by_dest');

-- Exact columns are equal; float8 ones within 1e-9 relative, float4 sums
-- within 1e-6 (their rounding depends on the order rows are added in).
CREATE FUNCTION close(a float8, b float8, tol float8) RETURNS bool LANGUAGE sql IMMUTABLE
  AS $$ SELECT (a IS NULL AND b IS NULL) OR abs(a - b) <= tol * greatest(abs(a), abs(b), 1e-300) $$;
SELECT count(*) AS groups,
       count(*) FILTER (WHERE (v.n, v.sd_int, v.vp_num, v.all_late, v.any_long, v.all_short, v.first_dest,
                               v.last_dest_c, v.double_delay, v.last_shifted, v.bits)
                              IS NOT DISTINCT FROM
                              (o.n, o.sd_int, o.vp_num, o.all_late, o.any_long, o.all_short, o.first_dest,
                               o.last_dest_c, o.double_delay, o.last_shifted, o.bits)) AS exact_equal,
       count(*) FILTER (WHERE close(v.sd_f4, o.sd_f4, 1e-9) AND close(v.var_f8, o.var_f8, 1e-9)
                          AND close(v.sum_f4, o.sum_f4, 1e-6) AND close(v.avg_f4, o.avg_f4, 1e-9)
                          AND close(v.covar, o.covar, 1e-9) AND close(v.r, o.r, 1e-9)) AS floats_close
FROM pg_aggs v FULL JOIN oracle_pg_aggs o ON coalesce(v.origin, '-') = coalesce(o.origin, '-');
SELECT count(*) AS groups,
       count(*) FILTER (WHERE (v.n, v.sd_int, v.vp_num, v.all_late, v.any_long, v.all_short, v.first_dest,
                               v.last_dest_c, v.double_delay, v.last_shifted, v.bits)
                              IS NOT DISTINCT FROM
                              (o.n, o.sd_int, o.vp_num, o.all_late, o.any_long, o.all_short, o.first_dest,
                               o.last_dest_c, o.double_delay, o.last_shifted, o.bits)) AS exact_equal,
       count(*) FILTER (WHERE close(v.sd_f4, o.sd_f4, 1e-9) AND close(v.var_f8, o.var_f8, 1e-9)
                          AND close(v.sum_f4, o.sum_f4, 1e-6) AND close(v.avg_f4, o.avg_f4, 1e-9)
                          AND close(v.covar, o.covar, 1e-9) AND close(v.r, o.r, 1e-9)) AS floats_close
FROM pg_aggs_shared v FULL JOIN oracle_pg_aggs_shared o ON coalesce(v.origin, '-') = coalesce(o.origin, '-');
SELECT origin, n, sd_int, vp_num, all_late, any_long, all_short, first_dest, last_dest_c, double_delay, last_shifted,
       bits
FROM pg_aggs ORDER BY origin COLLATE "C";

-- FILTER results are exact (no floats in them but avg's numeric).
SELECT (SELECT count(*) FROM filtered) AS owned_groups,
       (SELECT count(*) FROM ((TABLE filtered EXCEPT TABLE oracle_filtered)
                              UNION ALL (TABLE oracle_filtered EXCEPT TABLE filtered)) d) AS owned_differences,
       (SELECT count(*) FROM filtered_shared) AS shared_groups,
       (SELECT count(*) FROM ((TABLE filtered_shared EXCEPT TABLE oracle_filtered_shared)
                              UNION ALL (TABLE oracle_filtered_shared EXCEPT TABLE filtered_shared)) d)
         AS shared_differences;
SELECT * FROM filtered ORDER BY origin COLLATE "C";
SELECT (SELECT count(*) FROM distinct_by_origin) AS owned_groups,
       (SELECT count(*) FROM ((TABLE distinct_by_origin EXCEPT TABLE oracle_distinct_by_origin)
                              UNION ALL (TABLE oracle_distinct_by_origin EXCEPT TABLE distinct_by_origin)) d)
         AS owned_differences,
       (SELECT count(*) FROM distinct_by_dest) AS shared_groups,
       (SELECT count(*) FROM ((TABLE distinct_by_dest EXCEPT TABLE oracle_distinct_by_dest)
                              UNION ALL (TABLE oracle_distinct_by_dest EXCEPT TABLE distinct_by_dest)) d)
         AS shared_differences;
SELECT * FROM distinct_by_origin ORDER BY origin COLLATE "C";

-- hll unions are exact: the same cardinality as the batch sketch. tdigest
-- merges approximate: the median within 2% of the batch tdigest's.
SELECT s.origin, hll_cardinality(s.dests) = hll_cardinality(b.dests) AS hll_equal,
       abs((SELECT tdigest_percentile(d, 0.5) FROM (VALUES (s.delays)) t(d)) -
           (SELECT tdigest_percentile(d, 0.5) FROM (VALUES (b.delays)) t(d))) <= 0.02 * 240 AS median_close
FROM sketches s
JOIN (SELECT origin, hll_add_agg(hll_hash_text(destination)) AS dests, tdigest(delay, 100) AS delays
      FROM fl_plain GROUP BY origin) b ON s.origin IS NOT DISTINCT FROM b.origin
ORDER BY s.origin COLLATE "C";

DROP EXTENSION velostream CASCADE;
DROP EXTENSION hll;
DROP EXTENSION tdigest;
