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

-- Event time (issue 11). A stream's OPTIONS (event_time 'column',
-- watermark_delay, idle_timeout) make its partitions track the largest event
-- time they applied (max_event_time) and when they last received rows
-- (last_input_at), committed with what they consumed; a view's watermark is
-- the minimum over the partitions of max_event_time - watermark_delay,
-- leaving out partitions idle for longer than idle_timeout
-- (velostream.watermark). Rows behind a view's watermark minus its
-- allowed_lateness are late: not counted, counted in late_events, and dead
-- letters (reason 'late: ...') unless the view's late = 'drop'.
ALTER TABLE velostream.stream_partitions ADD COLUMN max_event_time timestamptz, ADD COLUMN last_input_at timestamptz;
ALTER TABLE velostream.views
  ADD COLUMN allowed_lateness interval NOT NULL DEFAULT '0',
  ADD COLUMN late text NOT NULL DEFAULT 'dead_letter' CHECK (late IN ('dead_letter', 'drop'));
ALTER TABLE velostream.view_partition_stats ADD COLUMN late_events bigint NOT NULL DEFAULT 0;

-- C: the watermark of stream `stream`'s views (partition NULL), or of one of
-- its partitions (max_event_time - watermark_delay); NULL before any event
-- or for a stream without event_time.
CREATE FUNCTION velostream.watermark(stream regclass, partition int DEFAULT NULL) RETURNS timestamptz
  AS 'MODULE_PATHNAME', 'velostream_watermark' LANGUAGE C STABLE;

-- Dump and restore carry the views' event-time options, the partitions'
-- event times and the late-event counts.
CREATE OR REPLACE FUNCTION velostream._dump_rows() RETURNS SETOF velostream.dump_data
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  lp record;
  vw record;
BEGIN
  RETURN QUERY
    SELECT 'stream', s.stream, NULL::int, NULL::bigint, NULL::xid8,
           jsonb_build_object('paused', s.paused, 'partitions', s.partitions, 'kind', s.kind,
                              'route_column', (SELECT a.attname FROM pg_attribute a
                                                WHERE a.attrelid = s.stream AND a.attnum = s.route_column),
                              'created_at', s.created_at),
           NULL::bytea
      FROM velostream.streams s ORDER BY s.stream;
  RETURN QUERY
    SELECT 'view', v.view, NULL::int, NULL::bigint, NULL::xid8,
           jsonb_build_object('query_sql', v.query_sql, 'definition', v.definition, 'owned', v.owned,
                              'start_snapshot', v.start_snapshot::text, 'created_at', v.created_at,
                              'allowed_lateness', v.allowed_lateness, 'late', v.late),
           NULL::bytea
      FROM velostream.views v ORDER BY v.view;
  RETURN QUERY
    SELECT 'watermark', p.stream, p.partition, NULL::bigint, NULL::xid8,
           jsonb_build_object('max_event_time', p.max_event_time, 'last_input_at', p.last_input_at), NULL::bytea
      FROM velostream.stream_partitions p WHERE p.max_event_time IS NOT NULL ORDER BY p.stream, p.partition;
  RETURN QUERY
    SELECT 'view_stats', s.view, s.partition, NULL::bigint, NULL::xid8,
           to_jsonb(s) - 'view' - 'partition', NULL::bytea
      FROM velostream.view_partition_stats s ORDER BY s.view, s.partition;
  RETURN QUERY
    SELECT 'pending', d.view, d.partition, d.rows_in, NULL::xid8, NULL::jsonb, d.data
      FROM velostream.pending_deltas d ORDER BY d.view, d.partition;
  FOR vw IN SELECT * FROM velostream.views WHERE state_table IS NOT NULL ORDER BY view LOOP
    IF vw.owned THEN
      RETURN QUERY EXECUTE format(
        'SELECT %L::text, %s::oid::regclass, partition, id, NULL::xid8, NULL::jsonb, data FROM %s ORDER BY id',
        'changelog', vw.view::oid, vw.state_table);
    ELSE
      RETURN QUERY EXECUTE format(
        'SELECT %L::text, %s::oid::regclass, NULL::int, NULL::bigint, NULL::xid8, to_jsonb(t), NULL::bytea FROM %s t',
        'state', vw.view::oid, vw.state_table);
    END IF;
  END LOOP;
  FOR lp IN SELECT * FROM velostream.stream_partitions WHERE log_table IS NOT NULL ORDER BY stream, partition LOOP
    RETURN QUERY EXECUTE format(
      'SELECT %L::text, %s::oid::regclass, %s, rows::bigint, _velostream_xid, NULL::jsonb, batch FROM %s',
      'log', lp.stream::oid, lp.partition, lp.log_table);
  END LOOP;
  RETURN QUERY
    SELECT 'kafka_offset', k.stream, k.kafka_partition, NULL::bigint, NULL::xid8,
           to_jsonb(k) - 'stream' - 'kafka_partition', NULL::bytea
      FROM velostream.kafka_offsets k ORDER BY k.stream, k.kafka_partition;
  RETURN QUERY
    SELECT 'error', (SELECT c.oid::regclass FROM pg_class c WHERE c.oid = e.stream), e.partition, NULL::bigint,
           NULL::xid8, to_jsonb(e) - 'id' - 'stream', NULL::bytea
      FROM velostream.errors e ORDER BY e.id;
