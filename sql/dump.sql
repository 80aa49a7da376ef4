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

-- An exchanged view: d.ev routes by origin (its first view), d.sess needs
-- each session in one worker (emit final) and groups by dest, so each
-- partition sends the groups the other owns to that partition's log, as a
-- batch naming the view (exchange_view). A long idle timeout: the
-- watermark is the least of the partitions' event times minus the delay.
CREATE FOREIGN TABLE d.ev (ts timestamptz, origin text, dest text, delay int) SERVER velostream
  OPTIONS (partitions '2', event_time 'ts', watermark_delay '10 minutes', idle_timeout '1 hour');
CREATE TABLE d.ev_truth (ts timestamptz, origin text, dest text, delay int);
CREATE MATERIALIZED VIEW d.ev_origin WITH (velostream.continuous) AS
  SELECT origin, count(*) AS n FROM d.ev GROUP BY origin;
CREATE MATERIALIZED VIEW d.sess WITH (velostream.continuous, velostream.emit = 'final') AS
  SELECT dest, session(ts, interval '30 minutes') AS session_start, count(*) AS n
  FROM d.ev GROUP BY dest, session(ts, interval '30 minutes');
SELECT view, owned, exchange, emit FROM velostream.views WHERE stream = 'd.ev'::regclass ORDER BY view::text;
-- a burst of 10 events an hour (each dest's session of the hour ends 50
-- minutes before the next), in time order
CREATE FUNCTION d.send_ev(lo int, hi int) RETURNS void LANGUAGE sql AS $$
  WITH r AS (SELECT '2001-01-01 00:00+00'::timestamptz + (g / 10) * interval '1 hour' + (g % 10) * interval '1 minute'
                      AS ts, 'o' || (g % 4) AS origin, 'd' || (g % 3) AS dest, g % 17 AS delay
               FROM generate_series(lo, hi) g),
       s AS (INSERT INTO d.ev SELECT * FROM r)
  INSERT INTO d.ev_truth SELECT * FROM r $$;
-- The sessions (a gap over 30 minutes starts one) the watermark closed.
CREATE VIEW d.closed_sessions AS
  SELECT dest, min(ts) AS session_start, count(*) AS n FROM
    (SELECT *, sum(CASE WHEN ts - prev > interval '30 minutes' THEN 1 ELSE 0 END)
                 OVER (PARTITION BY dest ORDER BY ts) AS session_no
       FROM (SELECT *, lag(ts) OVER (PARTITION BY dest ORDER BY ts) AS prev FROM d.ev_truth) x) y
   GROUP BY dest, session_no
  HAVING max(ts) + interval '30 minutes' < velostream.watermark(to_regclass('d.ev'));
-- true once d.sess holds exactly the closed sessions (some)
CREATE FUNCTION d.sessions_closed(timeout interval DEFAULT '60 s') RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  deadline timestamptz := clock_timestamp() + timeout;
BEGIN
  LOOP
    IF EXISTS (SELECT 1 FROM d.sess) AND NOT EXISTS (
         (TABLE d.closed_sessions EXCEPT ALL TABLE d.sess) UNION ALL (TABLE d.sess EXCEPT ALL TABLE d.closed_sessions)) THEN
      RETURN true;
    END IF;
    IF clock_timestamp() > deadline THEN RETURN false; END IF;
    PERFORM pg_sleep(0.02);
  END LOOP;
END $$;
SELECT d.send_ev(1, 200);
SELECT velostream.wait('d.ev_origin'), velostream.wait('d.sess'), d.sessions_closed();
-- Paused, with a batch of exchanged groups waiting in partition 1's log
-- (written here by hand: its bytes are no batch, no worker may read it).
SELECT velostream.pause('d.ev');
SELECT log_table AS ev_log1 FROM velostream.stream_partitions WHERE stream = 'd.ev'::regclass AND partition = 1 \gset
INSERT INTO :ev_log1 (_velostream_xid, rows, batch, exchange_view)
  VALUES (pg_current_xact_id(), 1, '\x00'::bytea, 'd.sess'::regclass);
SELECT 'd.sess'::regclass::oid AS old_sess \gset

-- What pg_dump writes (names, not OIDs, for the objects), with d.ev's
-- result tables in the same snapshot, as pg_dump reads them.
BEGIN ISOLATION LEVEL REPEATABLE READ;
CREATE TABLE d.dumped AS
  SELECT kind, object::text AS object, partition, seq, xid, info, data FROM velostream._dump_rows() WHERE kind <> 'error';
CREATE TABLE d.saved_ev_origin AS SELECT * FROM d.ev_origin;
CREATE TABLE d.saved_sess AS SELECT * FROM d.sess;
COMMIT;
SELECT kind, object, count(DISTINCT partition) AS partitions FROM d.dumped
 WHERE kind IN ('stream', 'view', 'log', 'state', 'changelog') GROUP BY 1, 2 ORDER BY 1, 2;
SELECT sum(seq) AS rows_in_logs FROM d.dumped WHERE kind = 'log' AND object = 'd.fl';
SELECT object, info->>'paused' AS paused, info->>'route_column' AS route_column FROM d.dumped WHERE kind = 'stream'
 ORDER BY object;
-- The exchanged view, and the batch of its groups by the view's name.
SELECT object, info->>'owned' AS owned, info->>'exchange' AS exchange, info->>'emit' AS emit FROM d.dumped
 WHERE kind = 'view' AND object IN ('d.ev_origin', 'd.sess') ORDER BY object;
