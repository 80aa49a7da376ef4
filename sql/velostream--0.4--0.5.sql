-- velostream 0.4 -> 0.5: one ingestion path for every source. A Kafka
-- stream has partition logs too: each partition worker routes the rows it
-- consumes by the stream's routing column (as INSERT and COPY do), to its own
-- views or to the log of the partition owning the row's key, in the
-- transaction that commits the consumed offsets; the views of a Kafka stream
-- grouping by that column then own their groups. Kafka streams created
-- before get their logs here; their views stay as they are (a stream whose
-- views were created before 0.5 has no routing column until its last view is
-- dropped).
\echo Use "ALTER EXTENSION velostream UPDATE TO '0.5'" to load this file. \quit

CREATE FUNCTION velostream._create_partition_logs(stream regclass) RETURNS void
  AS 'MODULE_PATHNAME', 'velostream_create_partition_logs' LANGUAGE C STRICT;
REVOKE EXECUTE ON FUNCTION velostream._create_partition_logs(regclass) FROM PUBLIC;

SELECT velostream._hold_workers();
SELECT velostream._create_partition_logs(s.stream) FROM velostream.streams s
 WHERE EXISTS (SELECT 1 FROM velostream.stream_partitions p WHERE p.stream = s.stream AND p.log_table IS NULL)
 ORDER BY s.stream;

-- velostream.stats: a Kafka stream's backlog is its consumer lag plus the
-- routed rows waiting in the partition's log.
DROP VIEW velostream.stats;
CREATE VIEW velostream.stats AS
  SELECT v.view, v.stream, p.partition,
         CASE WHEN v.restoring THEN 'restoring' ELSE coalesce(s.status, 'running') END AS status,
         coalesce(s.events_in, 0) AS events_in,
         coalesce(s.events_selected, 0) AS events_selected,
         coalesce(s.groups_upserted, 0) AS groups_upserted,
         coalesce(s.flushes, 0) AS flushes,
         s.last_flush,
         (CASE WHEN p.log_table IS NOT NULL THEN velostream.partition_backlog(p.log_table) ELSE 0 END
          + CASE WHEN st.kind = 'kafka'
                 THEN (SELECT coalesce(sum(greatest(k.high_watermark - coalesce(k.next_offset, 0), 0)), 0)
                         FROM velostream.kafka_offsets k WHERE k.stream = p.stream AND k.worker = p.partition)
                 ELSE 0 END)::numeric AS backlog,
         coalesce(s.last_error, p.worker_error, p.last_error) AS last_error,
         CASE WHEN s.last_error IS NOT NULL THEN s.sqlstate
              WHEN p.worker_error IS NOT NULL THEN p.worker_sqlstate END AS sqlstate,
         coalesce(s.failures, 0) AS failures,
         s.next_retry
    FROM velostream.views v
    JOIN velostream.streams st ON st.stream = v.stream
    JOIN velostream.stream_partitions p ON p.stream = v.stream
    LEFT JOIN velostream.view_partition_stats s ON s.view = v.view AND s.partition = p.partition;
COMMENT ON VIEW velostream.stats IS
  'per continuous view and partition: status (running; failing: set aside after a failed flush; restoring: restored by pg_restore, waiting for its unique index), rows read, rows selected, groups upserted, flushes, last flush, backlog (rows not consumed yet: in the partition''s log, plus a Kafka stream''s consumer lag), the last error with its SQLSTATE, consecutive failures and the next retry';
GRANT SELECT ON velostream.stats TO PUBLIC;

-- wait(): a Kafka stream is caught up when every topic partition is
-- consumed up to its high watermark and the rows routed between the
-- partitions are consumed too.
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
    pending := false;
    IF kind = 'kafka' THEN
      -- every topic partition reported after the call, and consumed up to its high watermark
      SELECT NOT EXISTS (SELECT 1 FROM velostream.kafka_offsets k WHERE k.stream = s) OR EXISTS (
               SELECT 1 FROM velostream.kafka_offsets k WHERE k.stream = s
                AND (k.watermark_checked_at IS NULL OR k.watermark_checked_at < t0 OR k.high_watermark IS NULL
                     OR coalesce(k.next_offset, 0) < k.high_watermark))
        INTO pending;
    END IF;
    IF NOT pending THEN
      -- a local stream's rows committed before the call, and every row routed
      -- between a Kafka stream's partitions, consumed from the logs
      FOR log_table IN SELECT p.log_table FROM velostream.stream_partitions p
                        WHERE p.stream = s AND p.log_table IS NOT NULL LOOP
        IF kind = 'kafka' THEN
          EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', log_table) INTO pending;
        ELSE
          EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE pg_visible_in_snapshot(_velostream_xid, $1))',
                         log_table) INTO pending USING snap;
        END IF;
        EXIT WHEN pending;
      END LOOP;
    END IF;
    -- a view set aside after a failed flush has not counted what it consumed
    IF NOT pending THEN
      pending := EXISTS (SELECT 1 FROM velostream.view_partition_stats ps
                          WHERE ps.view = wait.view AND ps.status = 'failing')
                 OR EXISTS (SELECT 1 FROM velostream.views v WHERE v.view = wait.view AND v.restoring);
    END IF;
    IF NOT pending THEN RETURN true; END IF;
    IF clock_timestamp() > deadline THEN RETURN false; END IF;
    PERFORM pg_sleep(0.02);
  END LOOP;
END $$;
