-- DDL that would lose rows or break a worker is refused with a clear error
-- and hint (issue 8); failure-isolation objects in the catalog.
CREATE EXTENSION velostream;
SELECT extversion FROM pg_extension WHERE extname = 'velostream';
CREATE FOREIGN TABLE s (k int, v int) SERVER velostream OPTIONS (partitions '2');

-- The first view of a stream in a transaction that has written to it.
BEGIN;
INSERT INTO s SELECT g % 10, 1 FROM generate_series(1, 100) g;
CREATE MATERIALIZED VIEW vk WITH (velostream.continuous) AS SELECT k, count(*) AS n FROM s GROUP BY k;
ROLLBACK;
CREATE MATERIALIZED VIEW vk WITH (velostream.continuous) AS SELECT k, count(*) AS n, sum(v) AS total FROM s GROUP BY k;

-- A stream's columns: also through ALTER TABLE, which accepts foreign tables.
ALTER TABLE s ADD COLUMN x int;
ALTER FOREIGN TABLE s ADD COLUMN x int;
ALTER TABLE s DROP COLUMN v;
ALTER FOREIGN TABLE s ALTER COLUMN v TYPE bigint;
ALTER TABLE s RENAME COLUMN v TO w;
ALTER FOREIGN TABLE s RENAME v TO w;
-- Owner and options may change; so may the stream's name.
ALTER FOREIGN TABLE s OWNER TO CURRENT_USER;
ALTER TABLE s RENAME TO s2;
ALTER TABLE s2 RENAME TO s;
-- ... but not its partition count: its logs, workers and views were set up for it.
ALTER FOREIGN TABLE s OPTIONS (SET partitions '4');
ALTER FOREIGN TABLE s OPTIONS (DROP partitions);
SELECT partitions FROM velostream.streams WHERE stream = 's'::regclass;

-- A continuous view's own columns.
ALTER TABLE vk DROP COLUMN total;
ALTER TABLE vk ALTER COLUMN n TYPE numeric;
ALTER TABLE vk RENAME COLUMN n TO flights;
-- Columns of the user's own, and the view's name, are the user's.
ALTER TABLE vk ADD COLUMN note text;
ALTER TABLE vk RENAME COLUMN note TO remark;
ALTER TABLE vk ALTER COLUMN remark TYPE varchar(10);
ALTER TABLE vk DROP COLUMN remark;
ALTER TABLE vk RENAME TO vk2;
ALTER TABLE vk2 RENAME TO vk;

-- velostream.retry() takes continuous views only.
SELECT velostream.retry('s');
SELECT velostream.retry('vk');

-- What a set-aside view shows (columns of velostream.stats and kafka_stats).
SELECT attname FROM pg_attribute WHERE attrelid = 'velostream.stats'::regclass AND attnum > 0 ORDER BY attnum;
SELECT attname FROM pg_attribute WHERE attrelid = 'velostream.kafka_stats'::regclass AND attnum > 0 ORDER BY attnum;
SELECT count(*) FROM velostream.pending_deltas;

SET client_min_messages = warning;
DROP EXTENSION velostream CASCADE;
