-- velostream 0.3 -> 0.4: one aggregate interface. A continuous view whose
-- groups several partition workers share keeps each group's partial states
-- as one bytea (the engine's state bytes of every aggregate) in its state
-- table, merged by the aggregates' own combine functions
-- (velostream._merge_states) and finalised by the same code as an owned
-- view's; 0.3 merged count/sum/min/max in SQL in the view's own columns and
-- kept avg's sum and count in the state table. Existing shared views are
-- converted here (velostream._convert_shared_state).
\echo Use "ALTER EXTENSION velostream UPDATE TO '0.4'" to load this file. \quit

-- Called by the workers' upsert as the view's owner, so EXECUTE stays with
-- PUBLIC; outside a worker's flush of that view it raises.
CREATE FUNCTION velostream._merge_states(view oid, state bytea, delta bytea) RETURNS bytea
  AS 'MODULE_PATHNAME', 'velostream_merge_states' LANGUAGE C STRICT;

CREATE FUNCTION velostream._convert_shared_state(view regclass) RETURNS void
  AS 'MODULE_PATHNAME', 'velostream_convert_shared_state' LANGUAGE C STRICT;
REVOKE EXECUTE ON FUNCTION velostream._convert_shared_state(regclass) FROM PUBLIC;

SELECT velostream._hold_workers();
SELECT velostream._convert_shared_state(view) FROM velostream.views WHERE NOT owned ORDER BY view;