END $$;
REVOKE EXECUTE ON FUNCTION velostream._dump_rows() FROM PUBLIC;

CREATE OR REPLACE FUNCTION velostream._restore_row() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  i jsonb := NEW.info;
  t regclass;
  route int2;
BEGIN
  IF NEW.kind <> 'error' AND NEW.object IS NULL THEN
    RAISE EXCEPTION 'velostream: a dumped % row names no object', NEW.kind;
  END IF;
  CASE NEW.kind
  WHEN 'stream' THEN
    -- its CREATE FOREIGN TABLE, restored before, created its logs and rows
    IF NOT EXISTS (SELECT 1 FROM velostream.streams s WHERE s.stream = NEW.object) THEN
      RAISE EXCEPTION '"%" is not a stream in the database being restored', NEW.object
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'Restore the stream''s foreign table before the data of velostream.dump_data.';
    END IF;
    IF (SELECT s.partitions FROM velostream.streams s WHERE s.stream = NEW.object) <> (i->>'partitions')::int THEN
      RAISE EXCEPTION 'stream "%" has % partitions, the dump %', NEW.object,
        (SELECT s.partitions FROM velostream.streams s WHERE s.stream = NEW.object), i->>'partitions'
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'Restore into a server whose velostream.partitions is the dumped server''s, or give the stream OPTIONS (partitions).';
    END IF;
    -- Its workers started when the restored CREATE FOREIGN TABLE committed:
    -- a Kafka stream's may have consumed (no views yet), committed offsets
    -- and written dead letters. Hold every worker off until this restore
    -- commits, and drop what they wrote: the dumped offsets and dead letters
    -- that follow replace it, and a worker whose offsets moved restarts from
    -- the restored ones (compare-and-set), re-reading what it read before.
    PERFORM velostream._hold_workers();
    DELETE FROM velostream.kafka_offsets k WHERE k.stream = NEW.object;
    DELETE FROM velostream.errors e WHERE e.stream = NEW.object;
    SELECT a.attnum INTO route FROM pg_attribute a
     WHERE a.attrelid = NEW.object AND a.attname = i->>'route_column' AND NOT a.attisdropped;
    UPDATE velostream.streams s SET paused = (i->>'paused')::boolean, route_column = route,
                                    created_at = (i->>'created_at')::timestamptz
     WHERE s.stream = NEW.object;
  WHEN 'view' THEN
    PERFORM velostream._restore_view(NEW.object, i->>'query_sql', (i->>'owned')::boolean, i->>'definition',
                                     (i->>'start_snapshot')::pg_snapshot,
                                     (i->>'created_at')::timestamptz);
    UPDATE velostream.views v SET allowed_lateness = coalesce((i->>'allowed_lateness')::interval, '0'),
                                  late = coalesce(i->>'late', 'dead_letter')
     WHERE v.view = NEW.object;
  WHEN 'watermark' THEN
    UPDATE velostream.stream_partitions p SET max_event_time = (i->>'max_event_time')::timestamptz,
                                              last_input_at = (i->>'last_input_at')::timestamptz
     WHERE p.stream = NEW.object AND p.partition = NEW.partition;
  WHEN 'view_stats' THEN
    INSERT INTO velostream.view_partition_stats AS s
      SELECT NEW.object, NEW.partition, r.events_in, r.events_selected, r.groups_upserted, r.flushes, r.last_flush,
             r.status, r.last_error, r.sqlstate, r.error_at, r.failures, r.next_retry, coalesce(r.late_events, 0)
        FROM jsonb_populate_record(NULL::velostream.view_partition_stats, i) r
    ON CONFLICT (view, partition) DO UPDATE SET
      events_in = excluded.events_in, events_selected = excluded.events_selected,
      groups_upserted = excluded.groups_upserted, flushes = excluded.flushes, last_flush = excluded.last_flush,
      status = excluded.status, last_error = excluded.last_error, sqlstate = excluded.sqlstate,
      error_at = excluded.error_at, failures = excluded.failures, next_retry = excluded.next_retry,
      late_events = excluded.late_events;
  WHEN 'pending' THEN
    INSERT INTO velostream.pending_deltas (view, partition, rows_in, data)
      VALUES (NEW.object, NEW.partition, NEW.seq, NEW.data)
    ON CONFLICT (view, partition) DO UPDATE SET rows_in = excluded.rows_in, data = excluded.data;
  WHEN 'changelog', 'state' THEN
    SELECT v.state_table INTO t FROM velostream.views v WHERE v.view = NEW.object;
    IF t IS NULL THEN
      RAISE EXCEPTION 'velostream: the dump holds % rows of "%", which has no state table here', NEW.kind, NEW.object;
    END IF;
    IF NEW.kind = 'changelog' THEN
      EXECUTE format('INSERT INTO %s (id, partition, data) OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3)', t)
        USING NEW.seq, NEW.partition, NEW.data;
      PERFORM setval(pg_get_serial_sequence(t::text, 'id'), NEW.seq);
    ELSE
      EXECUTE format('INSERT INTO %s SELECT * FROM jsonb_populate_record(NULL::%s, $1)', t, t) USING i;
    END IF;
  WHEN 'log' THEN
    SELECT p.log_table INTO t FROM velostream.stream_partitions p
     WHERE p.stream = NEW.object AND p.partition = NEW.partition;
    IF t IS NULL THEN
      RAISE EXCEPTION 'velostream: the dump holds log batches of "%" partition %, which has no log here',
        NEW.object, NEW.partition;
    END IF;
    EXECUTE format('INSERT INTO %s (_velostream_xid, rows, batch, restored_xid) '
                   'VALUES (pg_current_xact_id(), $1, $2, $3)', t)
      USING NEW.seq::int, NEW.data, NEW.xid;
  WHEN 'kafka_offset' THEN
    INSERT INTO velostream.kafka_offsets AS k
      SELECT NEW.object, NEW.partition, r.worker, r.next_offset, r.high_watermark, r.messages, r.dead_letters,
             r.rate, r.last_error, r.updated_at, r.watermark_checked_at, r.lost
        FROM jsonb_populate_record(NULL::velostream.kafka_offsets, i) r
    ON CONFLICT (stream, kafka_partition) DO UPDATE SET
      worker = excluded.worker, next_offset = excluded.next_offset, high_watermark = excluded.high_watermark,
      messages = excluded.messages, dead_letters = excluded.dead_letters, rate = excluded.rate,
      last_error = excluded.last_error, updated_at = excluded.updated_at,
      watermark_checked_at = excluded.watermark_checked_at, lost = excluded.lost;
  WHEN 'error' THEN
    INSERT INTO velostream.errors (stream, partition, "offset", error_time, payload, reason, last_offset)
      SELECT NEW.object, NEW.partition, r."offset", r.error_time, r.payload, r.reason, r.last_offset
        FROM jsonb_populate_record(NULL::velostream.errors, i) r;
  ELSE
    RAISE EXCEPTION 'velostream: unknown dumped row kind "%"', NEW.kind;
  END CASE;
  RETURN NULL;
