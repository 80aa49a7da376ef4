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
         sum(delay * 2) AS double_delay, max(ts - interval '1 hour') AS last_shifted,
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
         sum(delay * 2) AS double_delay, max(ts - interval '1 hour') AS last_shifted,
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
         sum(delay * 2) AS double_delay, max(ts - interval '1 hour') AS last_shifted,
         bit_or(distance) AS bits, covar_pop(delay, distance) AS covar, corr(delay, distance) AS r
  FROM fl GROUP BY destination;
CREATE VIEW oracle_pg_aggs_shared AS
  SELECT destination AS origin, count(*) AS n,
         stddev_samp(delay) AS sd_int, var_pop(price) AS vp_num, stddev_pop(f4) AS sd_f4,
         variance(distance::float8) AS var_f8, sum(f4) AS sum_f4, avg(f4) AS avg_f4,
         bool_and(delay > 0) AS all_late, bool_or(delay > 100) AS any_long, every(distance < 3000) AS all_short,
         min(destination) AS first_dest, max(destination COLLATE "C") AS last_dest_c,
         sum(delay * 2) AS double_delay, max(ts - interval '1 hour') AS last_shifted,
         bit_or(distance) AS bits, covar_pop(delay, distance) AS covar, corr(delay, distance) AS r
  FROM fl_plain GROUP BY destination;
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
SELECT velostream.wait('pg_aggs'), velostream.wait('pg_aggs_shared'), velostream.wait('sketches');

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
