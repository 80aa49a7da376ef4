-- Kafka servers, user mappings and streams: options are validated at CREATE
-- time (librdkafka checks its own properties); no broker is needed here.
CREATE EXTENSION velostream;
CREATE SERVER kafka FOREIGN DATA WRAPPER velostream OPTIONS (brokers '127.0.0.1:1', "socket.timeout.ms" '1000');
CREATE SERVER bad1 FOREIGN DATA WRAPPER velostream OPTIONS (brokers '127.0.0.1:1', "no.such.property" 'x');
CREATE SERVER bad2 FOREIGN DATA WRAPPER velostream OPTIONS (brokers '127.0.0.1:1', "security.protocol" 'carrier-pigeon');

-- Secrets go in user mappings, hidden from other users as in postgres_fdw.
CREATE USER MAPPING FOR PUBLIC SERVER kafka OPTIONS ("sasl.username" 'app', "sasl.password" 'secret');
CREATE USER MAPPING FOR CURRENT_USER SERVER kafka OPTIONS ("no.such.property" 'x');
CREATE ROLE kafka_reader;
SET ROLE kafka_reader;
SELECT srvname, umoptions FROM pg_user_mappings WHERE srvname = 'kafka';
RESET ROLE;
SELECT srvname, umoptions FROM pg_user_mappings WHERE srvname = 'kafka';

-- The contract of issue 4, verbatim.
CREATE FOREIGN TABLE flights_k (ts timestamptz, delay int, distance int, origin text, destination text)
  SERVER kafka OPTIONS (topic 'flights', format 'csv', start_offset 'earliest');
CREATE MATERIALIZED VIEW k_by_route WITH (velostream.continuous) AS
  SELECT origin, destination, tumble(ts, interval '1 day') AS day, count(*) AS n, sum(delay) AS total_delay
  FROM flights_k GROUP BY origin, destination, tumble(ts, interval '1 day');
SELECT stream, kind, partitions FROM velostream.streams;
\d k_by_route

-- Metadata columns, JSON.
CREATE FOREIGN TABLE events_k (kind text, amount numeric, _partition int, _offset bigint, _timestamp timestamptz, _key text)
  SERVER kafka OPTIONS (topic 'events', format 'json');

-- Errors.
CREATE FOREIGN TABLE no_topic (x int) SERVER kafka;
CREATE FOREIGN TABLE bad_format (x int) SERVER kafka OPTIONS (topic 't', format 'xml');
CREATE FOREIGN TABLE bad_start (x int) SERVER kafka OPTIONS (topic 't', start_offset 'yesterday');
CREATE FOREIGN TABLE bad_meta (x int, _offset text) SERVER kafka OPTIONS (topic 't');
CREATE FOREIGN TABLE bad_type (x jsonb) SERVER kafka OPTIONS (topic 't');
INSERT INTO flights_k VALUES (now(), 1, 1, 'A', 'B');
SELECT * FROM flights_k;

-- Pause and resume consumption.
SELECT velostream.pause('flights_k');
SELECT stream, paused FROM velostream.streams WHERE stream = 'flights_k'::regclass;
SELECT velostream.resume('flights_k');
SELECT stream, paused FROM velostream.streams WHERE stream = 'flights_k'::regclass;

-- Event time on a Kafka stream (issue 11's DDL, verbatim).
CREATE FOREIGN TABLE fk (ts timestamptz, delay int, distance int, origin text, destination text)
  SERVER kafka OPTIONS (topic 'flights', format 'csv', event_time 'ts', watermark_delay '30 minutes');
SELECT ftoptions FROM pg_foreign_table WHERE ftrelid = 'fk'::regclass;
DROP FOREIGN TABLE fk;

DROP FOREIGN TABLE flights_k CASCADE;
SELECT count(*) AS kafka_streams_left FROM velostream.streams WHERE kind = 'kafka';
DROP EXTENSION velostream CASCADE;
DROP ROLE kafka_reader;
