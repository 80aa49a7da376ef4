-- Streams and continuous views shared by the oracle and crash tests, with
-- the same SELECTs as batch queries over plain tables (views named oracle_*).
SET TIME ZONE 'UTC';
CREATE EXTENSION IF NOT EXISTS velostream;
CREATE FOREIGN TABLE flights (ts timestamptz, delay int, distance int, origin text, destination text)
  SERVER velostream;
CREATE TABLE flights_plain (ts timestamptz, delay int, distance int, origin text, destination text);

CREATE MATERIALIZED VIEW delay_by_origin WITH (velostream.continuous) AS
  SELECT origin, tumble(ts, interval '1 hour') AS window_start,
         count(*) AS flights, sum(delay) AS total_delay, avg(delay) AS avg_delay,
         min(delay) AS min_delay, max(delay) AS max_delay
  FROM flights
  GROUP BY origin, tumble(ts, interval '1 hour');
CREATE VIEW oracle_delay_by_origin AS
  SELECT origin, tumble(ts, interval '1 hour') AS window_start,
         count(*) AS flights, sum(delay) AS total_delay, avg(delay) AS avg_delay,
         min(delay) AS min_delay, max(delay) AS max_delay
  FROM flights_plain
  GROUP BY origin, tumble(ts, interval '1 hour');

CREATE MATERIALIZED VIEW long_delays WITH (velostream.continuous) AS
  SELECT origin, destination, count(*) AS n, sum(distance) AS miles
  FROM flights WHERE delay > 15 GROUP BY origin, destination;
CREATE VIEW oracle_long_delays AS
  SELECT origin, destination, count(*) AS n, sum(distance) AS miles
  FROM flights_plain WHERE delay > 15 GROUP BY origin, destination;

CREATE MATERIALIZED VIEW totals WITH (velostream.continuous) AS
  SELECT count(*) AS n, count(delay) AS with_delay, sum(delay) AS total_delay, avg(distance) AS avg_distance,
         min(ts) AS first_departure, max(ts) AS last_departure
  FROM flights;
CREATE VIEW oracle_totals AS
  SELECT count(*) AS n, count(delay) AS with_delay, sum(delay) AS total_delay, avg(distance) AS avg_distance,
         min(ts) AS first_departure, max(ts) AS last_departure
  FROM flights_plain;

CREATE MATERIALIZED VIEW west_coast_daily WITH (velostream.continuous) AS
  SELECT destination, tumble(ts, interval '1 day') AS day, count(*) AS n, max(distance) AS longest
  FROM flights
  WHERE origin IN ('SFO', 'LAX', 'SEA', 'SAN', 'PDX') AND (delay BETWEEN -10 AND 30 OR delay IS NULL)
        AND destination COLLATE "C" >= 'M' AND NOT distance < 300
  GROUP BY destination, tumble(ts, interval '1 day');
CREATE VIEW oracle_west_coast_daily AS
  SELECT destination, tumble(ts, interval '1 day') AS day, count(*) AS n, max(distance) AS longest
  FROM flights_plain
  WHERE origin IN ('SFO', 'LAX', 'SEA', 'SAN', 'PDX') AND (delay BETWEEN -10 AND 30 OR delay IS NULL)
        AND destination COLLATE "C" >= 'M' AND NOT distance < 300
  GROUP BY destination, tumble(ts, interval '1 day');

-- Aggregates PostgreSQL runs through its own aggregate protocol (exact
-- numeric results, so the tables compare with EXCEPT).
CREATE MATERIALIZED VIEW origin_spread WITH (velostream.continuous) AS
  SELECT origin, stddev_samp(delay) AS sd_delay, var_pop(distance) AS var_distance, bool_or(delay > 120) AS any_long,
         bool_and(delay IS NOT NULL) AS all_known, min(destination) AS first_dest, max(destination) AS last_dest,
         sum(delay * 2) AS double_delay, max(date_bin('15 minutes', ts, timestamptz '2000-01-01 00:00+00')) AS last_quarter
  FROM flights GROUP BY origin;
CREATE VIEW oracle_origin_spread AS
  SELECT origin, stddev_samp(delay) AS sd_delay, var_pop(distance) AS var_distance, bool_or(delay > 120) AS any_long,
         bool_and(delay IS NOT NULL) AS all_known, min(destination) AS first_dest, max(destination) AS last_dest,
         sum(delay * 2) AS double_delay, max(date_bin('15 minutes', ts, timestamptz '2000-01-01 00:00+00')) AS last_quarter
  FROM flights_plain GROUP BY origin;
