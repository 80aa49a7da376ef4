-- WHERE semantics: every filter form the engine runs, on NULLs, NaN,
-- Infinity, cross-type comparisons and three-valued logic, must select the
-- same rows as PostgreSQL's batch query over the same data.
CREATE EXTENSION velostream;
SET TIME ZONE 'UTC';
CREATE FOREIGN TABLE s (k int, i int, i8 bigint, f float8, n numeric, t text, b boolean, ts timestamptz)
  SERVER velostream;
CREATE TABLE p (k int, i int, i8 bigint, f float8, n numeric, t text, b boolean, ts timestamptz);
INSERT INTO p
  SELECT g % 3,
         CASE WHEN g % 11 = 0 THEN NULL ELSE (g * 7) % 40 - 10 END,
         CASE WHEN g % 13 = 0 THEN NULL ELSE (g * 5) % 30 - 5 END,
         CASE WHEN g % 17 = 0 THEN 'NaN'::float8 WHEN g % 19 = 0 THEN NULL WHEN g % 23 = 0 THEN 'Infinity'
              ELSE (g % 9) / 2.0 END,
         CASE WHEN g % 29 = 0 THEN 'NaN'::numeric WHEN g % 31 = 0 THEN NULL ELSE (g % 10) * 0.75 END,
         CASE WHEN g % 7 = 0 THEN NULL WHEN g % 2 = 0 THEN 'x' ELSE chr(97 + g % 26) END,
         CASE WHEN g % 5 = 0 THEN NULL ELSE g % 2 = 0 END,
         '2000-12-31 12:00+00'::timestamptz + g * interval '37 minutes'
  FROM generate_series(1, 600) g;

CREATE MATERIALIZED VIEW w01 WITH (velostream.continuous) AS SELECT k, count(*) FROM s WHERE i > 15.5 GROUP BY k;
CREATE MATERIALIZED VIEW w02 WITH (velostream.continuous) AS SELECT k, count(*) FROM s WHERE f >= 2 GROUP BY k;
CREATE MATERIALIZED VIEW w03 WITH (velostream.continuous) AS SELECT k, count(*) FROM s WHERE n < 3 GROUP BY k;
CREATE MATERIALIZED VIEW w04 WITH (velostream.continuous) AS SELECT k, count(*) FROM s WHERE i IN (1, 2, NULL) GROUP BY k;
CREATE MATERIALIZED VIEW w05 WITH (velostream.continuous) AS SELECT k, count(*) FROM s WHERE i NOT IN (1, 3) GROUP BY k;
CREATE MATERIALIZED VIEW w06 WITH (velostream.continuous) AS SELECT k, count(*) FROM s WHERE i NOT IN (1, NULL) GROUP BY k;
CREATE MATERIALIZED VIEW w07 WITH (velostream.continuous) AS SELECT k, count(*) FROM s WHERE b GROUP BY k;
CREATE MATERIALIZED VIEW w08 WITH (velostream.continuous) AS SELECT k, count(*) FROM s WHERE NOT b GROUP BY k;
CREATE MATERIALIZED VIEW w09 WITH (velostream.continuous) AS SELECT k, count(*) FROM s WHERE t = 'x' OR t IS NULL GROUP BY k;
CREATE MATERIALIZED VIEW w10 WITH (velostream.continuous) AS
  SELECT k, count(*) FROM s WHERE ts BETWEEN '2001-01-01' AND '2001-01-03 12:00' GROUP BY k;
CREATE MATERIALIZED VIEW w11 WITH (velostream.continuous) AS SELECT k, count(*) FROM s WHERE f = 'NaN' GROUP BY k;
CREATE MATERIALIZED VIEW w12 WITH (velostream.continuous) AS SELECT k, count(*) FROM s WHERE n >= 'NaN' GROUP BY k;
CREATE MATERIALIZED VIEW w13 WITH (velostream.continuous) AS SELECT k, count(*) FROM s WHERE i8 > f GROUP BY k;
CREATE MATERIALIZED VIEW w14 WITH (velostream.continuous) AS SELECT k, count(*) FROM s WHERE i = i8 GROUP BY k;
CREATE MATERIALIZED VIEW w15 WITH (velostream.continuous) AS SELECT k, count(*) FROM s WHERE t <> 'x' GROUP BY k;
CREATE MATERIALIZED VIEW w16 WITH (velostream.continuous) AS
  SELECT k, count(*) FROM s WHERE t COLLATE "C" > 'm' AND NOT (i < 0 OR i IS NULL) GROUP BY k;
CREATE MATERIALIZED VIEW w17 WITH (velostream.continuous) AS SELECT k, count(*) FROM s WHERE f < 'Infinity' GROUP BY k;
CREATE MATERIALIZED VIEW w18 WITH (velostream.continuous) AS SELECT k, count(*) FROM s WHERE n <> 2.25 GROUP BY k;
CREATE MATERIALIZED VIEW w19 WITH (velostream.continuous) AS SELECT k, count(*) FROM s WHERE i8 IS NOT NULL AND f IS NULL GROUP BY k;
CREATE MATERIALIZED VIEW w20 WITH (velostream.continuous) AS SELECT k, count(*) FROM s WHERE NOT (b AND i > 0) GROUP BY k;

INSERT INTO s SELECT * FROM p;
SELECT bool_and(velostream.wait(view)) AS all_caught_up FROM velostream.views;

-- differences per view against the same WHERE as a batch query
CREATE FUNCTION diff(v text, cond text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE d bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM ((TABLE %1$s EXCEPT SELECT k, count(*) FROM p WHERE %2$s GROUP BY k)
                   UNION ALL (SELECT k, count(*) FROM p WHERE %2$s GROUP BY k EXCEPT TABLE %1$s)) d', v, cond) INTO d;
  RETURN d;
END $$;
SELECT v, diff(v, cond) AS differences, (SELECT count(*) FROM p WHERE true) AS rows FROM (VALUES
  ('w01', 'i > 15.5'), ('w02', 'f >= 2'), ('w03', 'n < 3'), ('w04', 'i IN (1, 2, NULL)'),
  ('w05', 'i NOT IN (1, 3)'), ('w06', 'i NOT IN (1, NULL)'), ('w07', 'b'), ('w08', 'NOT b'),
  ('w09', $$t = 'x' OR t IS NULL$$), ('w10', $$ts BETWEEN '2001-01-01' AND '2001-01-03 12:00'$$),
  ('w11', $$f = 'NaN'$$), ('w12', $$n >= 'NaN'$$), ('w13', 'i8 > f'), ('w14', 'i = i8'), ('w15', $$t <> 'x'$$),
  ('w16', $$t COLLATE "C" > 'm' AND NOT (i < 0 OR i IS NULL)$$), ('w17', $$f < 'Infinity'$$), ('w18', 'n <> 2.25'),
  ('w19', 'i8 IS NOT NULL AND f IS NULL'), ('w20', 'NOT (b AND i > 0)')) c(v, cond)
ORDER BY v;
-- the filters select something: the comparison above is not vacuous
SELECT v, (SELECT sum(count) FROM w01) AS w01_rows, (SELECT sum(count) FROM w06) AS w06_rows,
       (SELECT sum(count) FROM w11) AS w11_rows, (SELECT sum(count) FROM w13) AS w13_rows
  FROM (VALUES ('selected')) x(v);
DROP EXTENSION velostream CASCADE;
