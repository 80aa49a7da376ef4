-- velostream 0.6 -> 0.7: exchanged groups (issue 11).
--
-- A continuous view that needs each of its groups in one worker (emit
-- final, retention, session windows) but groups by another column than the
-- stream routes its rows by owns its groups all the same: each partition
-- worker aggregates the rows it reads and sends the groups another partition
-- owns (by the hash of the group's key) to that partition's log, as a batch
-- of encoded groups tagged with the view (exchange_view), in the transaction
-- that consumed their rows; the owner merges them into its delta.
\echo Use "ALTER EXTENSION velostream UPDATE TO '0.7'" to load this file. \quit

SELECT velostream._hold_workers();

ALTER TABLE velostream.views ADD COLUMN exchange boolean NOT NULL DEFAULT false;
-- A view's velostream.idle_timeout: its stream's watermark uses the shortest
-- of the stream's idle timeout and its views'.
ALTER TABLE velostream.views ADD COLUMN idle_timeout interval;
COMMENT ON COLUMN velostream.views.exchange IS
  'the view owns its groups by exchanging them between partitions (a group''s owner: the hash of its key)';

DO $$
DECLARE
  t regclass;
BEGIN
  FOR t IN SELECT p.log_table FROM velostream.stream_partitions p WHERE p.log_table IS NOT NULL
            ORDER BY p.stream, p.partition LOOP
    EXECUTE format('ALTER TABLE %s ADD COLUMN IF NOT EXISTS exchange_view oid', t);
  END LOOP;
END $$;

-- C: registers a restored continuous view again; exchange: it exchanged its
-- groups in the dumped database.
DROP FUNCTION velostream._restore_view(regclass, text, boolean, text, pg_snapshot, timestamptz);
CREATE FUNCTION velostream._restore_view(view regclass, query_sql text, owned boolean, definition text,
                                         restored_snapshot pg_snapshot, created_at timestamptz,
                                         exchange boolean DEFAULT false) RETURNS void
  AS 'MODULE_PATHNAME', 'velostream_restore_view' LANGUAGE C;
REVOKE EXECUTE ON FUNCTION velostream._restore_view(regclass, text, boolean, text, pg_snapshot, timestamptz, boolean)
  FROM PUBLIC;

-- Dump and restore carry the views' exchange and the exchanged batches'
-- views.
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
                              'allowed_lateness', v.allowed_lateness, 'late', v.late,
                              'emit', v.emit, 'retention', v.retention, 'exchange', v.exchange,
                              'idle_timeout', v.idle_timeout),
           NULL::bytea
      FROM velostream.views v ORDER BY v.view;
  RETURN QUERY
    SELECT 'watermark', p.stream, p.partition, NULL::bigint, NULL::xid8,
           jsonb_build_object('max_event_time', p.max_event_time, 'last_input_at', p.last_input_at,
                              'source_watermark', p.source_watermark, 'watermark', p.watermark), NULL::bytea
      FROM velostream.stream_partitions p
     WHERE p.max_event_time IS NOT NULL OR p.watermark IS NOT NULL OR p.source_watermark IS NOT NULL
     ORDER BY p.stream, p.partition;
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
        'SELECT %L::text, %s::oid::regclass, partition, id, NULL::xid8, '
        'CASE WHEN key IS NOT NULL THEN jsonb_build_object(%L, encode(key, %L)) END, data FROM %s ORDER BY id',
        'changelog', vw.view::oid, 'key', 'hex', vw.state_table);
    ELSE
      RETURN QUERY EXECUTE format(
        'SELECT %L::text, %s::oid::regclass, NULL::int, NULL::bigint, NULL::xid8, to_jsonb(t), NULL::bytea FROM %s t',
        'state', vw.view::oid, vw.state_table);
    END IF;
  END LOOP;
  -- (the exchanged groups of a view dropped since are nobody's)
  FOR lp IN SELECT * FROM velostream.stream_partitions WHERE log_table IS NOT NULL ORDER BY stream, partition LOOP
    RETURN QUERY EXECUTE format(
      'SELECT %L::text, %s::oid::regclass, %s, rows::bigint, _velostream_xid, '
      'jsonb_strip_nulls(jsonb_build_object(%L, watermark, %L, exchange_view::regclass::text)), batch FROM %s '
      'WHERE exchange_view IS NULL OR exchange_view IN (SELECT v.view FROM velostream.views v)',
      'log', lp.stream::oid, lp.partition, 'watermark', 'exchange_view', lp.log_table);
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
                                     (i->>'created_at')::timestamptz,
                                     coalesce((i->>'exchange')::boolean, false));
    UPDATE velostream.views v SET allowed_lateness = coalesce((i->>'allowed_lateness')::interval, '0'),
                                  late = coalesce(i->>'late', 'dead_letter'),
                                  emit = coalesce(i->>'emit', 'changes'),
                                  retention = (i->>'retention')::interval,
                                  idle_timeout = (i->>'idle_timeout')::interval
     WHERE v.view = NEW.object;
  WHEN 'watermark' THEN
    UPDATE velostream.stream_partitions p SET max_event_time = (i->>'max_event_time')::timestamptz,
                                              last_input_at = (i->>'last_input_at')::timestamptz,
                                              source_watermark = (i->>'source_watermark')::timestamptz,
                                              watermark = (i->>'watermark')::timestamptz
     WHERE p.stream = NEW.object AND p.partition = NEW.partition;
  WHEN 'view_stats' THEN
    INSERT INTO velostream.view_partition_stats AS s
      SELECT NEW.object, NEW.partition, r.events_in, r.events_selected, r.groups_upserted, r.flushes, r.last_flush,
             r.status, r.last_error, r.sqlstate, r.error_at, r.failures, r.next_retry, coalesce(r.late_events, 0),
             r.watermark
        FROM jsonb_populate_record(NULL::velostream.view_partition_stats, i) r
    ON CONFLICT (view, partition) DO UPDATE SET
      events_in = excluded.events_in, events_selected = excluded.events_selected,
      groups_upserted = excluded.groups_upserted, flushes = excluded.flushes, last_flush = excluded.last_flush,
      status = excluded.status, last_error = excluded.last_error, sqlstate = excluded.sqlstate,
      error_at = excluded.error_at, failures = excluded.failures, next_retry = excluded.next_retry,
      late_events = excluded.late_events, watermark = excluded.watermark;
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
      EXECUTE format('INSERT INTO %s (id, partition, data, key) OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4)', t)
        USING NEW.seq, NEW.partition, NEW.data, decode(i->>'key', 'hex');
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
    -- A batch of an exchanged view's groups names its view (restored before);
    -- one of a view not restored (a partial restore) is nobody's.
    IF i->>'exchange_view' IS NOT NULL AND NOT EXISTS (
         SELECT 1 FROM velostream.views v WHERE v.view = to_regclass(i->>'exchange_view')) THEN
      RETURN NULL;
    END IF;
    EXECUTE format('INSERT INTO %s (_velostream_xid, rows, batch, restored_xid, watermark, exchange_view) '
                   'VALUES (pg_current_xact_id(), $1, $2, $3, $4, $5)', t)
      USING NEW.seq::int, NEW.data, NEW.xid, (i->>'watermark')::timestamptz,
            to_regclass(i->>'exchange_view')::oid;
  WHEN 'kafka_offset' THEN
    INSERT INTO velostream.kafka_offsets AS k
      SELECT NEW.object, NEW.partition, r.worker, r.next_offset, r.high_watermark, r.messages, r.dead_letters,
             r.rate, r.last_error, r.updated_at, r.watermark_checked_at, r.lost, r.max_event_time, r.last_input_at
        FROM jsonb_populate_record(NULL::velostream.kafka_offsets, i) r
    ON CONFLICT (stream, kafka_partition) DO UPDATE SET
      worker = excluded.worker, next_offset = excluded.next_offset, high_watermark = excluded.high_watermark,
      messages = excluded.messages, dead_letters = excluded.dead_letters, rate = excluded.rate,
      last_error = excluded.last_error, updated_at = excluded.updated_at,
      watermark_checked_at = excluded.watermark_checked_at, lost = excluded.lost,
      max_event_time = excluded.max_event_time, last_input_at = excluded.last_input_at;
  WHEN 'error' THEN
    INSERT INTO velostream.errors (stream, partition, "offset", error_time, payload, reason, last_offset)
      SELECT NEW.object, NEW.partition, r."offset", r.error_time, r.payload, r.reason, r.last_offset
        FROM jsonb_populate_record(NULL::velostream.errors, i) r;
  ELSE
    RAISE EXCEPTION 'velostream: unknown dumped row kind "%"', NEW.kind;
  END CASE;
  RETURN NULL;
