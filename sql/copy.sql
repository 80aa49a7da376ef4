-- COPY FROM STDIN into a stream: the fast path (velostream.fast_copy, on by
-- default) must read every field exactly as PostgreSQL's COPY does. The same
-- data goes into a stream with the fast path, a stream without it, and a
-- plain table; the views must equal each other and the batch query.
CREATE EXTENSION velostream;
SET TIME ZONE 'America/New_York';
CREATE FOREIGN TABLE fast (k text, ts timestamptz, t timestamp, i2 int2, i4 int, i8 bigint, n numeric, f float8,
                           b bool, d date, v varchar(4)) SERVER velostream;
CREATE FOREIGN TABLE slow (k text, ts timestamptz, t timestamp, i2 int2, i4 int, i8 bigint, n numeric, f float8,
                           b bool, d date, v varchar(4)) SERVER velostream;
CREATE TABLE plain (k text, ts timestamptz, t timestamp, i2 int2, i4 int, i8 bigint, n numeric, f float8,
                    b bool, d date, v varchar(4));
CREATE MATERIALIZED VIEW fast_rows WITH (velostream.continuous) AS
  SELECT k, ts, t, i2, i4, i8, v, count(*) AS n, sum(n) AS total_n, sum(f) AS total_f, count(b) AS with_b,
         min(d) AS min_d
  FROM fast GROUP BY k, ts, t, i2, i4, i8, v;
CREATE MATERIALIZED VIEW slow_rows WITH (velostream.continuous) AS
  SELECT k, ts, t, i2, i4, i8, v, count(*) AS n, sum(n) AS total_n, sum(f) AS total_f, count(b) AS with_b,
         min(d) AS min_d
  FROM slow GROUP BY k, ts, t, i2, i4, i8, v;

