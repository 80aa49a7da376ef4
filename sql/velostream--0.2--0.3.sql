-- velostream 0.2 -> 0.3: pg_dump / pg_restore.
-- CREATE EXTENSION velostream runs velostream--0.1.sql and the upgrade
-- scripts after it, so every install goes through the path existing
-- databases take.
\echo Use "ALTER EXTENSION velostream UPDATE TO '0.3'" to load this file. \quit

-- How a database with streams and continuous views survives pg_dump and
-- pg_restore:
--  * Streams (foreign tables) and result tables (ordinary tables, with their
--    rows) are dumped as the user's objects. Restoring a stream's CREATE
--    FOREIGN TABLE creates its partition logs and catalog rows, as always.
--  * The tables velostream creates behind them (partition logs, view states)
--    are members of the extension, so pg_dump leaves them out; the sql_drop
--    event trigger removes them with their stream or view.
--  * Everything else (catalog rows, unconsumed log batches, view states and
--    changelogs, Kafka offsets, pending deltas, statistics, dead letters) is
--    dumped as the data of the extension configuration table
--    velostream.dump_data, which is always empty: its dump filter appends the
--    rows velostream._dump_rows() computes in pg_dump's snapshot. Restoring
--    them (COPY into velostream.dump_data, one statement) runs a trigger that
--    registers each view again from its SQL text (not from a parse tree,
--    which does not survive a major version) and puts every row back under
--    the new OIDs; nothing is stored in velostream.dump_data itself.
--  * A restored view waits (its rows counted, not written) until its unique
--    index, created in pg_restore's post-data section, exists.

-- Continuous views: the SELECT as SQL text with every name schema-qualified
-- (what a restore analyses again), and restore bookkeeping.
CREATE FUNCTION velostream._query_sql(query_tree text) RETURNS text
  AS 'MODULE_PATHNAME', 'velostream_query_sql_fn' LANGUAGE C STRICT;
ALTER TABLE velostream.views
  ADD COLUMN query_sql text,
  -- a restored view: the start snapshot it had in the dumped database, which
  -- decides which of the restored, not yet consumed log batches it counts
  ADD COLUMN restored_snapshot pg_snapshot,
  -- a restored view whose result table has no unique index yet
  ADD COLUMN restoring boolean NOT NULL DEFAULT false;
UPDATE velostream.views SET query_sql = velostream._query_sql(query_tree);
ALTER TABLE velostream.views ALTER COLUMN query_sql SET NOT NULL;
COMMENT ON COLUMN velostream.views.query_sql IS 'the view''s SELECT, names schema-qualified (pg_dump / pg_restore)';

-- Tables velostream creates behind streams and views become members of the
-- extension instead of internal dependents of their stream or view (a
-- member reached by DROP ... CASCADE through an internal dependency would
-- drop the whole extension). C: removes the internal dependency, records the
-- membership.
CREATE FUNCTION velostream._make_member(rel regclass) RETURNS void
  AS 'MODULE_PATHNAME', 'velostream_make_member_sql' LANGUAGE C STRICT;
-- C: drops a table velostream created behind a stream or view (it must be a
-- member of the extension in schema velostream; nothing else is dropped).
CREATE FUNCTION velostream._drop_member(rel oid) RETURNS void
  AS 'MODULE_PATHNAME', 'velostream_drop_member' LANGUAGE C STRICT;
REVOKE EXECUTE ON FUNCTION velostream._make_member(regclass), velostream._drop_member(oid) FROM PUBLIC;

-- Log batches carried by a dump keep the id of the transaction that wrote
-- them in the dumped database, to be counted by exactly the restored views
-- that had not counted them.
DO $$
DECLARE t regclass;
BEGIN
  FOR t IN SELECT log_table FROM velostream.stream_partitions WHERE log_table IS NOT NULL LOOP
    EXECUTE format('ALTER TABLE %s ADD COLUMN IF NOT EXISTS restored_xid xid8', t);  -- made by 0.3 already?
    PERFORM velostream._make_member(t);
  END LOOP;
  FOR t IN SELECT state_table FROM velostream.views WHERE state_table IS NOT NULL LOOP
    PERFORM velostream._make_member(t);
  END LOOP;
END $$;

-- Drops the internal tables of dropped streams and views with them.
CREATE OR REPLACE FUNCTION velostream._on_sql_drop() RETURNS event_trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  dropped oid[];
  t oid;
BEGIN
  IF to_regclass('velostream.views') IS NULL THEN RETURN; END IF;
  dropped := ARRAY(SELECT objid FROM pg_event_trigger_dropped_objects()
                    WHERE classid = 'pg_class'::regclass AND objsubid = 0);
  IF cardinality(dropped) = 0 THEN RETURN; END IF;
  FOR t IN SELECT v.state_table::oid FROM velostream.views v
            WHERE v.state_table IS NOT NULL AND v.view::oid = ANY (dropped)
           UNION ALL
           SELECT p.log_table::oid FROM velostream.stream_partitions p
            WHERE p.log_table IS NOT NULL AND p.stream::oid = ANY (dropped) LOOP
    PERFORM velostream._drop_member(t);
  END LOOP;
  DELETE FROM velostream.views WHERE view::oid = ANY (dropped);
  DELETE FROM velostream.streams WHERE stream::oid = ANY (dropped);
