-- Event-time options of streams and views, and their errors (issue 11).
CREATE EXTENSION velostream;
SET client_min_messages = warning;
SET TIME ZONE 'UTC';
-- The issue's stream, verbatim.
CREATE FOREIGN TABLE fl (ts timestamptz, delay int, distance int, origin text, destination text)
  SERVER velostream OPTIONS (event_time 'ts', watermark_delay '30 minutes');
SELECT ftoptions FROM pg_foreign_table WHERE ftrelid = 'fl'::regclass;
-- No event yet: no watermark.
SELECT velostream.watermark('fl') IS NULL AS no_watermark, velostream.watermark('fl', 0) IS NULL AS no_partition_watermark;
-- Options of a stream.
CREATE FOREIGN TABLE bad1 (ts timestamptz, v int) SERVER velostream OPTIONS (event_time 'nope');
CREATE FOREIGN TABLE bad2 (ts timestamp, v int) SERVER velostream OPTIONS (event_time 'ts');
CREATE FOREIGN TABLE bad3 (ts timestamptz, v int) SERVER velostream OPTIONS (watermark_delay '1 minute');
CREATE FOREIGN TABLE bad4 (ts timestamptz, v int) SERVER velostream OPTIONS (event_time 'ts', watermark_delay '-1 minute');
CREATE FOREIGN TABLE bad5 (ts timestamptz, v int) SERVER velostream OPTIONS (event_time 'ts', watermark_delay '1 month');
CREATE FOREIGN TABLE bad6 (ts timestamptz, v int) SERVER velostream OPTIONS (event_time 'ts', watermark_delay 'soon');
CREATE FOREIGN TABLE bad7 (ts timestamptz, v int) SERVER velostream OPTIONS (event_time 'ts', idle_timeout '-5 s');
CREATE FOREIGN TABLE ok1 (ts timestamptz, v int) SERVER velostream OPTIONS (event_time 'ts', idle_timeout '5 s');
-- The event time column is fixed; the delay and idle timeout can change.
ALTER FOREIGN TABLE fl OPTIONS (SET event_time 'ts');
ALTER FOREIGN TABLE fl OPTIONS (SET watermark_delay '1 hour');
ALTER FOREIGN TABLE fl OPTIONS (ADD idle_timeout '2 minutes');
ALTER FOREIGN TABLE fl OPTIONS (SET watermark_delay '-1 hour');
CREATE FOREIGN TABLE plain_s (ts timestamptz, v int) SERVER velostream;
ALTER FOREIGN TABLE plain_s OPTIONS (ADD watermark_delay '1 hour');
ALTER FOREIGN TABLE plain_s OPTIONS (ADD event_time 'ts');
-- Options of a view.
CREATE MATERIALIZED VIEW lenient WITH (velostream.continuous, velostream.allowed_lateness = '10 minutes') AS
  SELECT origin, tumble(ts, interval '1 hour') AS hour, count(*) AS n FROM fl GROUP BY origin, tumble(ts, interval '1 hour');
CREATE MATERIALIZED VIEW dropping WITH (velostream.continuous, velostream.late = 'drop') AS
  SELECT origin, count(*) AS n FROM fl GROUP BY origin;
SELECT view, allowed_lateness, late FROM velostream.views ORDER BY view::text;
CREATE MATERIALIZED VIEW bad_v1 WITH (velostream.continuous, velostream.allowed_lateness = '-1 s') AS
  SELECT origin, count(*) AS n FROM fl GROUP BY origin;
CREATE MATERIALIZED VIEW bad_v2 WITH (velostream.continuous, velostream.late = 'ignore') AS
  SELECT origin, count(*) AS n FROM fl GROUP BY origin;
CREATE MATERIALIZED VIEW bad_v3 WITH (velostream.continuous, velostream.allowed_lateness = '1 minute') AS
  SELECT v, count(*) AS n FROM plain_s GROUP BY v;
CREATE MATERIALIZED VIEW bad_v4 WITH (velostream.continuous, velostream.emit = 'final') AS
  SELECT origin, count(*) AS n FROM fl GROUP BY origin;
CREATE MATERIALIZED VIEW bad_v5 WITH (velostream.continuous, velostream.emit = 'sometimes') AS
  SELECT origin, tumble(ts, interval '1 hour') AS hour, count(*) AS n FROM fl GROUP BY origin, tumble(ts, interval '1 hour');
-- a view's idle timeout: an interval without months
CREATE MATERIALIZED VIEW bad_v10 WITH (velostream.continuous, velostream.idle_timeout = '1 month') AS
  SELECT origin, count(*) FROM fl GROUP BY origin;
