-- Streams and continuous views for users who are not superusers: they need
-- USAGE on the server and CREATE on their schema, nothing on velostream's.
CREATE EXTENSION velostream;
CREATE ROLE stream_owner;
CREATE ROLE stream_reader;
GRANT USAGE ON FOREIGN SERVER velostream TO stream_owner;
GRANT CREATE ON SCHEMA public TO stream_owner;
SET ROLE stream_owner;
CREATE FOREIGN TABLE s (k text, v int) SERVER velostream;
CREATE MATERIALIZED VIEW sv WITH (velostream.continuous) AS SELECT k, count(*) AS n, avg(v) AS mean FROM s GROUP BY k;
INSERT INTO s VALUES ('a', 1), ('a', 2), ('b', 3);
SELECT velostream.wait('sv');
SELECT * FROM sv ORDER BY k;
SELECT view, sum(events_in) AS events_in, sum(backlog) AS backlog FROM velostream.stats GROUP BY view;
SELECT relname, pg_get_userbyid(relowner) AS owner FROM pg_class WHERE relname IN ('s', 'sv') ORDER BY 1;
-- the worker writes the view as its owner: a trigger the owner adds sees
-- the owner, not a superuser
CREATE TABLE trigger_log (who text, superuser boolean);
CREATE FUNCTION log_writer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO trigger_log SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user;
  RETURN NEW;
END $$;
CREATE TRIGGER sv_writer BEFORE INSERT OR UPDATE ON sv FOR EACH ROW EXECUTE FUNCTION log_writer();
INSERT INTO s VALUES ('a', 10);
SELECT velostream.wait('sv');
SELECT DISTINCT who, superuser FROM trigger_log;
SELECT * FROM sv ORDER BY k;
-- velostream's functions run with its rights only on its own logs
SELECT velostream.partition_backlog('pg_authid');
-- the owner's GRANTs decide who writes the stream and reads the view
GRANT INSERT ON s TO stream_reader;
GRANT SELECT ON sv TO stream_reader;
SET ROLE stream_reader;
INSERT INTO s VALUES ('c', 4);
SELECT velostream.wait('sv');
SELECT k, n FROM sv ORDER BY k;
INSERT INTO sv VALUES ('x', 1, 1);
RESET ROLE;
REVOKE INSERT ON s FROM stream_reader;
SET ROLE stream_reader;
INSERT INTO s VALUES ('d', 5);
-- a view that changes owner keeps being maintained (its state follows)
RESET ROLE;
DROP TRIGGER sv_writer ON sv;
ALTER TABLE sv OWNER TO stream_reader;
GRANT INSERT ON s TO stream_reader;
SET ROLE stream_reader;
INSERT INTO s VALUES ('e', 6);
SELECT velostream.wait('sv');
SELECT k, n FROM sv ORDER BY k;
RESET ROLE;
ALTER TABLE sv OWNER TO stream_owner;
SET ROLE stream_owner;
DROP MATERIALIZED VIEW sv;
DROP TABLE trigger_log;
DROP FUNCTION log_writer();
DROP FOREIGN TABLE s;
RESET ROLE;
SELECT count(*) AS catalog_rows_left FROM velostream.views;
DROP EXTENSION velostream;
REVOKE CREATE ON SCHEMA public FROM stream_owner;
DROP ROLE stream_owner;
DROP ROLE stream_reader;
