-- Native expressions (engine/expression.h, pg/native_expr.cpp) are exact:
-- for every operation family they implement, a continuous view grouping by
-- the expression equals the same query over a plain table holding the same
-- rows, and the rows whose expression raises are exactly the view's dead
-- letters, with PostgreSQL's message. Edge values throughout: NULLs, integer
-- limits, NaN and infinities, numeric scales, infinite, BC and far-future
-- dates and timestamps, ISO weeks 1 and 53, DST transitions, multibyte text.
-- Only differences are printed: every result set below is empty. Every
-- expression here is native (translated by velostream_native_expr) except
-- numeric -> float8 of a stream column (n_float8, add_n_f8, gt_n_f8), which
-- native_expr.cpp leaves to the executor.
CREATE EXTENSION velostream;
SET TimeZone = 'UTC';
SET client_min_messages = warning;
CREATE FOREIGN TABLE ne_stream (id int, i2 int2, j2 int2, i4 int4, j4 int4, i8 int8, j8 int8, f4 float4, g4 float4,
                        f8 float8, g8 float8, n numeric, m numeric, t text, t2 text, d date, ts timestamp,
                        tz timestamptz, b bool)
  SERVER velostream OPTIONS (partitions '1');
CREATE TABLE ne_rows (id int PRIMARY KEY, i2 int2, j2 int2, i4 int4, j4 int4, i8 int8, j8 int8, f4 float4, g4 float4,
                f8 float8, g8 float8, n numeric, m numeric, t text, t2 text, d date, ts timestamp,
                tz timestamptz, b bool);