CREATE MATERIALIZED VIEW bad_v6 WITH (velostream.continuous, velostream.retention = '-1 day') AS
  SELECT origin, tumble(ts, interval '1 hour') AS hour, count(*) AS n FROM fl GROUP BY origin, tumble(ts, interval '1 hour');
CREATE MATERIALIZED VIEW bad_v7 WITH (velostream.continuous, velostream.retention = '1 day') AS
  SELECT origin, count(*) AS n FROM fl GROUP BY origin;
-- a window over another column than the event time never closes
CREATE FOREIGN TABLE fl4 (ts timestamptz, booked timestamptz, origin text) SERVER velostream
  OPTIONS (event_time 'ts', partitions '1');
CREATE MATERIALIZED VIEW bad_v8 WITH (velostream.continuous, velostream.emit = 'final') AS
  SELECT origin, tumble(booked, interval '1 hour') AS hour, count(*) AS n FROM fl4 GROUP BY origin, tumble(booked, interval '1 hour');
-- emit final and retention need a view that owns its groups: lenient chose
-- origin as fl's routing column, so a view by destination exchanges them
CREATE MATERIALIZED VIEW exchanged_v9 WITH (velostream.continuous, velostream.emit = 'final',
                                            velostream.idle_timeout = '5 minutes') AS
  SELECT destination, tumble(ts, interval '1 hour') AS hour, count(*) AS n FROM fl GROUP BY destination, tumble(ts, interval '1 hour');
CREATE MATERIALIZED VIEW final_v WITH (velostream.continuous, velostream.emit = 'final', velostream.retention = '2 days') AS
  SELECT origin, tumble(ts, interval '1 hour') AS hour, count(*) AS n FROM fl GROUP BY origin, tumble(ts, interval '1 hour');
SELECT view, allowed_lateness, late, emit, retention, owned, exchange, idle_timeout FROM velostream.views ORDER BY view::text;
DROP MATERIALIZED VIEW final_v;
DROP MATERIALIZED VIEW exchanged_v9;
DROP FOREIGN TABLE fl4;
SELECT column_name FROM information_schema.columns WHERE table_schema = 'velostream' AND table_name = 'stats'
  AND column_name IN ('late_events', 'partition_watermark', 'watermark') ORDER BY 1;
-- Window functions: hop and cumulate as real set-returning functions;
-- session() only in continuous views.
SELECT * FROM hop('2001-01-01 10:20:00+00', interval '15 minutes', interval '1 hour');
SELECT * FROM hop('2001-01-01 10:15:00+00', interval '15 minutes', interval '1 hour');
SELECT count(*) FROM hop('2001-01-01 10:20:00+00', interval '20 minutes', interval '30 minutes');
SELECT * FROM cumulate('2001-01-01 10:20:00+00', interval '15 minutes', interval '1 hour');
SELECT origin, w.window_start, count(*) FROM (VALUES ('2001-01-01 10:20:00+00'::timestamptz, 'ORD'),
  ('2001-01-01 10:50:00+00', 'ORD')) f(ts, origin), hop(f.ts, interval '30 minutes', interval '1 hour') AS w
  GROUP BY 1, 2 ORDER BY 1, 2;
SELECT * FROM hop('2001-01-01 10:20:00+00', interval '0', interval '1 hour');
SELECT * FROM hop('2001-01-01 10:20:00+00', interval '1 month', interval '2 months');
SELECT * FROM cumulate('2001-01-01 10:20:00+00', interval '25 minutes', interval '1 hour');
SELECT session('2001-01-01 10:20:00+00', interval '30 minutes');
-- hop() and cumulate() windows in continuous views: FROM stream, hop(...).
CREATE FOREIGN TABLE fl3 (ts timestamptz, origin text) SERVER velostream OPTIONS (event_time 'ts');
CREATE MATERIALIZED VIEW hop_v WITH (velostream.continuous) AS
  SELECT f.origin, w.window_start, w.window_end, count(*) AS n
  FROM fl3 f, hop(f.ts, interval '15 minutes', interval '1 hour') AS w
  GROUP BY f.origin, w.window_start, w.window_end;
CREATE MATERIALIZED VIEW cum_v WITH (velostream.continuous, velostream.emit = 'final') AS
  SELECT f.origin, w.window_end, count(*) AS n
  FROM fl3 f, cumulate(f.ts, interval '15 minutes', interval '1 hour') AS w
  GROUP BY f.origin, w.window_end;
\d hop_v
CREATE MATERIALIZED VIEW bad_w1 WITH (velostream.continuous) AS
  SELECT f.origin, w.window_start, max(w.window_end) FROM fl3 f, hop(f.ts, interval '15 minutes', interval '1 hour') AS w
  GROUP BY 1, 2;