SELECT object, partition, seq AS rows, info->>'exchange_view' AS exchange_view FROM d.dumped
 WHERE kind = 'log' AND object = 'd.ev' ORDER BY partition;
-- Nothing reads it: velostream.dump_data itself is always empty.
SELECT count(*) FROM velostream.dump_data;

-- Drop it all and restore it as pg_restore does: the stream's CREATE FOREIGN
-- TABLE (new logs), the result tables with their rows, the data of
-- velostream.dump_data, then the indexes.
CREATE TABLE d.saved_origin AS SELECT * FROM d.by_origin;
CREATE TABLE d.saved_dest AS SELECT * FROM d.by_dest;
CREATE TABLE d.saved_overall AS SELECT * FROM d.overall;
DROP FOREIGN TABLE d.fl, d.ev CASCADE;
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
CREATE FOREIGN TABLE d.ev (ts timestamptz, origin text, dest text, delay int) SERVER velostream
  OPTIONS (partitions '2', event_time 'ts', watermark_delay '10 minutes', idle_timeout '1 hour');
CREATE TABLE d.ev_origin (origin text, n bigint) WITH (fillfactor = 70);
CREATE TABLE d.sess (dest text, session_start timestamptz, n bigint) WITH (fillfactor = 70);
INSERT INTO d.ev_origin SELECT * FROM d.saved_ev_origin;
INSERT INTO d.sess SELECT * FROM d.saved_sess;
INSERT INTO velostream.dump_data SELECT kind, object::regclass, partition, seq, xid, info, data FROM d.dumped;
SELECT count(*) FROM velostream.dump_data;
SELECT view, owned, exchange, restoring, restored_snapshot IS NOT NULL AS has_restored_snapshot
  FROM velostream.views ORDER BY view::text;
SELECT stream, paused, (SELECT attname FROM pg_attribute WHERE attrelid = stream AND attnum = route_column) AS route_column
  FROM velostream.streams ORDER BY stream::text;
-- The batch of exchanged groups is back in partition 1's new log, naming
-- the restored d.sess (its new OID).
SELECT log_table AS ev_log1 FROM velostream.stream_partitions WHERE stream = 'd.ev'::regclass AND partition = 1 \gset
SELECT exchange_view::regclass AS exchange_view, exchange_view = 'd.sess'::regclass AS is_sess,
       exchange_view <> :old_sess AS new_oid, rows, restored_xid IS NOT NULL AS restored
  FROM :ev_log1 WHERE exchange_view IS NOT NULL;
-- Its bytes are no batch: out before the stream resumes.
DELETE FROM :ev_log1 WHERE exchange_view IS NOT NULL;
SELECT count(*) AS exchanged_batches FROM :ev_log1 WHERE exchange_view IS NOT NULL;
-- Waiting for their unique indexes (post-data): restoring, not caught up.
SELECT view::text, status FROM velostream.stats GROUP BY 1, 2 ORDER BY 1, 2;
SELECT velostream.wait('d.by_origin', '200 ms');
CREATE UNIQUE INDEX by_origin_key ON d.by_origin (origin COLLATE "C") NULLS NOT DISTINCT;
CREATE UNIQUE INDEX by_dest_key ON d.by_dest (destination COLLATE "C") NULLS NOT DISTINCT;
CREATE UNIQUE INDEX overall_key ON d.overall ((true)) NULLS NOT DISTINCT;
CREATE UNIQUE INDEX ev_origin_key ON d.ev_origin (origin COLLATE "C") NULLS NOT DISTINCT;
CREATE UNIQUE INDEX sess_key ON d.sess (session_start, dest COLLATE "C") NULLS NOT DISTINCT;

-- Restored: the carried rows are counted once, and so are new ones.
SELECT velostream.resume('d.fl');
SELECT d.send(4001, 5000);
SELECT velostream.wait('d.by_origin'), velostream.wait('d.by_dest'), velostream.wait('d.overall');
SELECT velostream.resume('d.ev');
SELECT d.send_ev(201, 300);
SELECT velostream.wait('d.ev_origin'), velostream.wait('d.sess'), d.sessions_closed();
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
-- The exchanged view restored runs on: it closed the sessions of the rows
-- carried and of new ones, exactly (d.sessions_closed).
SELECT view, owned, exchange FROM velostream.views WHERE stream = 'd.ev'::regclass ORDER BY view::text;
(SELECT origin, count(*) AS n FROM d.ev_truth GROUP BY origin EXCEPT ALL SELECT * FROM d.ev_origin)
UNION ALL
(SELECT * FROM d.ev_origin EXCEPT ALL SELECT origin, count(*) FROM d.ev_truth GROUP BY origin);
SELECT count(*) > (SELECT count(*) FROM d.saved_sess) AS more_sessions_closed, sum(n) < 300 AS open_sessions_left
  FROM d.sess;

-- A view created after the restore does not count rows committed before it.
CREATE MATERIALIZED VIEW d.later WITH (velostream.continuous) AS SELECT count(*) AS n FROM d.fl;
SELECT d.send(5001, 5010);
SELECT velostream.wait('d.later');
SELECT n FROM d.later;

-- Dropping the restored streams drops their internal tables, never the extension.
DROP FOREIGN TABLE d.fl, d.ev CASCADE;
SELECT count(*) AS internal_tables FROM pg_class
 WHERE relnamespace = 'velostream'::regnamespace AND relname ~ '^(stream|view)_[0-9]';
DROP SCHEMA d CASCADE;
DROP EXTENSION velostream CASCADE;