-- CSV: zones and offsets, a zoneless timestamptz (the session's TimeZone), 7
-- fraction digits (rounded), 24:00, infinity, integer spaces and signs,
-- quoted and unquoted empty strings, a column list in another order.
COPY fast (k, ts, t, i2, i4, i8, n, f, b, d, v) FROM STDIN (FORMAT csv, HEADER);
k,ts,t,i2,i4,i8,n,f,b,d,v
a,2001-01-01T00:01:00Z,2001-01-01 00:01:00,1,2,3,1.5,0.25,t,2001-01-01,abc
a,2001-01-01 05:30+05:30,2001-01-01T23:59:59.999999,-32768,2147483647,-9223372036854775808,NaN,Infinity,f,2001-02-03,x
b,2001-01-01 00:01:00,2001-01-01 00:01:00.1234567,+7, 42 ,0042,-0.000001,-Infinity,yes,epoch,""
b,2001-01-01T24:00:00Z,infinity,,,,,,,,
"c,d",2001-01-01T00:00:00.1234567+00,-infinity,0,-0,+0,1e3,1e-3,off,2001-01-01,"a""b"
"",2024-02-29 12:30:15.5-03,2024-02-29 12:30:15.5+05,1,1,1,1,1,1,2024-02-29,
,Jan 1 2001 00:01 UTC,January 1 2001,1,1,1,1,1,1,01/02/2001,abcd
\.
COPY fast (v, k, i4) FROM STDIN (FORMAT csv, FORCE_NULL (k), FORCE_NOT_NULL (v));
"",NULL_K,5
,"",6
\.
COPY fast FROM STDIN;
t1	2001-01-01 00:00:00+00	2001-01-01 00:00:00	1	2	3	4	5	t	2001-01-01	tab
t2	\N	\N	\N	\N	\N	\N	\N	\N	\N	\N
t\\3	2001-06-01 12:00:00-07	2001-06-01 12:00:00	1	2	3	4	5	t	2001-01-01	a\tb
\.
SET velostream.fast_copy = off;
COPY slow (k, ts, t, i2, i4, i8, n, f, b, d, v) FROM STDIN (FORMAT csv, HEADER);
k,ts,t,i2,i4,i8,n,f,b,d,v
a,2001-01-01T00:01:00Z,2001-01-01 00:01:00,1,2,3,1.5,0.25,t,2001-01-01,abc
a,2001-01-01 05:30+05:30,2001-01-01T23:59:59.999999,-32768,2147483647,-9223372036854775808,NaN,Infinity,f,2001-02-03,x
b,2001-01-01 00:01:00,2001-01-01 00:01:00.1234567,+7, 42 ,0042,-0.000001,-Infinity,yes,epoch,""
b,2001-01-01T24:00:00Z,infinity,,,,,,,,
"c,d",2001-01-01T00:00:00.1234567+00,-infinity,0,-0,+0,1e3,1e-3,off,2001-01-01,"a""b"
"",2024-02-29 12:30:15.5-03,2024-02-29 12:30:15.5+05,1,1,1,1,1,1,2024-02-29,
,Jan 1 2001 00:01 UTC,January 1 2001,1,1,1,1,1,1,01/02/2001,abcd
\.
COPY slow (v, k, i4) FROM STDIN (FORMAT csv, FORCE_NULL (k), FORCE_NOT_NULL (v));
"",NULL_K,5
,"",6
\.
COPY slow FROM STDIN;
t1	2001-01-01 00:00:00+00	2001-01-01 00:00:00	1	2	3	4	5	t	2001-01-01	tab
t2	\N	\N	\N	\N	\N	\N	\N	\N	\N	\N
t\\3	2001-06-01 12:00:00-07	2001-06-01 12:00:00	1	2	3	4	5	t	2001-01-01	a\tb
\.
COPY plain (k, ts, t, i2, i4, i8, n, f, b, d, v) FROM STDIN (FORMAT csv, HEADER);
k,ts,t,i2,i4,i8,n,f,b,d,v
a,2001-01-01T00:01:00Z,2001-01-01 00:01:00,1,2,3,1.5,0.25,t,2001-01-01,abc
a,2001-01-01 05:30+05:30,2001-01-01T23:59:59.999999,-32768,2147483647,-9223372036854775808,NaN,Infinity,f,2001-02-03,x
b,2001-01-01 00:01:00,2001-01-01 00:01:00.1234567,+7, 42 ,0042,-0.000001,-Infinity,yes,epoch,""
b,2001-01-01T24:00:00Z,infinity,,,,,,,,
"c,d",2001-01-01T00:00:00.1234567+00,-infinity,0,-0,+0,1e3,1e-3,off,2001-01-01,"a""b"
"",2024-02-29 12:30:15.5-03,2024-02-29 12:30:15.5+05,1,1,1,1,1,1,2024-02-29,
,Jan 1 2001 00:01 UTC,January 1 2001,1,1,1,1,1,1,01/02/2001,abcd
\.
COPY plain (v, k, i4) FROM STDIN (FORMAT csv, FORCE_NULL (k), FORCE_NOT_NULL (v));
"",NULL_K,5
,"",6
\.
COPY plain FROM STDIN;
t1	2001-01-01 00:00:00+00	2001-01-01 00:00:00	1	2	3	4	5	t	2001-01-01	tab
t2	\N	\N	\N	\N	\N	\N	\N	\N	\N	\N
t\\3	2001-06-01 12:00:00-07	2001-06-01 12:00:00	1	2	3	4	5	t	2001-01-01	a\tb
\.
RESET velostream.fast_copy;
SELECT velostream.wait('fast_rows'), velostream.wait('slow_rows');

CREATE VIEW expected AS
  SELECT k, ts, t, i2, i4, i8, v, count(*) AS n, sum(n) AS total_n, sum(f) AS total_f, count(b) AS with_b,
         min(d) AS min_d
  FROM plain GROUP BY k, ts, t, i2, i4, i8, v;
SELECT count(*) AS rows_in_view FROM fast_rows;
SELECT 'fast path, not in batch query' AS diff, * FROM (TABLE fast_rows EXCEPT TABLE expected) x
UNION ALL SELECT 'batch query, not in fast path', * FROM (TABLE expected EXCEPT TABLE fast_rows) y;
SELECT 'slow path, not in batch query' AS diff, * FROM (TABLE slow_rows EXCEPT TABLE expected) x
UNION ALL SELECT 'batch query, not in slow path', * FROM (TABLE expected EXCEPT TABLE slow_rows) y;
SELECT k, ts, t, i2, i4, i8, v, n FROM fast_rows ORDER BY k NULLS FIRST, ts NULLS FIRST, i4 NULLS FIRST;

-- Bad data: the same errors, with COPY's context, on both paths; nothing
-- of the failed COPY is counted.
COPY fast (k, i4) FROM STDIN (FORMAT csv);
ok,1
bad,99999999999
\.
COPY fast (k, ts) FROM STDIN (FORMAT csv);
bad,2001-02-30T00:00:00Z
\.
COPY fast (k, v) FROM STDIN (FORMAT csv);
bad,abcde
\.
COPY fast (k, i4) FROM STDIN (FORMAT csv);
bad,1,2
\.
COPY fast (k, i4, i8) FROM STDIN (FORMAT csv);
bad,1
\.
COPY fast (k, n) FROM STDIN (FORMAT csv);
bad,123456789012345678901234567890123456789
\.
SET velostream.fast_copy = off;
COPY fast (k, i4) FROM STDIN (FORMAT csv);
ok,1
bad,99999999999
\.
COPY fast (k, ts) FROM STDIN (FORMAT csv);
bad,2001-02-30T00:00:00Z
\.
RESET velostream.fast_copy;
-- INSERT routes a row to the partition COPY sent its group to: the groups
-- count both rows.
INSERT INTO fast SELECT * FROM plain WHERE k IN ('a', 'c,d', 't1');
INSERT INTO fast (k) VALUES ('after errors');
SELECT velostream.wait('fast_rows');
SELECT k, n FROM fast_rows WHERE k IN ('ok', 'bad', 'after errors', 'a', 'c,d', 't1') ORDER BY k, ts;

-- Privileges: INSERT on the stream is needed, as for any COPY. The refused
-- COPY has no inline data (\copy from a file): psql 15 releases differ in
-- what they do with inline data after a COPY FROM STDIN refused at its start.
CREATE ROLE copy_reader;
GRANT USAGE ON SCHEMA public TO copy_reader;
SET ROLE copy_reader;
\copy fast (k) from '/dev/null'
RESET ROLE;
GRANT INSERT ON fast TO copy_reader;
SET ROLE copy_reader;
COPY fast (k) FROM STDIN;
granted
\.
RESET ROLE;
SELECT velostream.wait('fast_rows');
SELECT k, n FROM fast_rows WHERE k = 'granted';
REVOKE INSERT ON fast FROM copy_reader;
REVOKE USAGE ON SCHEMA public FROM copy_reader;
DROP ROLE copy_reader;
DROP VIEW expected;
DROP TABLE plain;
SET client_min_messages = warning;
DROP EXTENSION velostream CASCADE;