END $$;

-- velostream.wait: a local stream's rows committed before the call
-- consumed, then the view's groups its workers exchanged in the
-- transactions that consumed them (committed before a second snapshot,
-- taken once those rows are gone: a received group is never sent on); a
-- Kafka stream's logs empty (everything routed). Every log is checked in
-- one statement (one snapshot), so that a batch moving from one log to
-- another in between is not missed.
CREATE OR REPLACE FUNCTION velostream.wait(view regclass, timeout interval DEFAULT '60 seconds')
  RETURNS boolean LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  snap      pg_snapshot := pg_current_snapshot();
  t0        timestamptz := clock_timestamp();
  deadline  timestamptz := clock_timestamp() + timeout;
  kind      text;
  s         regclass;
  rows_sql  text;
  groups_sql text;
  phase     int := 1;
  pending   boolean;
BEGIN
  SELECT st.kind, st.stream INTO kind, s
    FROM velostream.views v JOIN velostream.streams st ON st.stream = v.stream WHERE v.view = wait.view;
  IF NOT FOUND THEN
    RAISE EXCEPTION '"%" is not a continuous view', view
      USING ERRCODE = 'wrong_object_type',
            HINT = 'Continuous views are listed in velostream.views.';
  END IF;
  SELECT 'SELECT ' || coalesce(string_agg(
           format(CASE WHEN kind = 'kafka' THEN 'EXISTS (SELECT 1 FROM %s)'
                       ELSE 'EXISTS (SELECT 1 FROM %s WHERE pg_visible_in_snapshot(_velostream_xid, $1))' END,
                  p.log_table), ' OR ' ORDER BY p.partition), 'false'),
         'SELECT ' || coalesce(string_agg(
           format('EXISTS (SELECT 1 FROM %s WHERE exchange_view = $2 AND pg_visible_in_snapshot(_velostream_xid, $1))',
                  p.log_table), ' OR ' ORDER BY p.partition), 'false')
    INTO rows_sql, groups_sql
    FROM velostream.stream_partitions p WHERE p.stream = s AND p.log_table IS NOT NULL;
  IF kind = 'kafka' OR NOT EXISTS (SELECT 1 FROM velostream.views v WHERE v.view = wait.view AND v.exchange) THEN
    phase := 0;  -- no second phase
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
      IF phase = 2 THEN
        EXECUTE groups_sql INTO pending USING snap, view::oid;
      ELSE
        EXECUTE rows_sql INTO pending USING snap, view::oid;
        IF NOT pending AND phase = 1 THEN
          phase := 2;
          snap := pg_current_snapshot();
          EXECUTE groups_sql INTO pending USING snap, view::oid;
        END IF;
      END IF;
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
