-- velostream 0.1: streams, continuous views, their catalog and workers' bookkeeping.
\echo Use "CREATE EXTENSION velostream" to load this file. \quit

CREATE SCHEMA velostream;
COMMENT ON SCHEMA velostream IS 'velostream catalog, stream logs and statistics';

-- Fails with a hint unless the library was loaded by shared_preload_libraries
-- (the launcher and the partition workers are started by the postmaster).
CREATE FUNCTION velostream._assert_preloaded() RETURNS void
  AS 'MODULE_PATHNAME', 'velostream_assert_preloaded' LANGUAGE C STRICT;
SELECT velostream._assert_preloaded();

CREATE FUNCTION velostream.fdw_handler() RETURNS fdw_handler
  AS 'MODULE_PATHNAME', 'velostream_fdw_handler' LANGUAGE C STRICT;
CREATE FUNCTION velostream.fdw_validator(text[], oid) RETURNS void
  AS 'MODULE_PATHNAME', 'velostream_fdw_validator' LANGUAGE C STRICT;
CREATE FOREIGN DATA WRAPPER velostream
  HANDLER velostream.fdw_handler VALIDATOR velostream.fdw_validator;
COMMENT ON FOREIGN DATA WRAPPER velostream IS 'streams: foreign tables fed by INSERT/COPY (server velostream)';
-- Local streams: rows sent with INSERT or COPY.
CREATE SERVER velostream FOREIGN DATA WRAPPER velostream;

-- tumble(ts, size): start of the tumbling window of the given size that holds
-- ts, windows aligned on the Unix epoch. A real function, so a continuous
-- view's query also runs as an ordinary batch query.
CREATE FUNCTION @extschema@.tumble(ts timestamptz, size interval) RETURNS timestamptz
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN date_bin(size, ts, '1970-01-01 00:00:00+00'::timestamptz);

-- Streams fed by INSERT/COPY. Each partition has a log table: INSERT/COPY
-- appends to it inside the user's transaction, and partition worker i
-- deletes what it consumed in the same transaction that merges the results,
-- so a committed row is counted once and an aborted row never.
CREATE TABLE velostream.streams (
  stream      regclass PRIMARY KEY,           -- the foreign table
  partitions  int NOT NULL CHECK (partitions BETWEEN 1 AND 64),
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE velostream.stream_partitions (
  stream      regclass NOT NULL REFERENCES velostream.streams ON DELETE CASCADE,
  partition   int NOT NULL,
  log_table   regclass NOT NULL,
  PRIMARY KEY (stream, partition)
);

-- Continuous views. `view` is the result table users read.
CREATE TABLE velostream.views (
  view            regclass PRIMARY KEY,
  stream          regclass NOT NULL REFERENCES velostream.streams ON DELETE CASCADE,
  state_table     regclass,                   -- partial states (avg), or NULL
  start_snapshot  pg_snapshot NOT NULL,       -- rows committed before creation are not counted
  key_columns     int2[] NOT NULL,            -- stream columns that are plain GROUP BY columns
  query_tree      text NOT NULL,              -- the analysed query (nodeToString)
  definition      text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);

-- Per view and partition, updated in each flush's transaction.
CREATE TABLE velostream.view_partition_stats (
  view             regclass NOT NULL REFERENCES velostream.views ON DELETE CASCADE,
  partition        int NOT NULL,
  events_in        bigint NOT NULL DEFAULT 0,  -- stream rows read
  events_selected  bigint NOT NULL DEFAULT 0,  -- rows that passed WHERE
  groups_upserted  bigint NOT NULL DEFAULT 0,
  flushes          bigint NOT NULL DEFAULT 0,
  last_flush       timestamptz,
  PRIMARY KEY (view, partition)
);

-- Dead letters: rows or messages that could not be processed, with why.
CREATE TABLE velostream.errors (
  id          bigserial PRIMARY KEY,
  stream      regclass,
  partition   int,
  "offset"    bigint,
  error_time  timestamptz NOT NULL DEFAULT now(),
  payload     text,
  reason      text NOT NULL
);

-- Rows committed to a partition's log and not consumed yet.
CREATE FUNCTION velostream.partition_backlog(log_table regclass) RETURNS bigint
  LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE n bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM %s', log_table) INTO n;
  RETURN n;
END $$;

CREATE VIEW velostream.stats AS
  SELECT v.view, v.stream, p.partition,
         coalesce(s.events_in, 0) AS events_in,
         coalesce(s.events_selected, 0) AS events_selected,
         coalesce(s.groups_upserted, 0) AS groups_upserted,
         coalesce(s.flushes, 0) AS flushes,
         s.last_flush,
         velostream.partition_backlog(p.log_table) AS backlog_rows
    FROM velostream.views v
    JOIN velostream.stream_partitions p ON p.stream = v.stream
    LEFT JOIN velostream.view_partition_stats s ON s.view = v.view AND s.partition = p.partition;
COMMENT ON VIEW velostream.stats IS
  'per continuous view and partition: rows read, rows selected, groups upserted, flushes, last flush, rows not consumed yet';

-- Waits until every stream row committed before the call is reflected in
-- `view`; true when it is, false when `timeout` passed first. Call it outside
-- the transaction that inserted the rows.
CREATE FUNCTION velostream.wait(view regclass, timeout interval DEFAULT '60 seconds')
  RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  snap      pg_snapshot := pg_current_snapshot();
  deadline  timestamptz := clock_timestamp() + timeout;
  log_table regclass;
  pending   boolean;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM velostream.views v WHERE v.view = wait.view) THEN
    RAISE EXCEPTION '"%" is not a continuous view', view
      USING ERRCODE = 'wrong_object_type',
            HINT = 'Continuous views are listed in velostream.views.';
  END IF;
  LOOP
    pending := false;
    FOR log_table IN
      SELECT p.log_table FROM velostream.stream_partitions p
        JOIN velostream.views v ON v.stream = p.stream WHERE v.view = wait.view
    LOOP
      EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE pg_visible_in_snapshot(_velostream_xid, $1))',
                     log_table) INTO pending USING snap;
      EXIT WHEN pending;
    END LOOP;
    IF NOT pending THEN RETURN true; END IF;
    IF clock_timestamp() > deadline THEN RETURN false; END IF;
    PERFORM pg_sleep(0.02);
  END LOOP;
END $$;

-- Keeps the catalog in step when streams or continuous views are dropped
-- (DROP FOREIGN TABLE, DROP MATERIALIZED VIEW, DROP ... CASCADE).
CREATE FUNCTION velostream._on_sql_drop() RETURNS event_trigger
  LANGUAGE plpgsql AS $$
BEGIN
  IF to_regclass('velostream.views') IS NULL THEN RETURN; END IF;
  DELETE FROM velostream.views
   WHERE view::oid IN (SELECT objid FROM pg_event_trigger_dropped_objects()
                        WHERE classid = 'pg_class'::regclass AND objsubid = 0);
  DELETE FROM velostream.streams
   WHERE stream::oid IN (SELECT objid FROM pg_event_trigger_dropped_objects()
                          WHERE classid = 'pg_class'::regclass AND objsubid = 0);
END $$;
CREATE EVENT TRIGGER velostream_sql_drop ON sql_drop EXECUTE FUNCTION velostream._on_sql_drop();

GRANT USAGE ON SCHEMA velostream TO PUBLIC;
GRANT SELECT ON velostream.streams, velostream.stream_partitions, velostream.views,
                velostream.view_partition_stats, velostream.stats TO PUBLIC;
