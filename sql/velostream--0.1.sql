-- velostream 0.1: streams, continuous views, their catalog and workers' bookkeeping.
\echo Use "CREATE EXTENSION velostream" to load this file. \quit

CREATE SCHEMA velostream;
COMMENT ON SCHEMA velostream IS 'velostream catalog, stream logs and statistics';

-- Loading the library fails with a hint unless it is in shared_preload_libraries
-- (the launcher and the partition workers are started by the postmaster);
-- this also checks that this is the database named by velostream.database.
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
-- Kafka streams (a server with a `brokers` option) have no log: partition
-- worker i consumes the topic's partitions p with p % partitions = i.
CREATE TABLE velostream.streams (
  stream      regclass PRIMARY KEY,           -- the foreign table
  kind        text NOT NULL CHECK (kind IN ('local', 'kafka')),
  partitions  int NOT NULL CHECK (partitions BETWEEN 1 AND 64),
  paused      boolean NOT NULL DEFAULT false,
  -- local streams: the column (attnum) INSERT/COPY routes rows by, so that a
  -- view grouping by it has each group in one partition; NULL: round robin.
  -- Chosen by the first continuous view on the stream, fixed while views exist.
  route_column int2,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE velostream.stream_partitions (
  stream      regclass NOT NULL REFERENCES velostream.streams ON DELETE CASCADE,
  partition   int NOT NULL,
  log_table   regclass,                       -- local streams only
  last_error  text,                           -- Kafka: broker / topic problem seen by this worker, NULL when healthy
  error_at    timestamptz,
  PRIMARY KEY (stream, partition)
);

-- Kafka positions: the next offset of each topic partition, written in the
-- same transaction as the results it covers (exactly-once), plus consumer
-- statistics.
CREATE TABLE velostream.kafka_offsets (
  stream          regclass NOT NULL REFERENCES velostream.streams ON DELETE CASCADE,
  kafka_partition int NOT NULL,
  worker          int NOT NULL,               -- the stream partition (worker) that owns it
  next_offset     bigint,                     -- NULL: nothing consumed yet
  high_watermark  bigint,                     -- offset after the last message in the topic partition
  messages        bigint NOT NULL DEFAULT 0,
  dead_letters    bigint NOT NULL DEFAULT 0,
  rate            float8,                     -- messages per second in the last flush
  last_error      text,                       -- broker or topic problem, NULL when healthy
  updated_at      timestamptz,
  watermark_checked_at timestamptz,           -- when high_watermark was last asked from the broker
  PRIMARY KEY (stream, kafka_partition)
);

-- Continuous views. `view` is the result table users read.
CREATE TABLE velostream.views (
  view            regclass PRIMARY KEY,
  stream          regclass NOT NULL REFERENCES velostream.streams ON DELETE CASCADE,
  state_table     regclass,                   -- partial states (avg) or, for owned views, the state changelog
  owned           boolean NOT NULL DEFAULT false, -- every group lives in one partition: its worker owns the state
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

-- Rows committed to a partition's log and not consumed yet. Runs as the
-- extension's owner (logs belong to velostream), for log tables only.
CREATE FUNCTION velostream.partition_backlog(log_table regclass) RETURNS bigint
  LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE n bigint;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM velostream.stream_partitions p WHERE p.log_table = partition_backlog.log_table) THEN
    RAISE EXCEPTION '"%" is not a stream partition log', log_table
      USING ERRCODE = 'wrong_object_type', HINT = 'Logs are listed in velostream.stream_partitions.';
  END IF;
  EXECUTE format('SELECT coalesce(sum(rows), 0) FROM %s', log_table) INTO n;
  RETURN n;
END $$;

CREATE VIEW velostream.stats AS
  SELECT v.view, v.stream, p.partition,
         coalesce(s.events_in, 0) AS events_in,
         coalesce(s.events_selected, 0) AS events_selected,
         coalesce(s.groups_upserted, 0) AS groups_upserted,
         coalesce(s.flushes, 0) AS flushes,
         s.last_flush,
         CASE WHEN p.log_table IS NOT NULL THEN velostream.partition_backlog(p.log_table)
              ELSE (SELECT coalesce(sum(greatest(k.high_watermark - coalesce(k.next_offset, 0), 0)), 0)
                      FROM velostream.kafka_offsets k WHERE k.stream = p.stream AND k.worker = p.partition)
         END AS backlog,
         p.last_error
    FROM velostream.views v
    JOIN velostream.stream_partitions p ON p.stream = v.stream
    LEFT JOIN velostream.view_partition_stats s ON s.view = v.view AND s.partition = p.partition;
COMMENT ON VIEW velostream.stats IS
  'per continuous view and partition: rows read, rows selected, groups upserted, flushes, last flush, backlog (rows of a local stream not consumed yet, or Kafka consumer lag) and the last broker error';

-- Per Kafka topic partition: consumer lag (high watermark - committed next
-- offset), rate, dead letters and the last broker error.
CREATE VIEW velostream.kafka_stats AS
  SELECT k.stream, k.kafka_partition, k.worker, k.next_offset, k.high_watermark,
         greatest(k.high_watermark - coalesce(k.next_offset, 0), 0) AS lag,
         k.messages, k.dead_letters, k.rate, k.last_error, k.updated_at, s.paused
    FROM velostream.kafka_offsets k JOIN velostream.streams s USING (stream);

-- Pauses / resumes a stream's consumption (its workers keep running, idle).
CREATE FUNCTION velostream.pause(stream regclass) RETURNS void LANGUAGE sql AS
  $$ UPDATE velostream.streams SET paused = true WHERE streams.stream = pause.stream $$;
CREATE FUNCTION velostream.resume(stream regclass) RETURNS void LANGUAGE sql AS
  $$ UPDATE velostream.streams SET paused = false WHERE streams.stream = resume.stream $$;

-- Waits until every stream row committed before the call is reflected in
-- `view`; true when it is, false when `timeout` passed first. Call it outside
-- the transaction that inserted the rows.
-- Waits until `view` reflects everything its stream had before the call:
-- every row committed before the call (local streams), or every message
-- below the topic's high watermark (Kafka streams). True when it does, false
-- when `timeout` passed first. Call it outside the inserting transaction.
CREATE FUNCTION velostream.wait(view regclass, timeout interval DEFAULT '60 seconds')
  RETURNS boolean LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  snap      pg_snapshot := pg_current_snapshot();
  t0        timestamptz := clock_timestamp();
  deadline  timestamptz := clock_timestamp() + timeout;
  kind      text;
  s         regclass;
  log_table regclass;
  pending   boolean;
BEGIN
  SELECT st.kind, st.stream INTO kind, s
    FROM velostream.views v JOIN velostream.streams st ON st.stream = v.stream WHERE v.view = wait.view;
  IF NOT FOUND THEN
    RAISE EXCEPTION '"%" is not a continuous view', view
      USING ERRCODE = 'wrong_object_type',
            HINT = 'Continuous views are listed in velostream.views.';
  END IF;
  LOOP
    IF kind = 'kafka' THEN
      -- every topic partition reported after the call, and consumed up to its high watermark
      SELECT NOT EXISTS (SELECT 1 FROM velostream.kafka_offsets k WHERE k.stream = s) OR EXISTS (
               SELECT 1 FROM velostream.kafka_offsets k WHERE k.stream = s
                AND (k.watermark_checked_at IS NULL OR k.watermark_checked_at < t0 OR k.high_watermark IS NULL
                     OR coalesce(k.next_offset, 0) < k.high_watermark))
        INTO pending;
    ELSE
      pending := false;
      FOR log_table IN SELECT p.log_table FROM velostream.stream_partitions p WHERE p.stream = s LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE pg_visible_in_snapshot(_velostream_xid, $1))',
                       log_table) INTO pending USING snap;
        EXIT WHEN pending;
      END LOOP;
    END IF;
    IF NOT pending THEN RETURN true; END IF;
    IF clock_timestamp() > deadline THEN RETURN false; END IF;
    PERFORM pg_sleep(0.02);
  END LOOP;
END $$;

-- Keeps the catalog in step when streams or continuous views are dropped
-- (DROP FOREIGN TABLE, DROP MATERIALIZED VIEW, DROP ... CASCADE).
CREATE FUNCTION velostream._on_sql_drop() RETURNS event_trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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
                velostream.view_partition_stats, velostream.stats, velostream.kafka_offsets,
                velostream.kafka_stats TO PUBLIC;
REVOKE EXECUTE ON FUNCTION velostream.pause(regclass), velostream.resume(regclass) FROM PUBLIC;