CREATE MATERIALIZED VIEW bad_w2 WITH (velostream.continuous) AS
  SELECT f.origin, w.window_start, count(*) FROM fl3 f, hop(f.ts, interval '15 minutes', interval '1 hour') AS w
  WHERE w.window_end > '2001-01-01' GROUP BY 1, 2;
CREATE MATERIALIZED VIEW bad_w3 WITH (velostream.continuous) AS
  SELECT f.origin, count(*) FROM fl3 f, hop(f.ts, interval '15 minutes', interval '1 hour') AS w GROUP BY 1;
CREATE MATERIALIZED VIEW bad_w4 WITH (velostream.continuous) AS
  SELECT f.origin, w.window_start, count(*) FROM fl3 f, hop(f.ts, interval '1 second', interval '1 hour') AS w
  GROUP BY 1, 2;
CREATE MATERIALIZED VIEW bad_w5 WITH (velostream.continuous) AS
  SELECT f.origin, w.window_start, count(*) FROM fl3 f, cumulate(f.ts, interval '25 minutes', interval '1 hour') AS w
  GROUP BY 1, 2;
CREATE MATERIALIZED VIEW bad_w7 WITH (velostream.continuous) AS
  SELECT f.origin, w.window_start, (w.window_end AT TIME ZONE 'UTC') AS ends, count(*)
  FROM fl3 f, hop(f.ts, interval '15 minutes', interval '1 hour') AS w GROUP BY 1, 2, 3;
CREATE MATERIALIZED VIEW bad_w6 WITH (velostream.continuous) AS
  SELECT f.origin, w.window_start, count(*) FROM fl3 f, hop(f.ts, interval '1 month', interval '2 months') AS w
  GROUP BY 1, 2;
-- Session windows: session(ts, gap) in GROUP BY of a view that owns its
-- groups (fl3 routes by origin).
CREATE MATERIALIZED VIEW sess_v WITH (velostream.continuous, velostream.emit = 'final') AS
  SELECT origin, session(ts, interval '30 minutes') AS s, count(*) AS n FROM fl3 GROUP BY origin, session(ts, interval '30 minutes');
\d sess_v
CREATE FOREIGN TABLE fl5 (ts timestamptz, origin text, destination text) SERVER velostream OPTIONS (event_time 'ts');
CREATE MATERIALIZED VIEW by_origin5 WITH (velostream.continuous) AS SELECT origin, count(*) FROM fl5 GROUP BY origin;
-- sessions by another column than the routing one: exchanged
CREATE MATERIALIZED VIEW exchanged_s1 WITH (velostream.continuous) AS
  SELECT destination, session(ts, interval '30 minutes') AS s, count(*) FROM fl5 GROUP BY 1, 2;
SELECT view, owned, exchange FROM velostream.views WHERE stream = 'fl5'::regclass ORDER BY view::text;
CREATE MATERIALIZED VIEW bad_s2 WITH (velostream.continuous) AS
  SELECT origin, count(*) FROM fl5 WHERE session(ts, interval '30 minutes') > '2001-01-01' GROUP BY 1;
CREATE MATERIALIZED VIEW bad_s3 WITH (velostream.continuous) AS
  SELECT origin, session(ts, interval '30 minutes') AS s, max(session(ts, interval '1 hour')) FROM fl5 GROUP BY 1, 2;
CREATE MATERIALIZED VIEW bad_s4 WITH (velostream.continuous) AS
  SELECT origin, session(ts, interval '30 minutes') AS s, tumble(ts, interval '1 day') AS d, count(*) FROM fl5 GROUP BY 1, 2, 3;
CREATE MATERIALIZED VIEW bad_s5 WITH (velostream.continuous) AS
  SELECT origin, session(ts, interval '0') AS s, count(*) FROM fl5 GROUP BY 1, 2;
CREATE MATERIALIZED VIEW bad_s7 WITH (velostream.continuous) AS
  SELECT origin, session(ts, interval '30 minutes') AT TIME ZONE 'UTC' AS s, count(*) FROM fl5 GROUP BY 1, 2;
-- retention with sessions: each partition deletes the sessions it closed
CREATE MATERIALIZED VIEW retained_s6 WITH (velostream.continuous, velostream.retention = '1 day') AS
  SELECT origin, session(ts, interval '30 minutes') AS s, count(*) FROM fl5 GROUP BY 1, 2;
DROP FOREIGN TABLE fl5 CASCADE;
DROP FOREIGN TABLE fl3 CASCADE;
DROP FOREIGN TABLE fl, ok1, plain_s CASCADE;
DROP EXTENSION velostream;
