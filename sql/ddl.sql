-- Extension objects, streams and continuous views: what CREATE makes and DROP removes.
CREATE EXTENSION velostream;
SELECT fdwname FROM pg_foreign_data_wrapper ORDER BY 1;
SELECT srvname FROM pg_foreign_server ORDER BY 1;
SELECT tumble('2001-01-01 10:42:00+00'::timestamptz, interval '1 hour')
     = date_bin(interval '1 hour', '2001-01-01 10:42:00+00'::timestamptz, '1970-01-01 00:00:00+00') AS same_as_date_bin;
SET TIME ZONE 'UTC';
SELECT tumble('2001-01-01 10:42:00+00', interval '15 minutes');

-- The contract of issue 3, verbatim.
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

-- Streams have one log per partition (velostream.partitions, default 2).
SELECT stream, partitions FROM velostream.streams;
SELECT stream, partition FROM velostream.stream_partitions ORDER BY partition;
-- Both views group by origin, the column rows are routed by: each group lives
-- in one partition, whose worker owns its state (kept in a changelog table).
SELECT view, stream, state_table IS NOT NULL AS has_state, owned, key_columns FROM velostream.views ORDER BY view::text;
SELECT attname AS route_column FROM velostream.streams s JOIN pg_attribute a ON a.attrelid = s.stream AND a.attnum = s.route_column;

-- The result is a table with exactly the columns and types of the SELECT.
\d delay_by_origin
\d long_delays
SELECT a.attname, format_type(a.atttypid, a.atttypmod)
  FROM pg_attribute a WHERE a.attrelid = 'delay_by_origin'::regclass AND a.attnum > 0 ORDER BY a.attnum;
CREATE TEMP TABLE batch_shape AS
  SELECT origin, tumble(ts, interval '1 hour') AS window_start,
         count(*) AS flights, sum(delay) AS total_delay, avg(delay) AS avg_delay,
         min(delay) AS min_delay, max(delay) AS max_delay
  FROM (SELECT * FROM (VALUES (now(), 1, 1, 'x', 'y')) v(ts, delay, distance, origin, destination)) flights
  GROUP BY origin, tumble(ts, interval '1 hour');
SELECT count(*) AS mismatched_columns FROM (
  (SELECT attname, atttypid FROM pg_attribute WHERE attrelid = 'delay_by_origin'::regclass AND attnum > 0
   EXCEPT SELECT attname, atttypid FROM pg_attribute WHERE attrelid = 'batch_shape'::regclass AND attnum > 0)
  UNION ALL
  (SELECT attname, atttypid FROM pg_attribute WHERE attrelid = 'batch_shape'::regclass AND attnum > 0
   EXCEPT SELECT attname, atttypid FROM pg_attribute WHERE attrelid = 'delay_by_origin'::regclass AND attnum > 0)) d;

-- Indexable like any table.
CREATE INDEX ON delay_by_origin (avg_delay);

-- OPTIONS (partitions) overrides the GUC; column aliases name the columns.
CREATE FOREIGN TABLE events (id bigint, kind text, amount numeric, score float8, at timestamptz)
  SERVER velostream OPTIONS (partitions '3');
SELECT partitions FROM velostream.streams WHERE stream = 'events'::regclass;
CREATE MATERIALIZED VIEW by_kind (k, n, total) WITH (velostream.continuous) AS
  SELECT kind, count(*), sum(amount) FROM events GROUP BY kind;
\d by_kind

-- Dropping: a view, then a stream with CASCADE takes its views along.
DROP MATERIALIZED VIEW by_kind;
SELECT count(*) FROM velostream.views WHERE stream = 'events'::regclass;
CREATE MATERIALIZED VIEW by_kind WITH (velostream.continuous) AS
  SELECT kind, avg(score) AS mean FROM events GROUP BY kind;
DROP FOREIGN TABLE events;
DROP FOREIGN TABLE events CASCADE;
SELECT count(*) AS streams_left FROM velostream.streams;
SELECT count(*) AS logs_left FROM pg_class WHERE relname ~ '^stream_[0-9]+_p[0-9]+$' AND relnamespace = 'velostream'::regnamespace;
SELECT to_regclass('by_kind') AS by_kind_gone;

-- DROP EXTENSION cleans up everything (CASCADE: streams and views are user objects).
DROP EXTENSION velostream CASCADE;
SELECT count(*) AS velostream_schemas FROM pg_namespace WHERE nspname = 'velostream';
SELECT to_regclass('delay_by_origin') AS view_gone, to_regclass('flights') AS stream_gone;
SELECT count(*) AS fdws FROM pg_foreign_data_wrapper WHERE fdwname = 'velostream';