END $$;

-- The dump. One row per piece of state, `object` the stream or view
-- (result table) it belongs to, dumped by name:
--   kind          partition     seq          xid           info (jsonb)            data
--   stream        -             -            -             paused, route column    -
--   view          -             -            -             SQL, flags, snapshot    -
--   view_stats    partition     -            -             counters                -
--   pending       partition     rows         -             -                       engine delta
--   changelog     partition     id           -             -                       engine state
--   state         -             -            -             partial-state row       -
--   log           partition     rows         writer's xid  -                       log batch
-- A log batch restored and dumped again before it was consumed carries the
-- restoring transaction's id: the views restored with it count it.
--   kafka_offset  topic part.   -            -             offsets, counters       -
--   error         partition     -            -             the dead letter         -
CREATE TABLE velostream.dump_data (
  kind      text NOT NULL,
  object    regclass,
  partition int,
  seq       bigint,
  xid       xid8,
  info      jsonb,
  data      bytea
);
COMMENT ON TABLE velostream.dump_data IS
  'always empty: what pg_dump writes as its data is computed by velostream._dump_rows(); pg_restore''s COPY into it restores it';

CREATE FUNCTION velostream._dump_rows() RETURNS SETOF velostream.dump_data
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
                              'start_snapshot', v.start_snapshot::text, 'created_at', v.created_at),
           NULL::bytea
      FROM velostream.views v ORDER BY v.view;
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

-- velostream.stats: status 'restoring' for a restored view waiting for its unique index.
DROP VIEW velostream.stats;
CREATE VIEW velostream.stats AS
  SELECT v.view, v.stream, p.partition,
         CASE WHEN v.restoring THEN 'restoring' ELSE coalesce(s.status, 'running') END AS status,
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
  'per continuous view and partition: status (running; failing: set aside after a failed flush; restoring: restored by pg_restore, waiting for its unique index), rows read, rows selected, groups upserted, flushes, last flush, backlog (rows of a local stream not consumed yet, or Kafka consumer lag), the last error with its SQLSTATE, consecutive failures and the next retry';

GRANT SELECT ON velostream.stats TO PUBLIC;

-- wait(): a restored view waiting for its unique index is not caught up either.
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
                          WHERE ps.view = wait.view AND ps.status = 'failing')
                 OR EXISTS (SELECT 1 FROM velostream.views v WHERE v.view = wait.view AND v.restoring);
    END IF;
    IF NOT pending THEN RETURN true; END IF;
    IF clock_timestamp() > deadline THEN RETURN false; END IF;
    PERFORM pg_sleep(0.02);
  END LOOP;
END $$;

-- C: waits for running worker cycles and holds off new ones until the
-- current transaction ends (the extension's lock in SHARE mode, which every
-- cycle takes in ROW EXCLUSIVE mode first).
CREATE FUNCTION velostream._hold_workers() RETURNS void
  AS 'MODULE_PATHNAME', 'velostream_hold_workers' LANGUAGE C STRICT;
REVOKE EXECUTE ON FUNCTION velostream._hold_workers() FROM PUBLIC;

-- C: registers continuous view `view` (an existing table: the restored
-- result table) again from its SQL text: analyses and checks the query,
-- creates its state table, inserts its catalog row (restoring = true).
CREATE FUNCTION velostream._restore_view(view regclass, query_sql text, owned boolean, definition text,
                                         restored_snapshot pg_snapshot, created_at timestamptz) RETURNS void
  AS 'MODULE_PATHNAME', 'velostream_restore_view' LANGUAGE C;
REVOKE EXECUTE ON FUNCTION velostream._restore_view(regclass, text, boolean, text, pg_snapshot, timestamptz)
  FROM PUBLIC;

-- Restores one dumped row (pg_restore's COPY into velostream.dump_data).
CREATE FUNCTION velostream._restore_row() RETURNS trigger
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
  WHEN 'view_stats' THEN
    INSERT INTO velostream.view_partition_stats AS s
      SELECT NEW.object, NEW.partition, r.events_in, r.events_selected, r.groups_upserted, r.flushes, r.last_flush,
             r.status, r.last_error, r.sqlstate, r.error_at, r.failures, r.next_retry
        FROM jsonb_populate_record(NULL::velostream.view_partition_stats, i) r
    ON CONFLICT (view, partition) DO UPDATE SET
      events_in = excluded.events_in, events_selected = excluded.events_selected,
      groups_upserted = excluded.groups_upserted, flushes = excluded.flushes, last_flush = excluded.last_flush,
      status = excluded.status, last_error = excluded.last_error, sqlstate = excluded.sqlstate,
      error_at = excluded.error_at, failures = excluded.failures, next_retry = excluded.next_retry;
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
CREATE TRIGGER restore_row BEFORE INSERT ON velostream.dump_data
  FOR EACH ROW EXECUTE FUNCTION velostream._restore_row();

-- pg_dump writes the data of a configuration table with
--   COPY (SELECT <columns> FROM velostream.dump_data <filter>) TO stdout
-- (or a cursor over SELECT ... FROM ONLY ... <filter> with --inserts); the
-- filter appends the computed rows to the table's (none).
SELECT pg_catalog.pg_extension_config_dump('velostream.dump_data',
  'WHERE false UNION ALL SELECT * FROM velostream._dump_rows()');
