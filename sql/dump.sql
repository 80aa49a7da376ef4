-- pg_dump / pg_restore, in one database: what pg_dump writes for velostream
-- (velostream._dump_rows(), the data of velostream.dump_data), and what
-- restoring it does once the stream and the result tables exist again under
-- new OIDs, as pg_restore recreates them. test/integration/dump_restore.sh
-- runs the real pg_dump / pg_restore between two clusters.
CREATE EXTENSION velostream;
SET client_min_messages = warning;
CREATE SCHEMA d;
CREATE FOREIGN TABLE d.fl (origin text, dest text, delay int) SERVER velostream OPTIONS (partitions '2');
CREATE TABLE d.truth (origin text, dest text, delay int);
-- owned (the first view routes the stream by origin), shared with avg and
-- column aliases, and one group over the whole stream
CREATE MATERIALIZED VIEW d.by_origin WITH (velostream.continuous) AS
  SELECT origin, count(*) AS n, sum(delay) AS total, avg(delay) AS avg_delay FROM d.fl GROUP BY origin;
CREATE MATERIALIZED VIEW d.by_dest (destination, flights, avg_delay) WITH (velostream.continuous) AS
  SELECT dest, count(*), avg(delay) FROM d.fl WHERE delay > 0 GROUP BY dest;
CREATE MATERIALIZED VIEW d.overall WITH (velostream.continuous) AS
  SELECT count(*) AS n, max(delay) AS worst FROM d.fl;
-- The SQL a restore registers each view from: names schema-qualified.
SELECT view, owned, query_sql FROM velostream.views ORDER BY view::text;

CREATE FUNCTION d.send(lo int, hi int) RETURNS void LANGUAGE sql AS $$
  WITH r AS (SELECT 'o' || (g % 5) AS origin, 'd' || (g % 3) AS dest, (g % 41) - 10 AS delay
               FROM generate_series(lo, hi) g),
       s AS (INSERT INTO d.fl SELECT * FROM r)
  INSERT INTO d.truth SELECT * FROM r $$;
SELECT d.send(1, 3000);
SELECT velostream.wait('d.by_origin'), velostream.wait('d.by_dest'), velostream.wait('d.overall');
-- Rows of a paused stream wait in its logs: the dump carries them.
SELECT velostream.pause('d.fl');
SELECT d.send(3001, 4000);

-- What pg_dump writes (names, not OIDs, for the objects).
CREATE TABLE d.dumped AS
  SELECT kind, object::text AS object, partition, seq, xid, info, data FROM velostream._dump_rows() WHERE kind <> 'error';
SELECT kind, object, count(DISTINCT partition) AS partitions FROM d.dumped
 WHERE kind IN ('stream', 'view', 'log', 'state', 'changelog') GROUP BY 1, 2 ORDER BY 1, 2;
SELECT sum(seq) AS rows_in_logs FROM d.dumped WHERE kind = 'log';
SELECT object, info->>'paused' AS paused, info->>'route_column' AS route_column FROM d.dumped WHERE kind = 'stream';
-- Nothing reads it: velostream.dump_data itself is always empty.
SELECT count(*) FROM velostream.dump_data;

-- Drop it all and restore it as pg_restore does: the stream's CREATE FOREIGN
-- TABLE (new logs), the result tables with their rows, the data of
-- velostream.dump_data, then the indexes.
CREATE TABLE d.saved_origin AS SELECT * FROM d.by_origin;
CREATE TABLE d.saved_dest AS SELECT * FROM d.by_dest;
CREATE TABLE d.saved_overall AS SELECT * FROM d.overall;
DROP FOREIGN TABLE d.fl CASCADE;
SELECT count(*) AS views, (SELECT count(*) FROM pg_class WHERE relnamespace = 'velostream'::regnamespace
                                                            AND relname ~ '^(stream|view)_[0-9]') AS internal_tables
  FROM velostream.views;
CREATE FOREIGN TABLE d.fl (origin text, dest text, delay int) SERVER velostream OPTIONS (partitions '2');
CREATE TABLE d.by_origin (origin text, n bigint, total bigint, avg_delay numeric) WITH (fillfactor = 70);
CREATE TABLE d.by_dest (destination text, flights bigint, avg_delay numeric) WITH (fillfactor = 70);
CREATE TABLE d.overall (n bigint, worst integer) WITH (fillfactor = 70);
INSERT INTO d.by_origin SELECT * FROM d.saved_origin;
INSERT INTO d.by_dest SELECT * FROM d.saved_dest;
INSERT INTO d.overall SELECT * FROM d.saved_overall;
INSERT INTO velostream.dump_data SELECT kind, object::regclass, partition, seq, xid, info, data FROM d.dumped;
SELECT count(*) FROM velostream.dump_data;
SELECT view, owned, restoring, restored_snapshot IS NOT NULL AS has_restored_snapshot
  FROM velostream.views ORDER BY view::text;
SELECT paused, (SELECT attname FROM pg_attribute WHERE attrelid = stream AND attnum = route_column) AS route_column
  FROM velostream.streams;
-- Waiting for their unique indexes (post-data): restoring, not caught up.
SELECT view::text, status FROM velostream.stats GROUP BY 1, 2 ORDER BY 1, 2;
SELECT velostream.wait('d.by_origin', '200 ms');
CREATE UNIQUE INDEX by_origin_key ON d.by_origin (origin COLLATE "C") NULLS NOT DISTINCT;
CREATE UNIQUE INDEX by_dest_key ON d.by_dest (destination COLLATE "C") NULLS NOT DISTINCT;
CREATE UNIQUE INDEX overall_key ON d.overall ((true)) NULLS NOT DISTINCT;

-- Restored: the carried rows are counted once, and so are new ones.
SELECT velostream.resume('d.fl');
SELECT d.send(4001, 5000);
SELECT velostream.wait('d.by_origin'), velostream.wait('d.by_dest'), velostream.wait('d.overall');
SELECT view::text, status FROM velostream.stats GROUP BY 1, 2 ORDER BY 1, 2;
(SELECT origin, count(*) AS n, sum(delay) AS total, avg(delay) AS avg_delay FROM d.truth GROUP BY origin
 EXCEPT ALL SELECT * FROM d.by_origin)
UNION ALL
(SELECT * FROM d.by_origin
 EXCEPT ALL SELECT origin, count(*), sum(delay), avg(delay) FROM d.truth GROUP BY origin);
(SELECT dest, count(*), avg(delay) FROM d.truth WHERE delay > 0 GROUP BY dest EXCEPT ALL SELECT * FROM d.by_dest)
UNION ALL
(SELECT * FROM d.by_dest EXCEPT ALL SELECT dest, count(*), avg(delay) FROM d.truth WHERE delay > 0 GROUP BY dest);
SELECT o.n = t.n AND o.worst = t.worst AS overall_exact, o.n FROM d.overall o,
  (SELECT count(*) AS n, max(delay) AS worst FROM d.truth) t;

-- A view created after the restore does not count rows committed before it.
CREATE MATERIALIZED VIEW d.later WITH (velostream.continuous) AS SELECT count(*) AS n FROM d.fl;
SELECT d.send(5001, 5010);
SELECT velostream.wait('d.later');
SELECT n FROM d.later;

-- Dropping the restored stream drops its internal tables, never the extension.
DROP FOREIGN TABLE d.fl CASCADE;
SELECT count(*) AS internal_tables FROM pg_class
 WHERE relnamespace = 'velostream'::regnamespace AND relname ~ '^(stream|view)_[0-9]';
DROP SCHEMA d CASCADE;
DROP EXTENSION velostream CASCADE;
