-- velostream 0.1 -> 0.2: failure isolation of views, worker errors, Kafka gaps.
-- CREATE EXTENSION velostream runs velostream--0.1.sql and then this script,
-- so every install goes through the upgrade path that existing 0.1 databases take.
\echo Use "ALTER EXTENSION velostream UPDATE TO '0.2'" to load this file. \quit

-- A view whose flush fails for a reason its data cannot fix (a trigger that
-- raises, a constraint, an overflow) is set aside by its partition worker:
-- `status` 'failing', the error and its SQLSTATE here, retried at
-- `next_retry` with exponential back-off (velostream.retry() sets it to now).
ALTER TABLE velostream.view_partition_stats
  ADD COLUMN status     text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'failing')),
  ADD COLUMN last_error text,
  ADD COLUMN sqlstate   text,
  ADD COLUMN error_at   timestamptz,
  ADD COLUMN failures   int NOT NULL DEFAULT 0,
  ADD COLUMN next_retry timestamptz;

-- The aggregated rows of a view that is set aside: its partition worker goes
-- on consuming the stream for the other views and keeps this view's delta
-- (engine state encoding, ViewAggregator::encode_all) here, in the
-- transaction that consumes the rows, until a flush succeeds.
CREATE TABLE velostream.pending_deltas (
  view       regclass NOT NULL REFERENCES velostream.views ON DELETE CASCADE,
  partition  int NOT NULL,
  rows_in    bigint NOT NULL,
  data       bytea NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (view, partition)
);
ALTER TABLE velostream.pending_deltas ALTER COLUMN data SET STORAGE EXTERNAL;

-- A worker whose whole cycle fails (not one view's flush) records why here
-- before it exits and is restarted with back-off.
ALTER TABLE velostream.stream_partitions
  ADD COLUMN worker_error    text,
  ADD COLUMN worker_sqlstate text,
  ADD COLUMN worker_error_at timestamptz,
  ADD COLUMN worker_failures int NOT NULL DEFAULT 0;

-- Kafka messages lost outside velostream's control (retention deleted them
-- before they were consumed, or the topic was recreated): one dead-letter row
-- per gap with its first ("offset") and last lost offset, and a count per
-- topic partition.
ALTER TABLE velostream.errors ADD COLUMN last_offset bigint;
COMMENT ON COLUMN velostream.errors.last_offset IS
  'for a gap of lost Kafka messages: the last lost offset ("offset" is the first); NULL for one message or row';
ALTER TABLE velostream.kafka_offsets ADD COLUMN lost bigint NOT NULL DEFAULT 0;

DROP VIEW velostream.stats;
CREATE VIEW velostream.stats AS
  SELECT v.view, v.stream, p.partition,
         coalesce(s.status, 'running') AS status,
         coalesce(s.events_in, 0) AS events_in,
         coalesce(s.events_selected, 0) AS events_selected,
         coalesce(s.groups_upserted, 0) AS groups_upserted,
         coalesce(s.flushes, 0) AS flushes,
         s.last_flush,
         CASE WHEN p.log_table IS NOT NULL THEN velostream.partition_backlog(p.log_table)
              ELSE (SELECT coalesce(sum(greatest(k.high_watermark - coalesce(k.next_offset, 0), 0)), 0)
                      FROM velostream.kafka_offsets k WHERE k.stream = p.stream AND k.worker = p.partition)
         END AS backlog,
         coalesce(s.last_error, p.worker_error, p.last_error) AS last_error,
         CASE WHEN s.last_error IS NOT NULL THEN s.sqlstate
              WHEN p.worker_error IS NOT NULL THEN p.worker_sqlstate END AS sqlstate,
         coalesce(s.failures, 0) AS failures,
         s.next_retry
    FROM velostream.views v
    JOIN velostream.stream_partitions p ON p.stream = v.stream
    LEFT JOIN velostream.view_partition_stats s ON s.view = v.view AND s.partition = p.partition;
COMMENT ON VIEW velostream.stats IS
  'per continuous view and partition: status (running, or failing: set aside after a failed flush), rows read, rows selected, groups upserted, flushes, last flush, backlog (rows of a local stream not consumed yet, or Kafka consumer lag), the last error with its SQLSTATE, consecutive failures and the next retry';

DROP VIEW velostream.kafka_stats;
CREATE VIEW velostream.kafka_stats AS
  SELECT k.stream, k.kafka_partition, k.worker, k.next_offset, k.high_watermark,
         greatest(k.high_watermark - coalesce(k.next_offset, 0), 0) AS lag,
         k.messages, k.dead_letters, k.lost, k.rate, k.last_error, k.updated_at, s.paused
    FROM velostream.kafka_offsets k JOIN velostream.streams s USING (stream);
COMMENT ON VIEW velostream.kafka_stats IS
  'per Kafka topic partition: next offset, high watermark, lag, messages, dead letters, messages lost to retention, rate, last error';

-- wait(): a view that is set aside is not caught up, whatever it consumed.
CREATE OR REPLACE FUNCTION velostream.wait(view regclass, timeout interval DEFAULT '60 seconds')
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
    -- a view set aside after a failed flush has not counted what it consumed
    IF NOT pending THEN
      pending := EXISTS (SELECT 1 FROM velostream.view_partition_stats ps
                          WHERE ps.view = wait.view AND ps.status = 'failing');
    END IF;
    IF NOT pending THEN RETURN true; END IF;
    IF clock_timestamp() > deadline THEN RETURN false; END IF;
    PERFORM pg_sleep(0.02);
  END LOOP;
END $$;

-- Retry a view that is set aside now instead of at its next back-off time.
CREATE FUNCTION velostream.retry(view regclass) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM velostream.views v WHERE v.view = retry.view) THEN
    RAISE EXCEPTION '"%" is not a continuous view', view
      USING ERRCODE = 'wrong_object_type', HINT = 'Continuous views are listed in velostream.views.';
  END IF;
  IF NOT pg_has_role((SELECT c.relowner FROM pg_class c WHERE c.oid = retry.view), 'USAGE') THEN
    RAISE EXCEPTION 'must be owner of continuous view %', view USING ERRCODE = 'insufficient_privilege';
  END IF;
  UPDATE velostream.view_partition_stats s SET next_retry = now()
   WHERE s.view = retry.view AND s.status = 'failing';
END $$;

-- The form in which a statement velostream runs itself (CREATE of a
-- continuous view, COPY into a stream on the fast path) passes through the
-- ProcessUtility hooks of extensions loaded before velostream, so that
-- pg_stat_statements or pgaudit see it; it refuses any other call.
CREATE PROCEDURE velostream._run_intercepted() LANGUAGE C AS 'MODULE_PATHNAME', 'velostream_run_intercepted';

GRANT SELECT ON velostream.stats, velostream.kafka_stats TO PUBLIC;
