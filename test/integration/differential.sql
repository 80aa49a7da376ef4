-- Setup of the differential test (differential.sh loads dg_raw with January
-- 2001's flights first): the slice the streams are fed from, and the
-- comparison of a continuous view with its batch query.

-- The flights of 5 airports on 2001-01-01 and 02 (2,643), plus copies of every
-- 97th with one column NULL, a row of NULLs and one of empty strings, in a
-- fixed pseudo-random order (id), so that every feeding transaction mixes
-- airports, times and NULLs.
DELETE FROM dg_raw WHERE origin NOT IN ('SFO', 'SEA', 'PDX', 'SAN', 'BOS') OR ts >= '2001-01-03 00:00+00';
INSERT INTO dg_raw
  SELECT CASE WHEN n % 5 = 0 THEN NULL ELSE ts END, CASE WHEN n % 5 = 1 THEN NULL ELSE delay END,
         CASE WHEN n % 5 = 2 THEN NULL ELSE distance END, CASE WHEN n % 5 = 3 THEN NULL ELSE origin END,
         CASE WHEN n % 5 = 4 THEN NULL ELSE destination END
  FROM (SELECT *, row_number() OVER (ORDER BY ts, origin, destination, delay, distance) AS n FROM dg_raw) r
  WHERE n % 97 = 0;
INSERT INTO dg_raw VALUES (NULL, NULL, NULL, NULL, NULL), ('2001-01-01 10:00+00', 0, 100, '', '');
CREATE TABLE dg_plain (id serial PRIMARY KEY, ts timestamptz, delay int, distance int, origin text, destination text);
INSERT INTO dg_plain (ts, delay, distance, origin, destination)
  SELECT * FROM dg_raw r ORDER BY md5(r::text), r::text;
DROP TABLE dg_raw;
-- False if one of `exprs` (SQL over the columns of dg_plain) raises for row t
-- where its guard (guards[i], which cannot raise) holds: true for the rows a
-- continuous view with those per-row expressions counts (differential.py).
-- Each is evaluated as a whole, as the engine evaluates a computed column
-- (AND, OR and CASE skip what they do not need).
CREATE FUNCTION dg_evaluates(t dg_plain, exprs text[], guards text[]) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  g boolean;
BEGIN
  FOR i IN 1 .. coalesce(array_length(exprs, 1), 0) LOOP
    EXECUTE format('SELECT coalesce((%s), false) FROM (SELECT ($1).*) s', guards[i]) INTO g USING t;
    CONTINUE WHEN NOT g;
    BEGIN
      EXECUTE format('SELECT %s FROM (SELECT ($1).*) s', exprs[i]) USING t;
    EXCEPTION WHEN division_by_zero THEN
      RETURN false;
    END;
  END LOOP;
  RETURN true;
END $$;

-- What each CREATE (of the batch view and of the continuous view) returned.
CREATE TABLE dg_log (idx text, what text, state text, message text);

-- float8 values within 1e-9 relative (absolute below 1): sums depend on their order.
CREATE FUNCTION dg_close(a float8, b float8) RETURNS boolean LANGUAGE sql IMMUTABLE AS
  $$ SELECT a IS NOT DISTINCT FROM b OR abs(a - b) <= 1e-9 * greatest(1, abs(a), abs(b)) $$;

-- Compares continuous view v with batch view b. diffs: -1 if their column
-- names or types differ, else the number of rows that differ as text
-- (values and their text form: a numeric's scale counts), in both directions.
-- A view with float4/float8 columns is compared group by group instead (joined
-- on its GROUP BY columns `keys`, an empty array for one row), the float
-- columns with dg_close, the others as text. value_diffs: the same count with
-- values compared by = instead of as text. sample: up to 3 differing rows.
CREATE FUNCTION dg_compare(v regclass, b regclass, keys text[],
                           OUT diffs bigint, OUT value_diffs bigint, OUT sample text)
LANGUAGE plpgsql AS $$
DECLARE
  vcols text; bcols text; floats text[]; others text[]; f text; keyexpr text; rest text; cond text;
  mode text; n bigint; s text; nv bigint; nb bigint;
BEGIN
  SELECT string_agg(format('%I %s', attname, format_type(atttypid, atttypmod)), ', ' ORDER BY attnum) INTO vcols
    FROM pg_attribute WHERE attrelid = v AND attnum > 0 AND NOT attisdropped;
  SELECT string_agg(format('%I %s', attname, format_type(atttypid, atttypmod)), ', ' ORDER BY attnum) INTO bcols
    FROM pg_attribute WHERE attrelid = b AND attnum > 0 AND NOT attisdropped;
  IF vcols IS DISTINCT FROM bcols THEN
    diffs := -1;
    value_diffs := -1;
    sample := format('columns differ: view (%s), batch query (%s)', vcols, bcols);
    RETURN;
  END IF;
  SELECT array_agg(quote_ident(attname) ORDER BY attnum) FILTER (WHERE atttypid IN ('float4'::regtype, 'float8'::regtype)),
         array_agg(quote_ident(attname) ORDER BY attnum) FILTER (WHERE atttypid NOT IN ('float4'::regtype, 'float8'::regtype))
    INTO floats, others FROM pg_attribute WHERE attrelid = b AND attnum > 0 AND NOT attisdropped;
  EXECUTE format('SELECT (SELECT count(*) FROM %s), (SELECT count(*) FROM %s)', v, b) INTO nv, nb;
  IF floats IS NULL THEN
    EXECUTE format('SELECT count(*) FROM ((SELECT t::text FROM %1$s t EXCEPT ALL SELECT t::text FROM %2$s t)
                    UNION ALL (SELECT t::text FROM %2$s t EXCEPT ALL SELECT t::text FROM %1$s t)) d', v, b) INTO diffs;
    EXECUTE format('SELECT count(*) FROM ((TABLE %1$s EXCEPT ALL TABLE %2$s) UNION ALL (TABLE %2$s EXCEPT ALL TABLE %1$s)) d',
                   v, b) INTO value_diffs;
    EXECUTE format('SELECT string_agg(s, E''\n'') FROM (
                      (SELECT ''view only:  '' || t::text AS s FROM (SELECT t::text FROM %1$s t EXCEPT ALL SELECT t::text FROM %2$s t) t(t) LIMIT 3)
                      UNION ALL
                      (SELECT ''batch only: '' || t::text FROM (SELECT t::text FROM %2$s t EXCEPT ALL SELECT t::text FROM %1$s t) t(t) LIMIT 3)) s',
                   v, b) INTO sample;
  ELSE
    cond := '';
    FOREACH f IN ARRAY floats LOOP
      cond := cond || format(' OR NOT dg_close(v.%1$s, b.%1$s)', f);
    END LOOP;
    -- As text: keys and other columns as text. As values: numeric keys
    -- without trailing zeros (trim_scale), other columns compared by =.
    FOREACH mode IN ARRAY ARRAY['text', 'value'] LOOP
      SELECT coalesce('ROW(' || string_agg(CASE WHEN mode = 'value' AND atttypid = 'numeric'::regtype
                                                THEN 'trim_scale(t.' || quote_ident(attname) || ')'
                                                ELSE 't.' || quote_ident(attname) END, ', ' ORDER BY attnum) || ')::text', '''''')
        INTO keyexpr FROM pg_attribute WHERE attrelid = b AND attname = ANY (keys);
      rest := CASE WHEN others IS NULL THEN 'NULL::text'
                   ELSE 'ROW(' || (SELECT string_agg('t.' || o, ', ') FROM unnest(others) o) || ')' ||
                        CASE WHEN mode = 'text' THEN '::text' ELSE '' END END;
      EXECUTE format('SELECT count(*) FILTER (WHERE %1$s),
                             array_to_string((array_agg(''view '' || coalesce(v.dg_row, ''(none)'') || '' / batch '' ||
                                                        coalesce(b.dg_row, ''(none)'')) FILTER (WHERE %1$s))[1:3], E''\n'')
                      FROM (SELECT %2$s AS dg_key, %3$s AS dg_rest, t::text AS dg_row, t.* FROM %4$s t) v
                      FULL JOIN (SELECT %2$s AS dg_key, %3$s AS dg_rest, t::text AS dg_row, t.* FROM %5$s t) b
                      ON v.dg_key = b.dg_key',
                     'v.dg_key IS NULL OR b.dg_key IS NULL OR v.dg_rest IS DISTINCT FROM b.dg_rest' || cond,
                     keyexpr, rest, v, b)
        INTO n, s;
      IF mode = 'text' THEN diffs := n; sample := s; ELSE value_diffs := n; END IF;
    END LOOP;
    diffs := diffs + abs(nv - nb);
    value_diffs := value_diffs + abs(nv - nb);
  END IF;
  sample := format('view %s rows, batch query %s rows', nv, nb) || coalesce(E'\n' || sample, '');
END $$;