-- The expressions: one view each, v_<name>: SELECT <expr> AS k, count(*) AS n, sum(id) AS ids FROM ne_stream GROUP BY 1
-- (ids, also to have dead letters show the row's id).
CREATE TABLE ne_cases (name text PRIMARY KEY, expr text NOT NULL);
-- Integer + - * / % of every pair of int2, int4, int8; unary minus.
INSERT INTO ne_cases
SELECT o.name || '_' || x || '_' || y, format('%s %s %s', x, o.op, y)
FROM (VALUES ('add', '+'), ('sub', '-'), ('mul', '*'), ('div', '/'), ('mod', '%')) o(name, op),
     unnest('{i2,i4,i8}'::text[]) x, unnest('{j2,j4,j8}'::text[]) y;
INSERT INTO ne_cases VALUES ('neg_i2', '-i2'), ('neg_i4', '-i4'), ('neg_i8', '-i8');
-- float4 / float8 + - * /, unary minus; numeric + - *, unary minus; mixed.
INSERT INTO ne_cases
SELECT o.name || '_' || x || '_' || y, format('%s %s %s', x, o.op, y)
FROM (VALUES ('add', '+'), ('sub', '-'), ('mul', '*'), ('div', '/')) o(name, op),
     unnest('{f4,f8}'::text[]) x, unnest('{g4,g8}'::text[]) y;
INSERT INTO ne_cases VALUES
  ('neg_f4', '-f4'), ('neg_f8', '-f8'), ('add_n_m', 'n + m'), ('sub_n_m', 'n - m'), ('mul_n_m', 'n * m'),
  ('neg_n', '-n'), ('add_n_i4', 'n + i4'), ('mul_i8_n', 'i8 * n'), ('sub_n_i2', 'n - i2'),
  ('add_i4_f8', 'i4 + f8'), ('mul_f4_i2', 'f4 * i2'), ('div_i8_g4', 'i8 / g4'), ('add_n_f8', 'n + f8'),
  ('mul_n_n', 'n * n'),
-- Comparisons.
  ('lt_i2_j4', 'i2 < j4'), ('eq_i8_j2', 'i8 = j2'), ('ne_i4_j4', 'i4 <> j4'), ('ge_i8_j8', 'i8 >= j8'),
  ('lt_f4_g8', 'f4 < g8'), ('ge_f8_g8', 'f8 >= g8'), ('eq_f4_g4', 'f4 = g4'), ('le_n_m', 'n <= m'),
  ('eq_n_i4', 'n = i4'), ('gt_n_f8', 'n > f8'), ('eq_t_t2', 't = t2'), ('ne_t_t2', 't <> t2'),
  ('lt_t_t2_c', 't COLLATE "C" < t2'), ('ge_t_t2_c', 't >= t2 COLLATE "C"'), ('lt_d', 'd < ''2000-01-01'''),
  ('gt_ts', 'ts > ''2020-01-01'''), ('le_tz', 'tz <= ''2024-03-10 07:00+00'''), ('lt_b', 'b < (i4 > 0)'),
  ('eq_d_ts', 'd = ts::date'),
-- AND / OR / NOT, each argument only for the rows the executor evaluates it for.
  ('and', 'i4 > 0 AND j4 > 0'), ('or', 'i4 > 0 OR b'), ('not_b', 'NOT b'), ('not_cmp', 'NOT (f8 > g8)'),
  ('and_guard', 'j4 <> 0 AND i4 / j4 > 1'), ('or_guard', 'j2 = 0 OR i2 / j2 > 1'),
  ('and3', 'b AND i8 > 0 AND i8 * j8 > 10'), ('or_null', 'b OR i4 > 0 OR NULL'),
  ('or_raise', 'i2 * j2 > 0 OR b'),
-- IS [NOT] TRUE / FALSE / UNKNOWN, IS [NOT] NULL.
  ('is_true', 'b IS TRUE'), ('is_not_true', 'b IS NOT TRUE'), ('is_false', '(i4 > j4) IS FALSE'),
  ('is_not_false', '(f8 < g8) IS NOT FALSE'), ('is_unknown', 'b IS UNKNOWN'),
  ('is_not_unknown', '(n > m) IS NOT UNKNOWN'), ('is_null', 'i4 IS NULL'), ('is_not_null', 't IS NOT NULL'),
-- CASE (searched and simple), COALESCE, NULLIF, GREATEST / LEAST.
  ('case_guard', 'CASE WHEN j4 = 0 THEN 0 ELSE i4 / j4 END'),
  ('case_simple', 'CASE i4 % 3 WHEN 0 THEN ''zero'' WHEN 1 THEN ''one'' WHEN -1 THEN ''minus one'' END'),
  ('case_multi', 'CASE WHEN b THEN i2 WHEN i4 > 0 THEN j2 ELSE i2 * j2 END'),
  ('case_text', 'CASE t WHEN ''été'' THEN 1 WHEN ''a'' THEN 2 WHEN NULL THEN 3 ELSE 4 END'),
  ('case_no_else', 'CASE WHEN f8 > 0 THEN f8 / g8 END'),
  ('case_raise', 'CASE WHEN i8 > 0 THEN i8 * j8 WHEN i8 < 0 THEN i8 - j8 ELSE j8 / i8 END'),
  ('case_simple_raise', 'CASE i2 / j2 WHEN 0 THEN ''zero'' WHEN 1 THEN ''one'' ELSE ''other'' END'),
  ('coalesce_int', 'COALESCE(i2, j2, 0)'), ('coalesce_text', 'COALESCE(t, t2, ''?'')'),
  ('coalesce_num', 'COALESCE(n, m * 2)'), ('coalesce_guard', 'COALESCE(i4, i8 / j8)'),
  ('nullif_int', 'NULLIF(i4, j4)'), ('nullif_text', 'NULLIF(t, ''a'')'), ('nullif_f8', 'NULLIF(f8, g8)'),
  ('nullif_num', 'NULLIF(n, 1.5)'), ('nullif_i2_i8', 'NULLIF(i2, j8)'),
  ('greatest_int', 'GREATEST(i2, j2, 0)'), ('least_int', 'LEAST(i4, j8)'), ('greatest_f8', 'GREATEST(f8, g8)'),
  ('least_f4', 'LEAST(f4, g4, 0)'), ('greatest_num', 'GREATEST(n, m)'),
  ('least_text', 'LEAST(t COLLATE "C", t2)'), ('greatest_d', 'GREATEST(d, ''2000-01-01'')'),
  ('least_ts', 'LEAST(ts, ''2020-01-01'')'),
-- Casts.
  ('i8_int2', 'i8::int2'), ('i8_int4', 'i8::int4'), ('i4_int2', 'i4::int2'), ('i2_int8', 'i2::int8'),
  ('b_int4', 'b::int4'), ('i4_bool', 'i4::bool'), ('i2_float4', 'i2::float4'), ('i4_float4', 'i4::float4'),
  ('i8_float4', 'i8::float4'), ('i8_float8', 'i8::float8'), ('i4_float8', 'i4::float8'), ('f4_float8', 'f4::float8'),
  ('f8_float4', 'f8::float4'), ('f8_int2', 'f8::int2'), ('f8_int4', 'f8::int4'), ('f8_int8', 'f8::int8'),
  ('f4_int2', 'f4::int2'), ('f4_int4', 'f4::int4'), ('f4_int8', 'f4::int8'), ('n_int2', 'n::int2'),
  ('n_int4', 'n::int4'), ('n_int8', 'n::int8'), ('n_float8', 'n::float8'), ('i8_numeric', 'i8::numeric'),
  ('f8_numeric', 'f8::numeric'), ('f4_numeric', 'f4::numeric'), ('d_timestamp', 'd::timestamp'),
  ('ts_date', 'ts::date'), ('i2_text', 'i2::text'), ('i4_text', 'i4::text'), ('i8_text', 'i8::text'),
  ('i4_varchar', 'i4::varchar'), ('extract_float8', 'extract(epoch FROM ts)::float8'),
  ('bounded_float8', '(i8::numeric * 0.001 - 1.5)::float8'),
-- IN lists (with NULLs), = ANY / <> ALL, BETWEEN.
  ('in_null', 'i4 IN (0, 1, NULL)'), ('not_in_null', 'i4 NOT IN (1, 2, NULL)'), ('in_int', 'i8 IN (0, 1, -1)'),
  ('in_text', 't IN (''a'', ''été'', NULL)'), ('in_f8', 'f8 IN (''NaN'', 0, 1)'), ('in_num', 'n IN (1.5, 2.50)'),
  ('in_d', 'd IN (''2000-01-01'', ''infinity'')'), ('any_i8', 'i8 = ANY (''{1,2,NULL}''::int8[])'),
  ('all_i2', 'i2 <> ALL (''{1,2}'')'), ('in_raise', 'i4 / j4 IN (0, 1, NULL)'),
  ('between_int', 'i4 BETWEEN j4 AND 100'), ('between_f8', 'f8 BETWEEN -1 AND 1'),
  ('not_between_num', 'n NOT BETWEEN 0 AND 2'), ('between_ts', 'ts BETWEEN ''2000-01-01'' AND ''2100-01-01'''),
  ('between_symmetric', 'i2 BETWEEN SYMMETRIC 5 AND j2'),
-- LIKE / NOT LIKE, ||, lower / upper (the database's C.UTF-8 and "C").
  ('like_prefix', 't LIKE ''a%'''), ('like_infix', 't LIKE ''%é%'''), ('like_one', 't LIKE ''_'''),
  ('like_two', 't LIKE ''__'''), ('like_percent', 't LIKE ''%\%%'''), ('like_underscore', 't LIKE ''a\_b'''),
  ('like_backslash', 't LIKE ''a\\b'''), ('not_like', 't NOT LIKE ''%b'''), ('like_all', 't LIKE ''%'''),
  ('like_empty', 't LIKE '''''), ('like_escape', 't LIKE ''a#%b'' ESCAPE ''#'''), ('like_mb', 't LIKE ''日_'''),
  ('like_wild', 't LIKE ''%_%_'''), ('like_escaped_mb', 't LIKE ''\日%'''), ('like_upper', 't LIKE ''É%'''),
  ('like_exact', 't LIKE ''Straße'''), ('not_like_one', 't NOT LIKE ''_%_'''),
  ('concat', 't || t2'), ('concat_int', 't || ''-'' || i4::text'), ('concat_const', 't || ''€'''),
  ('lower', 'lower(t)'), ('upper', 'upper(t)'), ('lower_c', 'lower(t COLLATE "C")'),
  ('upper_c', 'upper(t COLLATE "C")'), ('lower_concat', 'lower(t || t2)'),
-- AT TIME ZONE of a timestamptz.
  ('tz_new_york', 'tz AT TIME ZONE ''America/New_York'''), ('tz_utc', 'tz AT TIME ZONE ''UTC'''),
  ('tz_est', 'tz AT TIME ZONE ''EST'''), ('tz_plus5', 'tz AT TIME ZONE ''+05'''),
  ('tz_london', 'tz AT TIME ZONE ''Europe/London'''), ('tz_lord_howe', 'tz AT TIME ZONE ''Australia/Lord_Howe'''),
  ('tz_trunc_day', 'date_trunc(''day'', tz AT TIME ZONE ''America/New_York'')'),
  ('tz_extract_hour', 'extract(hour FROM tz AT TIME ZONE ''Australia/Lord_Howe'')'),
  ('trunc_week_of_date', 'date_trunc(''week'', d::timestamp)'),
-- date_bin with strides and origins (timestamp and timestamptz).
  ('bin_15min', 'date_bin(''15 minutes'', ts, ''2000-01-01'')'),
  ('bin_day_offset', 'date_bin(''1 day'', ts, ''2001-01-01 03:00'')'),
  ('bin_week_half', 'date_bin(''7 days 12 hours'', ts, ''1900-01-01'')'),
  ('bin_usec', 'date_bin(''1 microsecond'', ts, ''2000-01-01'')'),
  ('bin_future_origin', 'date_bin(''1 hour'', ts, ''2200-01-01 00:30'')'),
  ('bin_bc_origin', 'date_bin(''10000 days'', ts, ''4714-11-24 00:00 BC'')'),
  ('bin_tz', 'date_bin(''1 hour'', tz, ''2024-03-10 07:30+00'')');
-- date_trunc of every unit; extract of every field from a timestamp and a date.
INSERT INTO ne_cases
SELECT 'trunc_' || u, format('date_trunc(%L, ts)', u)
FROM unnest('{microseconds,milliseconds,second,minute,hour,day,week,month,quarter,year}'::text[]) u;
INSERT INTO ne_cases
SELECT 'extract_ts_' || f, format('extract(%s FROM ts)', f)
FROM unnest('{microseconds,milliseconds,second,minute,hour,day,month,quarter,year,dow,isodow,doy,week,epoch}'::text[]) f;
INSERT INTO ne_cases
SELECT 'extract_d_' || f, format('extract(%s FROM d)', f)
FROM unnest('{day,month,quarter,year,dow,isodow,doy,week,epoch}'::text[]) f;

DO $$
DECLARE c record;
BEGIN
  FOR c IN SELECT * FROM ne_cases ORDER BY name LOOP
    EXECUTE format('CREATE MATERIALIZED VIEW %I WITH (velostream.continuous) AS '
                   'SELECT %s AS k, count(*) AS n, sum(id) AS ids FROM ne_stream GROUP BY 1', 'v_' || c.name, c.expr);
  END LOOP;
END $$;

-- Conditions and aggregate arguments (computed columns evaluated only for
-- the rows WHERE, or an aggregate's FILTER, lets through).
CREATE MATERIALIZED VIEW w_where WITH (velostream.continuous) AS
  SELECT b, count(*) AS n, sum(id) AS ids FROM ne_stream WHERE i4 / j4 > 0 GROUP BY b;
CREATE MATERIALIZED VIEW w_guarded WITH (velostream.continuous) AS
  SELECT b, count(*) AS n, sum(id) AS ids FROM ne_stream WHERE j2 <> 0 AND i2 % j2 = 0 GROUP BY b;
CREATE MATERIALIZED VIEW w_argument WITH (velostream.continuous) AS
  SELECT b, sum(i8 * j8) AS s, count(*) AS n, sum(id) AS ids FROM ne_stream GROUP BY b;
CREATE MATERIALIZED VIEW w_filter WITH (velostream.continuous) AS
  SELECT b, sum(i4 / j4) FILTER (WHERE j4 > 0) AS s, count(*) FILTER (WHERE lower(t) LIKE '%é%') AS n,
         max(f8 * g8) FILTER (WHERE f8 BETWEEN 0.1 AND 10 AND g8 BETWEEN 0.1 AND 10) AS mx, sum(id) AS ids
  FROM ne_stream GROUP BY b;

-- The rows: every column cycles through its edge values; the second operand
-- of each integer type (j2, j4, j8) pairs every value with every other.
CREATE TEMP TABLE ne_edge (col text, vals text[]);
INSERT INTO ne_edge VALUES
 ('i2', '{NULL,0,1,-1,2,-2,3,7,-7,181,182,255,32767,-32768,-32767}'),
 ('i4', '{NULL,0,1,-1,2,-2,3,7,-7,46340,46341,65536,2147483647,-2147483648,-2147483647}'),
 ('i8', '{NULL,0,1,-1,2,-7,32768,-32769,2147483648,-2147483649,3037000499,3037000500,4294967296,
          9223372036854775807,-9223372036854775808,-9223372036854775807}'),
 ('f4', '{NULL,0,-0,1,-1,0.5,1.5,2.5,-2.5,0.1,3.4e38,-3.4e38,1e-38,1.4e-45,NaN,Infinity,-Infinity,32767.5,
          -32768.5,16777217,2147483520,2147483648,9.223372e18}'),
 ('f8', '{NULL,0,-0,1,-1,0.5,1.5,2.5,-2.5,3.5,0.1,1e308,-1e308,1e-308,4.9e-324,1e-200,NaN,Infinity,-Infinity,
          32767.5,-32768.5,2147483647.5,-2147483648.5,2147483647.4,9.2233720368547758e18,-9.2233720368547758e18,
          3.4028235e38,1e-46,123456789.125}'),
 ('n',  '{NULL,0,1e-400,1e-9000,2e-9000,1.50,-1.5,2.5,-2.5,0.5,NaN,Infinity,-Infinity,
          12345678901234567890.123456789,-99999999999999999999999999999999999999,1e-30,-0.000001,123.4500,
          0.00,1,-1,3.14159,32767.5,-32768.5,2147483647.5,9223372036854775807.4,9223372036854775807.5,1e20}'),
 ('t',  $${NULL,"","a","A","abc","ABC","été","ÉTÉ","ß","İ","日本","a%b","a_b","a\\b","x%","Straße","aé","é","ab",
          "%","_","日","ÀÉÎÕÜ","ǅ","ΣΑΣ","𐐀𐐨","ﬀ"}$$),
 ('d',  '{NULL,infinity,-infinity,2000-01-01,1999-12-31,2020-02-29,2021-01-01,2021-01-03,2020-12-31,2019-12-30,
          2024-12-30,2027-01-03,2026-12-31,1900-02-28,1900-03-01,0001-01-01,0001-12-31 BC,0002-01-01 BC,
          4713-01-01 BC,4714-11-24 BC,1600-02-29,5874897-12-31,294276-12-31,294277-01-01,2100-03-01,1969-12-31,
          1970-01-01}'),
 ('ts', '{NULL,infinity,-infinity,2000-01-01 00:00,1999-12-31 23:59:59.999999,2020-02-29 12:34:56.789012,
          2021-01-03 23:59:59,2020-12-31 00:00,4714-11-24 00:00 BC,4714-11-24 00:00:00.000001 BC,4714-11-30 23:59 BC,
          0001-01-01 00:00,0001-12-31 23:59:59.5 BC,294276-12-31 23:59:59.999999,294247-01-10 04:00:54.775807,
          294247-01-10 04:00:54.775806,294247-01-10 04:00:54.77585,294260-06-15 12:00:00.123456,
          1899-12-31 23:59:59,1883-11-18 12:00,2150-07-04 12:00:00.5,1969-12-31 23:59:59.999999,2024-03-10 07:00,
          2038-01-19 03:14:08,2027-01-03 12:00,2024-12-30 00:00:00.001}'),
 -- New York, London, Lord Howe (half-hour DST): either side of transitions,
 -- before 1900 (LMT), after 2100, the ends of the range.
 ('tz', '{NULL,infinity,-infinity,2024-03-10 06:59:59.999999+00,2024-03-10 07:00:00+00,2024-11-03 05:59:59+00,
          2024-11-03 06:00:00+00,1918-03-31 07:00+00,2150-03-08 06:59:59+00,2150-03-08 07:00+00,
          1883-11-18 16:59:59+00,1883-11-18 17:00:00+00,2024-03-31 00:59:59.999999+00,2024-03-31 01:00:00+00,
          2024-10-27 00:59:59+00,2024-10-27 01:00:00+00,1847-12-01 00:01:14+00,1847-12-01 00:01:15+00,
          1970-06-01 12:00+00,2200-03-29 01:00+00,2024-04-06 14:59:59.999999+00,2024-04-06 15:00:00+00,
          2024-04-06 15:30:00+00,2024-10-05 15:29:59+00,2024-10-05 15:30:00+00,4714-11-24 00:00+00 BC,
          4714-11-24 05:00+00 BC,294276-12-31 23:59:59.999999+00,294276-12-31 12:00+00,0001-01-01 00:00+00,
          2000-01-01 00:00+00}'),
 ('b',  '{NULL,true,false}');
CREATE FUNCTION ne_edge_value(c text, i int) RETURNS text LANGUAGE sql AS
  $$ SELECT vals[1 + i % cardinality(vals)] FROM ne_edge WHERE col = c $$;
INSERT INTO ne_rows
SELECT id,
       ne_edge_value('i2', id)::int2, ne_edge_value('i2', id / 15)::int2,
       ne_edge_value('i4', id)::int4, ne_edge_value('i4', id / 15)::int4,
       ne_edge_value('i8', id)::int8, ne_edge_value('i8', id / 16)::int8,
       ne_edge_value('f4', id * 7)::float4, ne_edge_value('f4', id * 7 / 23)::float4,
       ne_edge_value('f8', id)::float8, ne_edge_value('f8', id / 29)::float8,
       ne_edge_value('n', id)::numeric, ne_edge_value('n', id / 28)::numeric,
       ne_edge_value('t', id * 3), ne_edge_value('t', id / 27),
       ne_edge_value('d', id * 5)::date, ne_edge_value('ts', id * 3)::timestamp,
       ne_edge_value('tz', id * 5)::timestamptz, ne_edge_value('b', id)::bool
FROM generate_series(0, 499) id;
INSERT INTO ne_stream SELECT * FROM ne_rows ORDER BY id;

-- What PostgreSQL gives: the rows whose expression raises, with its message
-- (or the engine's, for a numeric beyond its 38 digits), and the groups of
-- the others.
CREATE TABLE ne_expected_errors (name text, id int, reason text);
CREATE FUNCTION ne_fits_engine(v text) RETURNS boolean LANGUAGE sql IMMUTABLE AS
  $$ SELECT v IS NULL OR length(ltrim(regexp_replace(v, '[^0-9]', '', 'g'), '0')) <= 38 $$;
CREATE FUNCTION ne_expect(c_name text, c_expr text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  numeric_result boolean := (SELECT atttypid = 'numeric'::regtype FROM pg_attribute
                             WHERE attrelid = ('v_' || c_name)::regclass AND attname = 'k');
  id int;
  v text;
  fine boolean;
BEGIN
  BEGIN  -- all rows at once first
    IF numeric_result THEN
      EXECUTE format('SELECT bool_and(ne_fits_engine((%s)::text)) FROM ne_rows', c_expr) INTO STRICT fine;
    ELSE
      EXECUTE format('SELECT count((%s)) >= 0 FROM ne_rows', c_expr) INTO STRICT fine;
    END IF;
    IF fine THEN RETURN; END IF;
  EXCEPTION WHEN others THEN
  END;
  FOR id IN SELECT ne_rows.id FROM ne_rows ORDER BY 1 LOOP
    BEGIN
      EXECUTE format('SELECT (%s)::text FROM ne_rows WHERE id = $1', c_expr) INTO v USING id;
      IF numeric_result AND NOT ne_fits_engine(v) THEN
        INSERT INTO ne_expected_errors
          VALUES (c_name, id, 'a computed value does not fit the engine (numeric beyond 38 digits)');
      END IF;
    EXCEPTION WHEN others THEN
      INSERT INTO ne_expected_errors VALUES (c_name, id, SQLERRM);
    END;
  END LOOP;
END $$;
DO $$ BEGIN PERFORM ne_expect(name, expr) FROM ne_cases; END $$;

-- Each view against the batch query over the rows that do not raise; a
-- group's numeric key shows its first row's scale, a float key's zero no sign.
CREATE FUNCTION ne_differences(c_name text, c_expr text)
  RETURNS TABLE (side text, k text, n bigint, ids bigint) LANGUAGE plpgsql AS $$
DECLARE
  typ regtype := (SELECT atttypid FROM pg_attribute WHERE attrelid = ('v_' || c_name)::regclass AND attname = 'k');
  shown text := CASE WHEN typ IN ('real'::regtype, 'double precision'::regtype)
                     THEN '(CASE WHEN x.k = 0 THEN 0 ELSE x.k END)::text'
                     ELSE '(array_agg(x.k::text ORDER BY x.id))[1]' END;
  oracle text := format('SELECT %s AS k, count(*) AS n, sum(x.id) AS ids FROM (SELECT id, (%s) AS k FROM ne_rows '
                        'WHERE id NOT IN (SELECT id FROM ne_expected_errors WHERE name = %L)) x GROUP BY x.k',
                        shown, c_expr, c_name);
  view text := format('SELECT k::text, n, ids FROM %I', 'v_' || c_name);
BEGIN
  RETURN QUERY EXECUTE format('SELECT ''missing'', * FROM (%s EXCEPT ALL %s) a UNION ALL '
                              'SELECT ''extra'', * FROM (%s EXCEPT ALL %s) b', oracle, view, view, oracle);
END $$;
SELECT count(*) FILTER (WHERE NOT velostream.wait(('v_' || name)::regclass)) AS not_caught_up FROM ne_cases;
SELECT c.name, d.* FROM ne_cases c, ne_differences(c.name, c.expr) d ORDER BY 1, 2, 3, 4, 5;

-- Dead letters: per view, the rows whose expression raises, with PostgreSQL's
-- message (of which a dead letter keeps the first 511 bytes).
CREATE VIEW ne_dead_letters AS
  SELECT r[1] AS name, nullif(split_part(substr(e.payload, 2), ',', 1), '')::int AS id, r[2] AS reason
  FROM velostream.errors e, regexp_match(e.reason, '^continuous view "v_([^"]*)": (.*)$', 's') r
  WHERE r IS NOT NULL;
(SELECT 'missing' AS side, name, id, left(reason, 511) FROM ne_expected_errors
 EXCEPT ALL SELECT 'missing', name, id, reason FROM ne_dead_letters)
UNION ALL
(SELECT 'extra', name, id, reason FROM ne_dead_letters
 EXCEPT ALL SELECT 'extra', name, id, left(reason, 511) FROM ne_expected_errors)
ORDER BY 2, 3, 1;
-- (Not vacuous: many views have many rows that raise.)
SELECT count(DISTINCT name) >= 40 AS raising_views, count(*) >= 1000 AS dead_letters FROM ne_expected_errors;

-- Conditions and aggregate arguments.
SELECT velostream.wait('w_where'), velostream.wait('w_guarded'), velostream.wait('w_argument'),
       velostream.wait('w_filter');
CREATE FUNCTION ne_raises(q text, i int) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q USING i;
  RETURN NULL;
EXCEPTION WHEN others THEN
  RETURN SQLERRM;
END $$;
CREATE TABLE ne_w_expected_errors AS
  SELECT 'w_where' AS view, id, ne_raises('SELECT i4 / j4 > 0 FROM ne_rows WHERE id = $1', id) AS reason FROM ne_rows
  UNION ALL
  SELECT 'w_argument', id, ne_raises('SELECT i8 * j8 FROM ne_rows WHERE id = $1', id) FROM ne_rows;
DELETE FROM ne_w_expected_errors WHERE reason IS NULL;
CREATE VIEW ne_rows_where AS
  SELECT * FROM ne_rows WHERE id NOT IN (SELECT id FROM ne_w_expected_errors WHERE view = 'w_where');
CREATE VIEW ne_rows_argument AS
  SELECT * FROM ne_rows WHERE id NOT IN (SELECT id FROM ne_w_expected_errors WHERE view = 'w_argument');
(TABLE w_where EXCEPT ALL SELECT b, count(*), sum(id) FROM ne_rows_where WHERE i4 / j4 > 0 GROUP BY b)
UNION ALL
(SELECT b, count(*), sum(id) FROM ne_rows_where WHERE i4 / j4 > 0 GROUP BY b EXCEPT ALL TABLE w_where);
-- (w_guarded: no division by zero, as in PostgreSQL, though i2 % j2 = 0 alone would raise.)
(TABLE w_guarded EXCEPT ALL SELECT b, count(*), sum(id) FROM ne_rows WHERE j2 <> 0 AND i2 % j2 = 0 GROUP BY b)
UNION ALL
(SELECT b, count(*), sum(id) FROM ne_rows WHERE j2 <> 0 AND i2 % j2 = 0 GROUP BY b EXCEPT ALL TABLE w_guarded);
(TABLE w_argument EXCEPT ALL SELECT b, sum(i8 * j8), count(*), sum(id) FROM ne_rows_argument GROUP BY b)
UNION ALL
(SELECT b, sum(i8 * j8), count(*), sum(id) FROM ne_rows_argument GROUP BY b EXCEPT ALL TABLE w_argument);
CREATE VIEW ne_oracle_filter AS
  SELECT b, sum(i4 / j4) FILTER (WHERE j4 > 0) AS s, count(*) FILTER (WHERE lower(t) LIKE '%é%') AS n,
         max(f8 * g8) FILTER (WHERE f8 BETWEEN 0.1 AND 10 AND g8 BETWEEN 0.1 AND 10) AS mx, sum(id) AS ids
  FROM ne_rows GROUP BY b;
(TABLE w_filter EXCEPT ALL TABLE ne_oracle_filter) UNION ALL (TABLE ne_oracle_filter EXCEPT ALL TABLE w_filter);
CREATE VIEW ne_w_dead_letters AS
  SELECT r[1] AS view, nullif(split_part(substr(e.payload, 2), ',', 1), '')::int AS id, r[2] AS reason
  FROM velostream.errors e, regexp_match(e.reason, '^continuous view "(w_[^"]*)": (.*)$', 's') r
  WHERE r IS NOT NULL;
(TABLE ne_w_expected_errors EXCEPT ALL TABLE ne_w_dead_letters)
UNION ALL
(TABLE ne_w_dead_letters EXCEPT ALL TABLE ne_w_expected_errors);
SELECT count(*) AS w_dead_letters FROM ne_w_dead_letters;

DROP EXTENSION velostream CASCADE;
DROP TABLE ne_rows, ne_cases, ne_expected_errors, ne_w_expected_errors CASCADE;
DROP FUNCTION ne_fits_engine, ne_expect, ne_differences, ne_raises, ne_edge_value(text, int);
