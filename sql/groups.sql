-- GROUP BY semantics for every key type: values PostgreSQL calls equal
-- (0 and -0, NaN and NaN, 1.0 and 1.00) form one group, NULLs form one group,
-- exactly as the batch GROUP BY over the same rows.
CREATE EXTENSION velostream;
SET TIME ZONE 'UTC';
CREATE FOREIGN TABLE g (i2 smallint, i8 bigint, f4 real, f8 float8, n numeric, t text, vc varchar(10),
                        b boolean, d date, ts timestamp, v int) SERVER velostream;
CREATE TABLE gp (LIKE g);
INSERT INTO gp VALUES
  (1, 10, 0, 0, 1.0, 'a', 'a', true, '2001-01-01', '2001-01-01 10:00', 1),
  (1, 10, '-0', '-0', 1.00, 'a', 'a', true, '2001-01-01', '2001-01-01 10:00', 2),
  (NULL, NULL, 'NaN', 'NaN', 'NaN', NULL, NULL, NULL, NULL, NULL, 3),
  (NULL, NULL, 'NaN', 'NaN', 'NaN', NULL, NULL, NULL, NULL, NULL, 4),
  (-32768, -9223372036854775808, 'Infinity', '-Infinity', 1e-20, 'é', 'xyz', false, '1999-12-31', '1969-07-20 20:17', 5),
  (32767, 9223372036854775807, 1.5, 1e300, 123456789012345678.5, '', '', false, '2038-01-19', '2038-01-19 03:14:08', 6),
  (2, 20, 1.5, 2.5, 2.50, 'b', 'b', true, '2001-01-02', '2001-01-01 10:00', 7);
CREATE MATERIALIZED VIEW by_all WITH (velostream.continuous) AS
  SELECT i2, i8, f4, f8, n, t, vc, b, d, ts, count(*) AS c, sum(v) AS s FROM g
  GROUP BY i2, i8, f4, f8, n, t, vc, b, d, ts;
CREATE MATERIALIZED VIEW by_float WITH (velostream.continuous) AS SELECT f8, count(*) AS c FROM g GROUP BY f8;
CREATE MATERIALIZED VIEW by_numeric WITH (velostream.continuous) AS SELECT n, count(*) AS c, sum(v) AS s FROM g GROUP BY n;
CREATE MATERIALIZED VIEW by_bool WITH (velostream.continuous) AS SELECT b, count(*) AS c FROM g GROUP BY b;
INSERT INTO g SELECT * FROM gp;
SELECT bool_and(velostream.wait(view)) AS all_caught_up FROM velostream.views;
SELECT * FROM by_float ORDER BY f8;
SELECT * FROM by_numeric ORDER BY n;
SELECT count(*) AS differences FROM (
  (TABLE by_all EXCEPT SELECT i2, i8, f4, f8, n, t, vc, b, d, ts, count(*), sum(v) FROM gp GROUP BY i2, i8, f4, f8, n, t, vc, b, d, ts)
  UNION ALL
  (SELECT i2, i8, f4, f8, n, t, vc, b, d, ts, count(*), sum(v) FROM gp GROUP BY i2, i8, f4, f8, n, t, vc, b, d, ts EXCEPT TABLE by_all)) x;
SELECT count(*) AS differences FROM (
  (TABLE by_float EXCEPT SELECT f8, count(*) FROM gp GROUP BY f8) UNION ALL (SELECT f8, count(*) FROM gp GROUP BY f8 EXCEPT TABLE by_float)) x;
SELECT count(*) AS differences FROM (
  (TABLE by_numeric EXCEPT SELECT n, count(*), sum(v) FROM gp GROUP BY n) UNION ALL (SELECT n, count(*), sum(v) FROM gp GROUP BY n EXCEPT TABLE by_numeric)) x;
SELECT count(*) AS differences FROM (
  (TABLE by_bool EXCEPT SELECT b, count(*) FROM gp GROUP BY b) UNION ALL (SELECT b, count(*) FROM gp GROUP BY b EXCEPT TABLE by_bool)) x;
-- a second batch merges into the same groups
INSERT INTO g SELECT * FROM gp;
INSERT INTO gp SELECT * FROM gp;
SELECT bool_and(velostream.wait(view)) AS all_caught_up FROM velostream.views;
SELECT count(*) AS differences FROM (
  (TABLE by_all EXCEPT SELECT i2, i8, f4, f8, n, t, vc, b, d, ts, count(*), sum(v) FROM gp GROUP BY i2, i8, f4, f8, n, t, vc, b, d, ts)
  UNION ALL
  (SELECT i2, i8, f4, f8, n, t, vc, b, d, ts, count(*), sum(v) FROM gp GROUP BY i2, i8, f4, f8, n, t, vc, b, d, ts EXCEPT TABLE by_all)) x;
SELECT count(*) AS rows_in_by_all FROM by_all;
DROP EXTENSION velostream CASCADE;
