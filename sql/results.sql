-- Results: PostgreSQL's own semantics, rows updated in place, aborted rows never counted.
CREATE EXTENSION velostream;
SET TIME ZONE 'UTC';
CREATE FOREIGN TABLE flights (ts timestamptz, delay int, distance int, origin text, destination text)
  SERVER velostream;
CREATE MATERIALIZED VIEW delay_by_origin WITH (velostream.continuous) AS
  SELECT origin, tumble(ts, interval '1 hour') AS window_start,
         count(*) AS flights, sum(delay) AS total_delay, avg(delay) AS avg_delay,
         min(delay) AS min_delay, max(delay) AS max_delay
  FROM flights
  GROUP BY origin, tumble(ts, interval '1 hour');
CREATE MATERIALIZED VIEW long_delays WITH (velostream.continuous) AS
  SELECT origin, destination, count(*) AS n, sum(distance) AS miles
  FROM flights WHERE delay > 15 GROUP BY origin, destination;
CREATE MATERIALIZED VIEW counts WITH (velostream.continuous) AS
  SELECT count(*) AS all_rows, count(delay) AS with_delay, sum(delay) AS total FROM flights;

INSERT INTO flights VALUES
  ('2001-01-01 00:05+00', 20, 300, 'SFO', 'LAX'),
  ('2001-01-01 00:35+00', 5, 300, 'SFO', 'LAX'),
  ('2001-01-01 01:05+00', NULL, 500, NULL, 'JFK'),
  ('2001-01-01 01:10+00', 16, 2500, NULL, 'JFK');
SELECT velostream.wait('delay_by_origin'), velostream.wait('long_delays'), velostream.wait('counts');
SELECT * FROM delay_by_origin ORDER BY origin, window_start;
SELECT * FROM long_delays ORDER BY origin, destination;
SELECT * FROM counts;

-- Rows update in place: the same groups, new totals.
INSERT INTO flights SELECT '2001-01-01 00:50+00', 100, 10, 'SFO', 'LAX' FROM generate_series(1, 3);
SELECT velostream.wait('delay_by_origin'), velostream.wait('long_delays'), velostream.wait('counts');
SELECT * FROM delay_by_origin ORDER BY origin, window_start;
SELECT count(*) AS rows_in_view FROM delay_by_origin;
SELECT * FROM long_delays ORDER BY origin, destination;

-- An aborted transaction's rows never show.
BEGIN;
INSERT INTO flights VALUES ('2001-01-01 00:06+00', 999, 1, 'SFO', 'LAX');
ROLLBACK;
BEGIN;
INSERT INTO flights VALUES ('2001-01-01 00:07+00', 999, 1, 'OUTER', 'LAX');
SAVEPOINT a;
INSERT INTO flights VALUES ('2001-01-01 00:08+00', 999, 1, 'ROLLED_BACK', 'LAX');
ROLLBACK TO a;
INSERT INTO flights VALUES ('2001-01-01 00:09+00', 1, 1, 'KEPT', 'LAX');
COMMIT;
SELECT velostream.wait('delay_by_origin'), velostream.wait('long_delays'), velostream.wait('counts');
SELECT origin, flights, max_delay FROM delay_by_origin ORDER BY origin NULLS FIRST, window_start;
SELECT * FROM counts;

