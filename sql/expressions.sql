-- Select-list expressions over aggregates and keys, and HAVING: evaluated by
-- the executor over each group's keys and aggregate results when its row is
-- written; a group's row is in the table exactly while it satisfies HAVING.
CREATE EXTENSION velostream;
CREATE EXTENSION hll;       -- Debian's postgresql-15-hll
CREATE EXTENSION tdigest;   -- Debian's postgresql-15-tdigest
SET TIME ZONE 'UTC';
CREATE FOREIGN TABLE flights (ts timestamptz, delay int, distance int, origin text, destination text)
  SERVER velostream OPTIONS (partitions '2');
CREATE TABLE flights_plain (ts timestamptz, delay int, distance int, origin text, destination text);

-- The issue's views, verbatim. route_daily's groups are expressions (computed
-- columns the executor evaluates), so they span partitions: flights routes
-- rows by origin, the first plain GROUP BY column (of airport_reach).
CREATE MATERIALIZED VIEW airport_reach WITH (velostream.continuous) AS
  SELECT origin,
         count(DISTINCT destination) AS destinations,
         hll_cardinality(hll_add_agg(hll_hash_text(destination))) AS destinations_approx,
         tdigest_percentile(delay, 100, 0.99) AS p99_delay
  FROM flights
  GROUP BY origin;
CREATE MATERIALIZED VIEW route_daily WITH (velostream.continuous) AS
  SELECT origin || '-' || destination AS route,
         date_trunc('day', ts AT TIME ZONE 'America/New_York') AS local_day,
         CASE WHEN distance < 500 THEN 'short' WHEN distance < 1500 THEN 'medium' ELSE 'long' END AS haul,
         count(*) AS flights,
         count(*) FILTER (WHERE delay > 15) AS delayed,
         round(avg(greatest(delay, 0)), 2) AS avg_delay,
         stddev_samp(delay) AS sd_delay,
         bool_or(delay > 120) AS any_long_delay,
         max(ts) AS last_departure
  FROM flights
  WHERE origin IN ('ORD', 'ATL', 'DFW', 'LAX') AND coalesce(delay, 0) > -30
  GROUP BY 1, 2, 3
  HAVING count(*) >= 5;
-- The same on a one-partition stream: the view owns its groups.
CREATE FOREIGN TABLE flights1 (ts timestamptz, delay int, distance int, origin text, destination text)
  SERVER velostream OPTIONS (partitions '1');
CREATE MATERIALIZED VIEW route_daily_1 WITH (velostream.continuous) AS
  SELECT origin || '-' || destination AS route,
         date_trunc('day', ts AT TIME ZONE 'America/New_York') AS local_day,
         CASE WHEN distance < 500 THEN 'short' WHEN distance < 1500 THEN 'medium' ELSE 'long' END AS haul,
         count(*) AS flights,
         count(*) FILTER (WHERE delay > 15) AS delayed,
         round(avg(greatest(delay, 0)), 2) AS avg_delay,
         stddev_samp(delay) AS sd_delay,
         bool_or(delay > 120) AS any_long_delay,
         max(ts) AS last_departure
  FROM flights1
  WHERE origin IN ('ORD', 'ATL', 'DFW', 'LAX') AND coalesce(delay, 0) > -30
  GROUP BY 1, 2, 3
  HAVING count(*) >= 5;
CREATE VIEW oracle_route_daily AS
  SELECT origin || '-' || destination AS route,
         date_trunc('day', ts AT TIME ZONE 'America/New_York') AS local_day,
         CASE WHEN distance < 500 THEN 'short' WHEN distance < 1500 THEN 'medium' ELSE 'long' END AS haul,
         count(*) AS flights,
         count(*) FILTER (WHERE delay > 15) AS delayed,
         round(avg(greatest(delay, 0)), 2) AS avg_delay,
         stddev_samp(delay) AS sd_delay,
         bool_or(delay > 120) AS any_long_delay,
         max(ts) AS last_departure
  FROM flights_plain
  WHERE origin IN ('ORD', 'ATL', 'DFW', 'LAX') AND coalesce(delay, 0) > -30
  GROUP BY 1, 2, 3
  HAVING count(*) >= 5;
-- A row whose expression raises goes to velostream.errors; the stream goes on.
CREATE MATERIALIZED VIEW per_delay WITH (velostream.continuous) AS
  SELECT origin, sum(distance / delay) AS miles_per_delay, count(*) AS n FROM flights GROUP BY origin;
CREATE VIEW oracle_per_delay AS
  SELECT origin, sum(distance / delay) AS miles_per_delay, count(*) AS n
  FROM flights_plain WHERE delay IS DISTINCT FROM 0 GROUP BY origin;
\d route_daily
-- A stream whose first view groups only by expressions routes rows by no
-- column: its groups are shared.
CREATE FOREIGN TABLE by_expr (origin text, delay int) SERVER velostream OPTIONS (partitions '2');
CREATE MATERIALIZED VIEW by_expr_v WITH (velostream.continuous) AS
  SELECT upper(origin) AS o, count(*) AS n FROM by_expr GROUP BY upper(origin);