END $$;

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
         s.next_retry,
         coalesce(s.late_events, 0) AS late_events,
         velostream.watermark(v.stream, p.partition) AS partition_watermark,
         velostream.watermark(v.stream) AS watermark
    FROM velostream.views v
    JOIN velostream.streams st ON st.stream = v.stream
    JOIN velostream.stream_partitions p ON p.stream = v.stream
    LEFT JOIN velostream.view_partition_stats s ON s.view = v.view AND s.partition = p.partition;
COMMENT ON VIEW velostream.stats IS
  'per continuous view and partition: status (running; failing: set aside after a failed flush; restoring: restored by pg_restore, waiting for its unique index), rows read, rows selected, groups upserted, flushes, last flush, backlog (rows not consumed yet: in the partition''s log, plus a Kafka stream''s consumer lag), the last error with its SQLSTATE, consecutive failures, the next retry; with an event time: late events (not counted, see velostream.errors), the partition''s watermark and the view''s';
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

-- Window functions of issue 11, as real functions so that a view's query
-- also runs as a batch query (continuous views do not accept hop, cumulate
-- and session yet). Windows are aligned on the Unix epoch, as tumble's.
-- hop(ts, slide, size): every hopping window of length `size`, one starting
-- every `slide`, that holds ts (window_start <= ts < window_end): size / slide
-- windows when slide divides size.
CREATE FUNCTION @extschema@.hop(ts timestamptz, slide interval, size interval,
                                OUT window_start timestamptz, OUT window_end timestamptz)
  RETURNS SETOF record LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE ROWS 4 AS $$