-- A view sees only rows committed after it was created (OLD may still be
-- waiting in the stream's log when the view is created: it must not count).
INSERT INTO flights VALUES ('2001-01-02 00:00+00', 1, 1, 'OLD', 'LAX');
CREATE MATERIALIZED VIEW late_view WITH (velostream.continuous) AS
  SELECT origin, count(*) AS n FROM flights GROUP BY origin;
INSERT INTO flights VALUES ('2001-01-02 00:00+00', 1, 1, 'NEW', 'LAX');
SELECT velostream.wait('late_view');
SELECT * FROM late_view;

-- Numeric and float8 columns: PostgreSQL's types and semantics (NaN, Infinity, sum of bigint as numeric).
CREATE FOREIGN TABLE m (k text, i8 bigint, n numeric, f float8, d date) SERVER velostream;
CREATE MATERIALIZED VIEW m_agg WITH (velostream.continuous) AS
  SELECT k, count(*) AS c, count(n) AS cn, sum(i8) AS s8, avg(i8) AS a8, sum(n) AS sn, avg(n) AS an,
         min(n) AS mn, max(n) AS xn, sum(f) AS sf, avg(f) AS af, min(f) AS mf, max(f) AS xf,
         min(d) AS md, max(d) AS xd
  FROM m GROUP BY k;
INSERT INTO m VALUES
  ('a', 9223372036854775807, 1.50, 1.5, '2001-01-01'),
  ('a', 9223372036854775807, 2.255, 2.5, '2001-02-01'),
  ('a', NULL, NULL, NULL, NULL),
  ('nan', 1, 'NaN', 'NaN', '2001-01-01'),
  ('nan', 2, 3, 1, '2001-01-01'),
  ('inf', 1, 'Infinity', 'Infinity', '2001-01-01'),
  ('inf', 1, '-Infinity', '-Infinity', '2001-01-01'),
  ('nulls', NULL, NULL, NULL, NULL);
SELECT velostream.wait('m_agg');
CREATE TABLE m_plain AS SELECT * FROM (VALUES
  ('a', 9223372036854775807, 1.50, 1.5::float8, '2001-01-01'::date),
  ('a', 9223372036854775807, 2.255, 2.5, '2001-02-01'),
  ('a', NULL, NULL, NULL, NULL),
  ('nan', 1, 'NaN', 'NaN', '2001-01-01'),
  ('nan', 2, 3, 1, '2001-01-01'),
  ('inf', 1, 'Infinity', 'Infinity', '2001-01-01'),
  ('inf', 1, '-Infinity', '-Infinity', '2001-01-01'),
  ('nulls', NULL, NULL, NULL, NULL)) v(k, i8, n, f, d);
SELECT * FROM m_agg ORDER BY k;
-- identical to the batch query, value for value
SELECT count(*) AS differences FROM (
  (SELECT * FROM m_agg EXCEPT
   SELECT k, count(*), count(n), sum(i8), avg(i8), sum(n), avg(n), min(n), max(n), sum(f), avg(f), min(f), max(f), min(d), max(d)
   FROM m_plain GROUP BY k)
  UNION ALL
  (SELECT k, count(*), count(n), sum(i8), avg(i8), sum(n), avg(n), min(n), max(n), sum(f), avg(f), min(f), max(f), min(d), max(d)
   FROM m_plain GROUP BY k
   EXCEPT SELECT * FROM m_agg)) x;

-- tumble() windows before 1970 and at odd sizes round as date_bin does.
CREATE FOREIGN TABLE times (ts timestamptz) SERVER velostream;
CREATE MATERIALIZED VIEW windows WITH (velostream.continuous) AS
  SELECT tumble(ts, interval '1 hour') AS h, tumble(ts, interval '7 minutes 13 seconds') AS odd, count(*) AS n
  FROM times GROUP BY 1, 2;
CREATE TABLE times_plain (ts timestamptz);
INSERT INTO times_plain VALUES ('1969-12-31 23:30:00+00'), ('1969-12-31 23:00:00+00'), ('1900-01-01 00:10:00+00'),
  ('1970-01-01 00:00:00+00'), ('2001-01-01 00:00:01+00'), ('2038-01-19 03:14:08+00'), ('infinity'), (NULL);
INSERT INTO times SELECT * FROM times_plain;
SELECT velostream.wait('windows');
SELECT * FROM windows ORDER BY h NULLS FIRST, odd;
SELECT count(*) AS differences FROM (
  (TABLE windows EXCEPT SELECT tumble(ts, interval '1 hour'), tumble(ts, interval '7 minutes 13 seconds'), count(*) FROM times_plain GROUP BY 1, 2)
  UNION ALL
  (SELECT tumble(ts, interval '1 hour'), tumble(ts, interval '7 minutes 13 seconds'), count(*) FROM times_plain GROUP BY 1, 2 EXCEPT TABLE windows)) d;

-- An owned view's rows are written from its workers' state: a row put into
-- the table by hand before its group arrives is never overwritten: the plain
-- INSERT conflicts, the view is set aside with unique_violation (velostream.stats)
-- and wait() does not call it caught up. Once the row is deleted,
-- velostream.retry() brings the view back with the group's full totals; a row
-- deleted by hand comes back, with its full totals, at the group's next change.
CREATE FOREIGN TABLE owned_s (k text, v int) SERVER velostream;
CREATE MATERIALIZED VIEW owned_v WITH (velostream.continuous) AS
  SELECT k, count(*) AS n, sum(v) AS total, avg(v) AS mean FROM owned_s GROUP BY k;
SELECT owned FROM velostream.views WHERE view = 'owned_v'::regclass;
INSERT INTO owned_v VALUES ('hand', 100, 100, 100);
INSERT INTO owned_s VALUES ('hand', 1), ('hand', 2), ('other', 5);
DO $$
BEGIN
  FOR i IN 1 .. 300 LOOP
    EXIT WHEN EXISTS (SELECT 1 FROM velostream.stats WHERE view = 'owned_v'::regclass AND status = 'failing');
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
SELECT status, sqlstate, last_error FROM velostream.stats WHERE view = 'owned_v'::regclass AND status = 'failing';
SELECT velostream.wait('owned_v', '0.2 s') AS caught_up;
SELECT * FROM owned_v WHERE k = 'hand';
DELETE FROM owned_v WHERE k = 'hand';
SELECT velostream.retry('owned_v');
SELECT velostream.wait('owned_v');
SELECT * FROM owned_v ORDER BY k;
SELECT DISTINCT status FROM velostream.stats WHERE view = 'owned_v'::regclass;
DELETE FROM owned_v WHERE k = 'hand';
INSERT INTO owned_s VALUES ('hand', 6), ('other', 1);
SELECT velostream.wait('owned_v');
SELECT * FROM owned_v ORDER BY k;

-- New groups go straight into the table's heap and every index on it, as
-- COPY writes them: an index the user adds finds them. A column the user adds
-- (with its default) or a CHECK constraint sends the writes through SQL.
CREATE INDEX owned_v_mean ON owned_v (mean);
CREATE INDEX owned_v_upper ON owned_v (upper(k)) WHERE n > 0;
INSERT INTO owned_s SELECT 'g' || g, g FROM generate_series(1, 500) g;
SELECT velostream.wait('owned_v');
SET enable_seqscan = off;
SELECT count(*) AS found_by_index FROM owned_v WHERE mean BETWEEN 1 AND 500;
SELECT k, n FROM owned_v WHERE upper(k) = 'G250' AND n > 0;
RESET enable_seqscan;
ALTER TABLE owned_v ADD COLUMN note text DEFAULT 'user column';
ALTER TABLE owned_v ADD CONSTRAINT small_totals CHECK (total < 1000000);
INSERT INTO owned_s VALUES ('late', 7), ('g1', 1);
SELECT velostream.wait('owned_v');
SELECT * FROM owned_v WHERE k IN ('late', 'g1') ORDER BY k;

-- Statistics per view and partition.
SELECT view, sum(events_in) AS events_in, sum(events_selected) AS selected, sum(backlog) AS backlog
  FROM velostream.stats GROUP BY view ORDER BY view::text;

-- Nothing pending: wait returns at once; a timeout returns false instead of hanging.
SELECT velostream.wait('counts', '1 ms');
DROP EXTENSION velostream CASCADE;