SELECT v.owned, s.route_column, v.key_columns FROM velostream.views v JOIN velostream.streams s USING (stream)
WHERE v.view = 'by_expr_v'::regclass;
INSERT INTO by_expr VALUES ('ord', 1), ('ORD', 2), ('atl', 3), (NULL, 4);
SELECT velostream.wait('by_expr_v');
SELECT * FROM by_expr_v ORDER BY o;
-- Expressions over aggregates and keys, HAVING; owned (by origin) and shared
-- (by destination: flights routes rows by origin).
CREATE MATERIALIZED VIEW origin_stats WITH (velostream.continuous) AS
  SELECT origin, lower(origin) || '!' AS tag, count(*) AS n, round(avg(delay), 2) AS avg_delay,
         count(*) * 2 AS twice, max(delay) - min(delay) AS spread,
         CASE WHEN sum(distance) > 100000 THEN 'far' ELSE 'near' END AS reach
  FROM flights GROUP BY origin HAVING count(*) >= 5 AND avg(delay) > 0;
CREATE MATERIALIZED VIEW dest_stats WITH (velostream.continuous) AS
  SELECT destination, count(*) AS n, round(avg(delay), 2) AS avg_delay, coalesce(max(delay), -1) AS worst,
         greatest(sum(distance), 0) AS miles
  FROM flights GROUP BY destination HAVING avg(delay) > 10 OR count(*) < 3;
\d origin_stats
SELECT view, owned FROM velostream.views ORDER BY view::text;
CREATE VIEW oracle_origin_stats AS
  SELECT origin, lower(origin) || '!' AS tag, count(*) AS n, round(avg(delay), 2) AS avg_delay,
         count(*) * 2 AS twice, max(delay) - min(delay) AS spread,
         CASE WHEN sum(distance) > 100000 THEN 'far' ELSE 'near' END AS reach
  FROM flights_plain GROUP BY origin HAVING count(*) >= 5 AND avg(delay) > 0;
CREATE VIEW oracle_dest_stats AS
  SELECT destination, count(*) AS n, round(avg(delay), 2) AS avg_delay, coalesce(max(delay), -1) AS worst,
         greatest(sum(distance), 0) AS miles
  FROM flights_plain GROUP BY destination HAVING avg(delay) > 10 OR count(*) < 3;
CREATE FUNCTION send(lo int, hi int, shift int) RETURNS void LANGUAGE sql AS $$
  WITH r AS (SELECT timestamptz '2024-03-01' + i * interval '5 minutes' AS ts,
                    CASE WHEN i % 9 = 0 THEN NULL ELSE (i * 31) % 90 - 30 + shift END AS delay,
                    100 + (i * 17) % 2500 AS distance,
                    (ARRAY['ORD', 'ATL', 'DFW', 'LAX', 'SEA', 'BOS'])[1 + i % 6] AS origin,
                    (ARRAY['SFO', 'JFK', 'MIA', 'DEN', 'PHX'])[1 + (i * 7) % 5] AS destination
               FROM generate_series(lo, hi) i),
       s AS (INSERT INTO flights SELECT * FROM r),
       s1 AS (INSERT INTO flights1 SELECT * FROM r)
  INSERT INTO flights_plain SELECT * FROM r $$;
CREATE FUNCTION differences(v regclass, o regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM ((TABLE %s EXCEPT TABLE %s) UNION ALL (TABLE %s EXCEPT TABLE %s)) d',
                 v, o, o, v) INTO n;
  RETURN n;
END $$;

-- Each step: the views equal their batch queries. Step 2 lowers the delays,
-- so groups leave HAVING (and step 3 brings some back).
SELECT send(1, 40, 0);
SELECT velostream.wait('origin_stats'), velostream.wait('dest_stats'), velostream.wait('airport_reach');
SELECT (SELECT count(*) FROM origin_stats) AS origin_rows, differences('origin_stats', 'oracle_origin_stats'),
       (SELECT count(*) FROM dest_stats) AS dest_rows, differences('dest_stats', 'oracle_dest_stats');
SELECT * FROM origin_stats ORDER BY origin;
SELECT send(41, 400, -25);
SELECT velostream.wait('origin_stats'), velostream.wait('dest_stats'), velostream.wait('airport_reach');
SELECT (SELECT count(*) FROM origin_stats) AS origin_rows, differences('origin_stats', 'oracle_origin_stats'),
       (SELECT count(*) FROM dest_stats) AS dest_rows, differences('dest_stats', 'oracle_dest_stats');
SELECT * FROM dest_stats ORDER BY destination;
SELECT send(401, 2000, 30);
SELECT velostream.wait('origin_stats'), velostream.wait('dest_stats'), velostream.wait('airport_reach');
SELECT (SELECT count(*) FROM origin_stats) AS origin_rows, differences('origin_stats', 'oracle_origin_stats'),
       (SELECT count(*) FROM dest_stats) AS dest_rows, differences('dest_stats', 'oracle_dest_stats');