BEGIN
  IF slide <= interval '0' OR size <= interval '0' THEN
    RAISE EXCEPTION 'hop() slide and size must be greater than zero' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF extract(month FROM slide) <> 0 OR extract(year FROM slide) <> 0
     OR extract(month FROM size) <> 0 OR extract(year FROM size) <> 0 THEN
    RAISE EXCEPTION 'hop() slide and size must not contain months or years'
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Give them in days, hours, minutes or seconds.';
  END IF;
  RETURN QUERY
    SELECT s, s + size
      FROM generate_series(date_bin(slide, ts - size, '1970-01-01 00:00:00+00') + slide,
                           date_bin(slide, ts, '1970-01-01 00:00:00+00'), slide) s
     WHERE ts < s + size;
END $$;

-- cumulate(ts, step, size): Flink's cumulative windows. Each window of length
-- `size` (aligned as tumble's) is reported growing by `step`: the windows
-- (start, start + step), (start, start + 2 step), ..., (start, start + size)
-- that hold ts. `step` must divide `size`.
CREATE FUNCTION @extschema@.cumulate(ts timestamptz, step interval, size interval,
                                     OUT window_start timestamptz, OUT window_end timestamptz)
  RETURNS SETOF record LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE ROWS 4 AS $$
DECLARE
  start timestamptz;
BEGIN
  IF step <= interval '0' OR size <= interval '0' THEN
    RAISE EXCEPTION 'cumulate() step and size must be greater than zero' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF extract(month FROM step) <> 0 OR extract(year FROM step) <> 0
     OR extract(month FROM size) <> 0 OR extract(year FROM size) <> 0 THEN
    RAISE EXCEPTION 'cumulate() step and size must not contain months or years'
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Give them in days, hours, minutes or seconds.';
  END IF;
  IF extract(epoch FROM size)::numeric % extract(epoch FROM step)::numeric <> 0 THEN
    RAISE EXCEPTION 'cumulate() step % does not divide size %', step, size USING ERRCODE = 'invalid_parameter_value';
  END IF;
  start := date_bin(size, ts, '1970-01-01 00:00:00+00');
  RETURN QUERY
    SELECT start, e FROM generate_series(start + step, start + size, step) e WHERE ts < e;
END $$;

-- session(ts, gap): the start of ts's session of a key (events at most `gap`
-- apart). Only a continuous view can compute it (a session depends on the
-- other events of its key); anywhere else it raises.
CREATE FUNCTION @extschema@.session(ts timestamptz, gap interval) RETURNS timestamptz
  LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
  RAISE EXCEPTION 'session() is only computed by continuous views'
    USING ERRCODE = 'feature_not_supported',
          DETAIL = 'A session''s start depends on the other events of its key, not on one row.',
          HINT = 'In a batch query, number the sessions with lag() and a running sum: sum((ts - lag(ts) OVER w > gap)::int) OVER w.';
END $$;