SELECT velostream.wait('route_daily'), velostream.wait('route_daily_1'), velostream.wait('per_delay');
SELECT view, owned FROM velostream.views WHERE view::text LIKE 'route_daily%' ORDER BY 1;
SELECT (SELECT count(*) FROM route_daily) AS routes, differences('route_daily', 'oracle_route_daily'),
       differences('route_daily_1', 'oracle_route_daily') AS differences_owned,
       differences('per_delay', 'oracle_per_delay') AS per_delay_differences;
SELECT count(*) AS dead_letters, min(reason) AS reason,
       count(*) = (SELECT count(*) FROM flights_plain WHERE delay = 0) AS one_per_bad_row
FROM velostream.errors;
SELECT payload FROM velostream.errors ORDER BY payload LIMIT 2;

-- airport_reach: exact distinct counts; hll's estimate equals the batch
-- sketch's; tdigest's p99 within 5% of the delay range of the batch digest's.
SELECT a.origin, a.destinations = b.destinations AS distinct_equal,
       a.destinations_approx = b.destinations_approx AS hll_equal,
       abs(a.p99_delay - b.p99_delay) <= 0.05 * 150 AS p99_close
FROM airport_reach a
JOIN (SELECT origin, count(DISTINCT destination) AS destinations,
             hll_cardinality(hll_add_agg(hll_hash_text(destination))) AS destinations_approx,
             tdigest_percentile(delay, 100, 0.99) AS p99_delay
      FROM flights_plain GROUP BY origin) b USING (origin)
ORDER BY origin;
SELECT count(*) FROM velostream.stats WHERE status <> 'running';

-- A row whose tumble window is out of range (date_bin raises for it: after
-- 294247 AD) is a dead letter too; the view's other rows count.
CREATE FOREIGN TABLE far_future (ts timestamptz, n int) SERVER velostream OPTIONS (partitions '1');
CREATE MATERIALIZED VIEW far_hours WITH (velostream.continuous) AS
  SELECT tumble(ts, interval '1 hour') AS hour, count(*) AS rows, sum(n) AS total FROM far_future GROUP BY 1;
INSERT INTO far_future VALUES ('2001-01-01 10:20+00', 1), ('294270-01-01 00:00+00', 2), ('2001-01-01 10:40+00', 4),
                              ('infinity', 8);
SELECT velostream.wait('far_hours');
SELECT hour AT TIME ZONE 'UTC' AS hour, rows, total FROM far_hours ORDER BY 1;
SELECT reason, payload FROM velostream.errors WHERE stream = 'far_future'::regclass;
SELECT tumble(ts, interval '1 hour') FROM (VALUES (timestamptz '294270-01-01 00:00+00')) v(ts);  -- the same error

-- An aggregate argument that raises: an interval (a computed column the
-- engine stores) and an int[] (a type it does not store: PostgreSQL's
-- executor evaluates it for the aggregate). The row is a dead letter for the
-- whole view; under FILTER only the rows FILTER lets through evaluate it.
CREATE FOREIGN TABLE spans (origin text, d int) SERVER velostream OPTIONS (partitions '1');
CREATE MATERIALIZED VIEW span_totals WITH (velostream.continuous) AS
  SELECT origin, sum(make_interval(days => 100 / d)) AS total, count(*) AS n FROM spans GROUP BY origin;
CREATE MATERIALIZED VIEW span_filtered WITH (velostream.continuous) AS
  SELECT origin, sum(make_interval(days => 100 / d)) FILTER (WHERE d <> 0) AS total, count(*) AS n
  FROM spans GROUP BY origin;
CREATE MATERIALIZED VIEW span_arrays WITH (velostream.continuous) AS
  SELECT origin, max(ARRAY[100 / d, d]) AS top, count(*) AS n FROM spans GROUP BY origin;
CREATE MATERIALIZED VIEW span_arrays_filtered WITH (velostream.continuous) AS
  SELECT origin, max(ARRAY[100 / d, d]) FILTER (WHERE d <> 0) AS top, count(*) AS n FROM spans GROUP BY origin;
INSERT INTO spans VALUES ('A', 10), ('A', 0), ('B', 50), ('A', 20);
SELECT velostream.wait('span_totals'), velostream.wait('span_filtered'), velostream.wait('span_arrays'),
       velostream.wait('span_arrays_filtered');
SELECT * FROM span_totals ORDER BY origin;
SELECT * FROM span_filtered ORDER BY origin;
SELECT * FROM span_arrays ORDER BY origin;
SELECT * FROM span_arrays_filtered ORDER BY origin;
SELECT reason, payload FROM velostream.errors WHERE stream = 'spans'::regclass ORDER BY reason COLLATE "C";
SELECT count(*) FROM velostream.stats WHERE status <> 'running';

DROP EXTENSION velostream CASCADE;
DROP EXTENSION hll;
DROP EXTENSION tdigest;
