#!/usr/bin/env python3
"""Differential query generator for continuous views (driven by differential.sh).

Generates random continuous-view queries from a grammar over the flights
columns (ts timestamptz, delay int, distance int, origin text, destination
text), creates each one over stream s1 (1 partition: every view owns its
groups) or s2 (2 partitions, routed by origin or destination: views grouping by
the routing column own their groups, the others share them), feeds a slice of
real flights in several transactions, and compares each view's table with the
same SELECT run as a batch query over the plain table dg_plain:

  * columns: the same names and types (format_type, typmod included);
  * rows: equal as text (SELECT t::text ... EXCEPT ALL, both ways), so numeric
    scales count too; a view with a float4/float8 column is compared per group
    instead (joined on its GROUP BY columns), its float columns within 1e-9
    relative (absolute below 1), the others as text. Float aggregates never
    appear in HAVING or CASE, where a last-bit difference could flip a group.

About 10% of the queries use a construct the engine does not support (a
volatile function, an ordered-set aggregate, an aggregate without a combine
function, a window function, a subquery, ORDER BY, LIMIT, a join, ...): its
CREATE must fail with the SQLSTATE listed next to it (and a message naming a
continuous view or tumble()) and leave no view behind. Each such query is
also created as a plain VIEW over dg_plain, to show PostgreSQL itself accepts it.

Division by zero is generated on purpose: `(distance / delay)` (delay = 0
in 85 rows of the slice) in GROUP BY, WHERE, FILTER, aggregate arguments
(also under DISTINCT), alone or inside AND / OR / NOT. The engine evaluates
each such per-row expression (a computed column) for the rows PostgreSQL
evaluates it for: the WHERE clause as a whole for every row; GROUP BY
expressions, FILTER conditions and the arguments of aggregates without FILTER
for the rows that pass WHERE; the arguments of an aggregate with FILTER for
the rows that also pass its FILTER (of any of the aggregates sharing the
argument). A row for which one raises goes to velostream.errors and the view
skips it, for all its aggregates (README, "Computed columns"): PostgreSQL's
batch query would fail as a whole. So such a view is compared with its batch
query over dgr_<index>: the rows of dg_plain for which none of those
expressions raises where it is evaluated, each evaluated as a whole by
PostgreSQL (dg_evaluates, under its guard), with the division written
(distance / nullif(delay, 0)) so that the batch query cannot raise where
short-circuit evaluation skipped it. The view's dead letters must be exactly
the other rows, all "division by zero".

Every query is a function of (seed, index) alone: DG_ONLY=index runs one
query (in its round, after the round's anchor view on s2) to reproduce it.
Environment: DG_SEED (1), DG_QUERIES (1000), DG_PER_ROUND (100), DG_ONLY,
DG_PSQL (the psql command line), DG_WORK (a directory for scratch files).
Prints a line per round, every failure with its seed, index and query, and
PASS/FAIL lines; exits 1 on any failure.
"""
import os
import random
import shlex
import subprocess
import sys
import time

SEED = int(os.environ.get("DG_SEED", "1"))
QUERIES = int(os.environ.get("DG_QUERIES", "1000"))
PER_ROUND = int(os.environ.get("DG_PER_ROUND", "100"))
ONLY = os.environ.get("DG_ONLY")
PSQL = shlex.split(os.environ["DG_PSQL"])
WORK = os.environ.get("DG_WORK", "/tmp")

# --------------------------------------------------------------------------
# The grammar. Expressions are SQL text over the stream's columns; RAISING is
# the one that divides by delay (an error on rows with delay = 0).
# --------------------------------------------------------------------------

RAISING = "(distance / delay)"  # raises where delay = 0; the guarded CASE below does not
SAFE = "(distance / nullif(delay, 0))"

# GROUP BY expressions: (sql, kind) with kind text | int | other.
KEYS = [
    ("origin", "text"), ("destination", "text"), ("delay", "int"), ("distance", "int"),
    ("tumble(ts, interval '1 hour')", "other"), ("tumble(ts, interval '1 day')", "other"),
    ("tumble(ts, interval '30 minutes')", "other"), ("tumble(ts, interval '6 hours')", "other"),
    ("tumble(ts, interval '15 minutes')", "other"), ("tumble(ts, interval '1 day 12 hours')", "other"),
    ("origin || '-' || destination", "text"),
    ("date_trunc('day', ts AT TIME ZONE 'UTC')", "other"),
    ("date_trunc('hour', ts AT TIME ZONE 'America/New_York')", "other"),
    ("(ts AT TIME ZONE 'UTC')::date", "other"),
    ("extract(hour FROM ts AT TIME ZONE 'UTC')", "other"),
    ("CASE WHEN distance < 500 THEN 'short' ELSE 'long' END", "text"),
    ("CASE WHEN delay IS NULL THEN 'unknown' WHEN delay > 15 THEN 'late' ELSE 'on time' END", "text"),
    ("upper(origin)", "text"), ("lower(destination)", "text"), ("substr(destination, 1, 1)", "text"),
    ("delay / 10", "int"), ("distance / 500", "int"), ("coalesce(delay, -999)", "int"),
    ("delay > 15", "other"), ("delay::numeric / 4", "other"), ("distance * 1.5", "other"),
    (RAISING, "int"),
]

INT_ARGS = ["delay", "distance", "delay * 2", "distance / 100", "coalesce(delay, 0)", "abs(delay)",
            "delay + distance", "CASE WHEN delay <> 0 THEN distance / delay END", "length(origin)",
            "delay::bigint * 1000000000", "distance::smallint", RAISING]
NUM_ARGS = ["delay / 7.0", "distance * 0.01", "delay::numeric"]
FLOAT_ARGS = ["delay::float8", "distance / 3.0::float8", "sqrt(distance)", "delay::real"]
TEXT_ARGS = ["origin", "destination", "upper(destination)", "origin || destination",
             "destination COLLATE \"C\"",
             # longer than std::string's inline buffer, multibyte
             "origin || ' → ' || destination || ' via ' || lower(origin)"]
TIME_ARGS = ["ts", "ts AT TIME ZONE 'UTC'", "(ts AT TIME ZONE 'UTC')::date"]
# interval arguments (computed columns the engine stores; min / max / sum / avg
# native). Each value has one representation per span, so that results
# compare equal as text whatever the order rows came in.
INTERVAL_ARGS = ["make_interval(mins => delay)", "make_interval(days => distance / 100, secs => delay)",
                 "ts - (date_trunc('day', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')",
                 f"make_interval(mins => {RAISING})"]
BOOL_ARGS = ["delay > 30", "distance > 1000", "delay IS NULL", "origin = 'SFO'", "delay < distance / 100"]
PLAIN_COLUMNS = ["delay", "distance", "origin", "destination", "ts"]

# WHERE / FILTER atoms: the engine's own predicates and executor ones.
def atom(r):
    k = r.choice([-10, 0, 5, 15, 30, 60])
    return r.choice([
        lambda: f"delay {r.choice(['>', '<', '>=', '<=', '=', '<>'])} {k}",
        lambda: f"distance BETWEEN {r.choice([0, 300, 600])} AND {r.choice([800, 1500, 3000])}",
        lambda: "origin IN (" + ", ".join(r.sample(["'SFO'", "'SEA'", "'PDX'", "'XYZ'", "'BOS'"], 2)) + ")",
        lambda: f"destination IN ('LAX', 'JFK', 'ORD', 'DEN')",
        lambda: f"origin = '{r.choice(['SFO', 'SEA', 'SAN'])}'",
        lambda: f"destination <> '{r.choice(['LAX', 'SFO', 'ORD'])}'",
        lambda: f"{r.choice(['delay', 'origin', 'ts', 'distance', 'destination'])} IS {r.choice(['', 'NOT '])}NULL",
        lambda: f"origin COLLATE \"C\" >= '{r.choice(['M', 'S', 'SE'])}'",
        lambda: f"destination < '{r.choice(['D', 'M', 'P'])}'",
        lambda: f"coalesce(delay, 0) > {k}",
        lambda: f"origin LIKE '{r.choice(['S%', '%A%', 'B_S'])}'",
        lambda: f"destination NOT LIKE '%{r.choice(['A', 'O', 'X'])}%'",
        lambda: "delay % 2 = 0",
        lambda: f"ts >= timestamptz '2001-01-0{r.choice([1, 2])} {r.choice(['06', '12', '18'])}:00+00'",
        lambda: "delay < distance / 100",
        lambda: "delay <> distance",
        lambda: "(ts AT TIME ZONE 'UTC')::time < '12:00'",
        lambda: "upper(destination) IN ('LAX', 'JFK', 'SEA')",
        lambda: f"{RAISING} > {r.choice([2, 10, 50])}",
        lambda: "delay BETWEEN 0 AND 30 OR delay IS NULL",
        lambda: f"distance NOT BETWEEN {r.choice([0, 300])} AND {r.choice([800, 1500])}",
        lambda: f"delay {r.choice(['IN', 'NOT IN'])} (0, 5, {r.choice(['10', 'NULL'])})",
        lambda: "origin " + r.choice(["IN", "NOT IN"]) + " ('SFO', " + r.choice(["'SEA'", "NULL"]) + ")",
        lambda: f"delay IS {r.choice(['', 'NOT '])}DISTINCT FROM {r.choice(['0', 'NULL', 'distance'])}",
        lambda: f"(delay > {k}) IS {r.choice(['TRUE', 'NOT TRUE', 'UNKNOWN'])}",
    ])()


def condition(r, depth=0):
    x = r.random()
    if depth < 2 and x < 0.25:
        return f"({condition(r, depth + 1)} {r.choice(['AND', 'OR'])} {condition(r, depth + 1)})"
    if depth < 2 and x < 0.32:
        return f"NOT ({condition(r, depth + 1)})"
    return f"({atom(r)})"


# The per-row expressions of the query being generated (aggregate arguments and
# FILTER conditions; generate() adds the keys and WHERE): the ones containing
# RAISING decide which rows the view skips.
ROW_EXPRS = []


def arg(x):
    ROW_EXPRS.append((x, None))
    return x


def aggregate(r):
    """One aggregate call: (sql, exact). Exact ones may appear in HAVING and expressions."""
    mark = len(ROW_EXPRS)

    def filt(sql):
        if r.random() < 0.25:
            cond = condition(r, 1)
            # this aggregate's arguments are evaluated only where cond holds
            for i in range(mark, len(ROW_EXPRS)):
                ROW_EXPRS[i] = (ROW_EXPRS[i][0], cond)
            return f"{sql} FILTER (WHERE {arg(cond)})"
        return sql
    stat = ["stddev_samp", "stddev_pop", "var_pop", "var_samp", "variance", "stddev"]
    choice = r.randrange(12)
    if choice == 0:
        return filt("count(*)"), True
    if choice == 1:
        return filt(f"count({arg(r.choice(INT_ARGS + TEXT_ARGS + TIME_ARGS + BOOL_ARGS))})"), True
    if choice == 2:
        return filt(f"{r.choice(['sum', 'avg'])}({arg(r.choice(INT_ARGS + NUM_ARGS + INTERVAL_ARGS))})"), True
    if choice == 3:
        return filt(f"{r.choice(['min', 'max'])}({arg(r.choice(INT_ARGS + NUM_ARGS + TEXT_ARGS + TIME_ARGS + INTERVAL_ARGS))})"), True
    if choice == 4:
        return filt(f"{r.choice(stat)}({arg(r.choice(INT_ARGS + NUM_ARGS))})"), True
    if choice == 5:   # float8 results: compared within a tolerance, kept out of HAVING
        f = r.choice(["sum", "avg", "min", "max"] + stat)
        return filt(f"{f}({arg(r.choice(FLOAT_ARGS))})"), False
    if choice == 6:
        f = r.choice(["corr", "covar_pop", "covar_samp", "regr_slope", "regr_intercept", "regr_count"])
        # Integer-valued arguments only: a group whose x (or y) is constant
        # then has a variance of exactly 0 (NULL results) whatever the order of
        # summation; with sqrt(distance) or distance / 7.0 it would be a few
        # ulps, and corr or regr_slope of such a group is rounding noise.
        a = arg(r.choice(["delay", "distance", "delay::float8", "distance * 2"]))
        b = arg(r.choice(["distance", "delay", "(distance / 7)::float8"]))
        return filt(f"{f}({a}, {b})"), f == "regr_count"
    if choice == 7:
        return filt(f"{r.choice(['bool_or', 'bool_and', 'every'])}({arg(r.choice(BOOL_ARGS))})"), True
    if choice == 8:
        return filt(f"{r.choice(['bit_or', 'bit_and'])}({arg(r.choice(INT_ARGS))})"), True
    if choice == 9:   # DISTINCT: a plain column, or an expression (a computed column)
        x = arg(r.choice(PLAIN_COLUMNS + INT_ARGS + TEXT_ARGS))
        if x in ("origin", "destination", "ts") or x in TEXT_ARGS:
            f = r.choice(["count", "min", "max"])
        else:
            f = r.choice(["count", "sum", "avg", "min", "max", "stddev_samp", "bit_or"])
        return filt(f"{f}(DISTINCT {x})"), True
    if choice == 10:
        return filt("sum(delay::real)"), False
    return filt(f"{r.choice(['sum', 'max', 'avg'])}({arg(RAISING)})"), True


def exact_aggregate(r):
    while True:
        mark = len(ROW_EXPRS)
        sql, exact = aggregate(r)
        if exact:
            return sql
        del ROW_EXPRS[mark:]   # not used


def agg_expression(r, keys):
    """A select-list expression over (exact) aggregates and keys."""
    num = lambda: r.choice(["delay", "distance", "delay / 7.0"])
    forms = [
        lambda: f"round(avg({num()}), {r.choice([0, 2, 4])})",
        lambda: f"count(*) * {r.choice([2, 10])}",
        lambda: "max(delay) - min(delay)",
        lambda: f"sum({num()}) / nullif(count(delay), 0)",
        lambda: "coalesce(sum(delay), 0) + count(*)",
        lambda: f"CASE WHEN count(*) > {r.choice([2, 10, 50])} THEN 'many' ELSE 'few' END",
        lambda: f"round(stddev_samp({num()}), 3)",
        lambda: "count(DISTINCT destination) * 10 + count(DISTINCT origin)",
        lambda: "round(100.0 * count(*) FILTER (WHERE delay > 15) / nullif(count(*), 0), 1)",
        lambda: "max(ts) - min(ts)",
        lambda: "greatest(max(delay), 0) + least(min(distance), 100)",
        lambda: f"count(*) > {r.choice([1, 5, 20])}",
        lambda: f"{exact_aggregate(r)} IS NULL",
        lambda: "avg(delay::float8) * 2",   # a float8 result (compared within a tolerance)
        lambda: "justify_hours(sum(make_interval(mins => delay)) / 2)",
    ]
    text_keys = [k for k, kind in keys if kind == "text"]
    int_keys = [k for k, kind in keys if kind == "int"]
    if text_keys:
        forms.append(lambda: f"({r.choice(text_keys)}) || ':' || count(*)::text")
    if int_keys:
        forms.append(lambda: f"({r.choice(int_keys)}) + count(*)")
    return r.choice(forms)()


def having(r, keys):
    atoms = [
        lambda: f"count(*) > {r.choice([1, 2, 5, 10])}",
        lambda: f"avg(delay) > {r.choice([-5, 0, 5, 10, 20])}",
        lambda: f"sum(distance) > {r.choice([1000, 10000, 100000])}",
        lambda: f"max(delay) >= {r.choice([0, 30, 120])}",
        lambda: "count(DISTINCT destination) > 1",
        lambda: "min(origin) < 'S'",
        lambda: "bool_or(delay > 60)",
        lambda: f"max(make_interval(mins => delay)) > interval '{r.choice([0, 30, 120])} minutes'",
        lambda: f"{exact_aggregate(r)} IS NOT NULL",
    ]
    text_keys = [k for k, kind in keys if kind == "text"]
    if text_keys:
        atoms.append(lambda: f"({r.choice(text_keys)}) <> 'SFO'")
    h = r.choice(atoms)()
    if r.random() < 0.3:
        h = f"{h} {r.choice(['AND', 'OR'])} {r.choice(atoms)()}"
    return h


# Constructs the engine must refuse: (name, expected SQLSTATE, mutation of a
# valid query). Each keeps the query valid for PostgreSQL.
def refuse_item(sql):
    return lambda q: q["items"].append(sql)


REFUSED = [
    ("volatile function in an aggregate", "0A000", refuse_item("sum(delay * random())")),
    ("volatile function in WHERE", "0A000", lambda q: q["where"].append("ts < now()")),
    ("ordered-set aggregate", "0A000", refuse_item("percentile_cont(0.5) WITHIN GROUP (ORDER BY delay)")),
    ("mode() ordered-set aggregate", "0A000", refuse_item("mode() WITHIN GROUP (ORDER BY origin)")),
    ("aggregate without a combine function", "0A000", refuse_item("array_agg(delay)")),
    ("string_agg (no combine function)", "0A000", refuse_item("string_agg(destination, ',')")),
    ("window function", "0A000", refuse_item("count(*) OVER ()")),
    ("subquery in WHERE", "0A000", lambda q: q["where"].append("delay > (SELECT 0)")),
    ("IN (subquery)", "0A000", lambda q: q["where"].append("origin IN (SELECT 'SFO')")),
    ("ORDER BY", "0A000", lambda q: q.__setitem__("tail", " ORDER BY 1")),
    ("LIMIT", "0A000", lambda q: q.__setitem__("tail", " LIMIT 10")),
    ("join with another stream", "0A000", lambda q: q.__setitem__("join", " JOIN {src2} o2 USING (ts, delay, distance, origin, destination)")),
    ("SELECT DISTINCT", "0A000", lambda q: q.__setitem__("distinct", True)),
    ("GROUP BY expression not in the select list", "0A000", lambda q: q["extra_group"].append("length(destination)")),
    ("tumble() by months", "0A000", lambda q: q["keys"].append(("tumble(ts, interval '1 month')", "other"))),
    ("tumble() of size zero", "22023", lambda q: q["keys"].append(("tumble(ts, interval '0 hours')", "other"))),
    ("stable cast in the select list", "0A000", refuse_item("max(ts)::text")),
    # date_trunc(text, timestamptz) is STABLE (it depends on TimeZone): refused.
    # date_trunc('day', ts AT TIME ZONE 'UTC') is IMMUTABLE and in KEYS.
    ("date_trunc of a timestamptz (STABLE)", "0A000", lambda q: q["keys"].append(("date_trunc('day', ts)", "other"))),
    ("to_char (STABLE)", "0A000", lambda q: q["keys"].append(("to_char(ts, 'HH24')", "other"))),
    ("timestamptz::date (STABLE)", "0A000", lambda q: q["keys"].append(("ts::date", "other"))),
    ("timestamptz compared with a date (STABLE)", "0A000", lambda q: q["where"].append("ts >= date '2001-01-02'")),
    ("now() in the select list", "0A000", refuse_item("max(ts) - now()")),
    ("clock_timestamp() in FILTER", "0A000", refuse_item("count(*) FILTER (WHERE ts < clock_timestamp())")),
    ("DISTINCT over a row", "0A000", refuse_item("count(DISTINCT (delay, origin))")),
    ("ORDER BY inside an aggregate", "0A000", refuse_item("sum(delay ORDER BY delay)")),
    ("ROLLUP", "0A000", lambda q: q.__setitem__("rollup", "ROLLUP")),
    ("CUBE", "0A000", lambda q: q.__setitem__("rollup", "CUBE")),
    ("GROUPING SETS", "0A000", lambda q: q.__setitem__("rollup", "GROUPING SETS")),
    ("WITH (a CTE)", "0A000", lambda q: q.__setitem__("with", "WITH c AS (SELECT 1 AS one) ")),
    ("set-returning function", "0A000", refuse_item("generate_series(1, 2)")),
    ("UNION", "0A000", lambda q: q.__setitem__("union", True)),
    ("no aggregate and no GROUP BY", "0A000", lambda q: q.__setitem__("no_aggregate", True)),
    ("a plain table in FROM", "42809", lambda q: q.__setitem__("from_table", True)),
]


def generate(idx):
    """The query number idx of seed SEED: a dict with the view's and the batch query's SQL."""
    r = random.Random(f"{SEED}:{idx}")
    ROW_EXPRS.clear()
    q = {"idx": idx, "stream": r.choice(["s1", "s2"]), "items": [], "where": [], "keys": [],
         "extra_group": [], "tail": "", "join": "", "distinct": False, "rollup": None, "with": "",
         "no_aggregate": False, "union": False, "refuse": None}
    nkeys = r.choices([0, 1, 2, 3], weights=[10, 40, 35, 15])[0]
    for k in r.sample(KEYS, nkeys):
        q["keys"].append(k)
    naggs = r.choices([1, 2, 3, 4, 5], weights=[20, 30, 25, 15, 10])[0]
    for _ in range(naggs):
        if r.random() < 0.2:
            q["items"].append(agg_expression(r, q["keys"]))
        else:
            q["items"].append(aggregate(r)[0])
    if r.random() < 0.6:
        q["where"].append(condition(r))
    q["having"] = having(r, q["keys"]) if r.random() < 0.25 else None
    q["by_position"] = r.random() < 0.3
    q["alias"] = r.random() < 0.1     # FROM stream f
    q["collist"] = r.random() < 0.1   # CREATE MATERIALIZED VIEW name (column, ...)
    if r.random() < 0.1:
        what, state, mutate = r.choice(REFUSED)
        mutate(q)
        q["refuse"] = (what, state)
    return render(q, r)


def render(q, r):
    """SQL text of q, with {src} for the FROM relation (the stream, or the plain table)."""
    keys = [k for k, _ in q["keys"]]
    items = [(k, f"k{i + 1}") for i, k in enumerate(keys)] + \
            [(a, f"c{i + 1}") for i, a in enumerate(q["items"])]
    if q["no_aggregate"]:
        items = [(k, a) for k, a in items if a.startswith("k")] or [("origin", "k1")]
        keys = []
    r.shuffle(items)
    select = ", ".join(f"{sql} AS {alias}" for sql, alias in items)
    if q["union"]:
        q["tail"] = " UNION ALL SELECT " + ", ".join("NULL" for _ in items)
    if q["no_aggregate"]:
        q["having"] = None
    sql = q["with"] + "SELECT " + ("DISTINCT " if q["distinct"] else "") + select + " FROM {src}" + \
        (" f" if q["alias"] else "") + q["join"]
    if q["where"]:
        sql += " WHERE " + " AND ".join(q["where"])
    group = []
    if keys:
        if q["by_position"]:
            group = [str(next(i + 1 for i, (s, _) in enumerate(items) if s == k)) for k in keys]
        else:
            group = list(keys)
        r.shuffle(group)
    group += q["extra_group"]
    if group:
        if q["rollup"] == "GROUPING SETS":   # two sets: GROUPING SETS ((x)) alone is a plain GROUP BY x
            sql += f" GROUP BY GROUPING SETS (({', '.join(group)}), ())"
        elif q["rollup"]:
            sql += f" GROUP BY {q['rollup']} ({', '.join(group)})"
        else:
            sql += " GROUP BY " + ", ".join(group)
    elif q["rollup"]:
        sql += f" GROUP BY {q['rollup']} (origin)"
    if q["having"]:
        sql += " HAVING " + q["having"]
    sql += q["tail"]
    q["sql"] = sql
    q["key_aliases"] = [a for s, a in items if a.startswith("k")] if keys else []
    q["columns"] = ""
    if q["collist"]:   # the view's columns renamed: v_k1, v_c1, ...
        q["columns"] = " (" + ", ".join(f"v_{a}" for _, a in items) + ")"
        q["key_aliases"] = [f"v_{a}" for a in q["key_aliases"]]
    # The expressions the engine evaluates for every row (computed columns):
    # GROUP BY expressions, the WHERE clause as a whole, FILTER conditions and
    # aggregate arguments. Those that divide by delay can raise.
    # Each is evaluated under a guard (see the module's docstring): ALL
    # (every row), None (rows passing WHERE) or FILTER conditions.
    where = " AND ".join(q["where"])
    where_safe = where.replace(RAISING, SAFE) if where else "true"
    guards = {}
    for e, g in [(where, "ALL")] + [(k, None) for k in keys] + ROW_EXPRS:
        if e and RAISING in e and e in sql:
            guards.setdefault(e, set()).add(g)
    q["raising"] = []
    for e, gs in guards.items():
        if "ALL" in gs:
            guard = "true"
        elif None in gs:
            guard = where_safe
        else:
            filters = " OR ".join(f"coalesce(({g.replace(RAISING, SAFE)}), false)" for g in sorted(gs))
            guard = f"coalesce(({where_safe}), false) AND ({filters})"
        q["raising"].append((e, guard))
    return q


def anchor(rnd):
    """The first view of round rnd on s2: it fixes s2's routing column."""
    route = random.Random(f"{SEED}:anchor:{rnd}").choice(["origin", "destination"])
    q = {"idx": f"a{rnd}", "stream": "s2", "refuse": None, "raising": [], "key_aliases": ["k1"], "columns": "",
         "sql": f"SELECT {route} AS k1, count(*) AS c1, sum(delay) AS c2 FROM {{src}} GROUP BY {route}"}
    return q


# --------------------------------------------------------------------------
# Running queries.
# --------------------------------------------------------------------------

def psql(script, name):
    """Runs a script (no stop on error); returns its stdout lines. stderr goes to WORK/name.err."""
    with open(os.path.join(WORK, name + ".err"), "w") as err:
        out = subprocess.run(PSQL + ["-v", "ON_ERROR_STOP=0", "-f", "-"], input=script, text=True,
                             stdout=subprocess.PIPE, stderr=err, check=False).stdout
    return [line for line in out.splitlines() if line]


def lit(s):
    return "'" + s.replace("'", "''") + "'"


def view_sql(q):
    src = "dg_plain" if q.get("from_table") else q["stream"]
    return q["sql"].replace("{src}", src).replace("{src2}", "s1" if q["stream"] == "s2" else "s2")


def batch_sql(q):
    """The batch query: over dg_plain, or for a query that divides by delay,
    over dgr_<idx>, the rows none of its per-row expressions raise for (the
    rows the view counts; the others go to velostream.errors), with the
    division made safe: on those rows it only has delay = 0 where the engine
    never evaluated it (AND / OR / CASE skipped it), so its value is unused."""
    if not q["raising"]:
        return q["sql"].replace("{src2}", "dg_plain").replace("{src}", "dg_plain")
    return q["sql"].replace("{src2}", "dg_plain").replace("{src}", f"dgr_{q['idx']}").replace(RAISING, SAFE)


def raising_rows_sql(q):
    exprs = "ARRAY[" + ", ".join(lit(e) for e, _ in q["raising"]) + "]"
    guards = "ARRAY[" + ", ".join(lit(g) for _, g in q["raising"]) + "]"
    return f"CREATE TABLE dgr_{q['idx']} AS SELECT * FROM dg_plain t WHERE dg_evaluates(t, {exprs}, {guards});"


def name(q):
    return f"dg_{q['idx']}"


failures = []
kinds = {}   # failure kind -> count


def fail(q, what, detail="", kind=None):
    failures.append(q["idx"])
    kind = kind or what.split(":")[0]
    kinds[kind] = kinds.get(kind, 0) + 1
    print(f"FAIL: differential seed {SEED} query #{q['idx']}: {what}")
    print(f"  view:   CREATE MATERIALIZED VIEW {name(q)}{q['columns']} WITH (velostream.continuous) AS {view_sql(q)}")
    if not q["refuse"]:
        print(f"  batch:  {batch_sql(q)}" + (f"   (dgr_{q['idx']}: the rows of dg_plain for which "
                                              f"{' or '.join(e for e, _ in q['raising'])} does not raise)" if q["raising"] else ""))
    if q["idx"] is not None and not str(q["idx"]).startswith("a"):
        print(f"  repeat: DG_SEED={SEED} DG_ONLY={q['idx']} bash test/integration/differential.sh")
    for line in detail.splitlines():
        print(f"  {line}")


def run_round(rnd, queries):
    t0 = time.time()
    # 1. Create: the batch query as a plain view, then the continuous view, each logged.
    script = []
    for q in queries:
        view = view_sql(q)
        if q["raising"]:
            script.append(raising_rows_sql(q))
        script.append(f"CREATE VIEW dgb_{q['idx']}{q['columns']} AS {batch_sql(q)};")
        script.append(f"INSERT INTO dg_log VALUES ('{q['idx']}', 'batch', :'SQLSTATE', :'LAST_ERROR_MESSAGE');")
        script.append(f"CREATE MATERIALIZED VIEW {name(q)}{q['columns']} WITH (velostream.continuous) AS {view};")
        script.append(f"INSERT INTO dg_log VALUES ('{q['idx']}', 'view', :'SQLSTATE', :'LAST_ERROR_MESSAGE');")
    ids = ", ".join(lit(str(q["idx"])) for q in queries)
    script.append(f"SELECT idx, what, state, to_regclass('dg_' || idx) IS NOT NULL, "
                  f"replace(message, E'\\n', ' ') FROM dg_log WHERE idx IN ({ids});")
    log = {}
    for line in psql("\n".join(script), "create"):
        idx, what, state, exists, message = line.split("|", 4)
        log[(idx, what)] = (state, message, exists == "t")
    created = []
    refused_ok = unexpected = wrong = 0
    for q in queries:
        key = str(q["idx"])
        bstate, bmsg, _ = log.get((key, "batch"), ("?", "not run", False))
        vstate, vmsg, exists = log.get((key, "view"), ("?", "not run", False))
        if bstate != "00000":
            fail(q, f"generator error: PostgreSQL refuses the batch query ({bstate}: {bmsg})", kind="generator error")
            if exists:
                created.append(q)
            continue
        if q["refuse"]:
            what, want = q["refuse"]
            if vstate == "00000" or exists:
                fail(q, f"accepted a query that must be refused ({what})", kind="accepted, must be refused")
                created.append(q)
            elif vstate != want or not ("continuous view" in vmsg or "tumble()" in vmsg):
                fail(q, f"refused ({what}) with an unexpected error: {vstate}: {vmsg} (expected {want})",
                     kind="refused with an unexpected error")
            else:
                refused_ok += 1
            continue
        if vstate != "00000" or not exists:
            unexpected += 1
            fail(q, f"unexpected refusal: {vstate}: {vmsg}")
            continue
        created.append(q)

    # 2. Feed both streams the same rows, all of dg_plain, in transactions of
    # every kind, with pauses so that the workers flush between them (views
    # are updated several times, groups enter and leave HAVING): INSERT ...
    # SELECT by ranges of id, one transaction writing both streams, a COPY
    # (the fast path), two statements in one transaction, a rolled-back
    # transaction and a rolled-back savepoint (neither may count).
    def rows(where):
        return f"SELECT ts, delay, distance, origin, destination FROM dg_plain WHERE {where}"
    pause = "SELECT pg_sleep(0.12);"
    feed = [f"INSERT INTO s1 {rows('id BETWEEN 1 AND 600')};", pause,
            f"INSERT INTO s2 {rows('id BETWEEN 1 AND 600')};",
            "BEGIN;", f"INSERT INTO s2 {rows('true')};", f"INSERT INTO s1 {rows('id > 600')};", "ROLLBACK;",
            "BEGIN;", f"INSERT INTO s1 {rows('id BETWEEN 601 AND 1200')};",
            f"INSERT INTO s2 {rows('id BETWEEN 601 AND 1200')};", "COMMIT;", pause]
    for st in ("s1", "s2"):
        feed.append(f"\\copy {st} FROM '{WORK}/chunk.csv' (FORMAT csv)")   # ids 1201 to 1900
    feed.append(pause)
    for st in ("s1", "s2"):
        feed += ["BEGIN;", f"INSERT INTO {st} {rows('id > 1900 AND id % 2 = 0')};", "SAVEPOINT sp;",
                 f"INSERT INTO {st} {rows('id > 1000')};", "ROLLBACK TO SAVEPOINT sp;",
                 f"INSERT INTO {st} {rows('id > 1900 AND id % 2 = 1')};", "COMMIT;", pause]
    feed.append("SELECT 'fed';")
    if psql("\n".join(feed), "feed") != ["fed"]:
        print("FAIL: differential: feeding the streams failed, see " + os.path.join(WORK, "feed.err"))
        failures.append("feed")

    # 3. Wait for every view, then compare each with its batch query.
    # The first view of each stream may wait long; the others share its
    # workers, so a view still behind after 10 s more is stuck (failing).
    script, first = [], set()
    for q in created:
        timeout = "10 s" if q["stream"] in first else "120 s"
        first.add(q["stream"])
        script.append(f"SELECT 'W', '{q['idx']}', velostream.wait('{name(q)}', '{timeout}');")
    for q in created:
        keys = "ARRAY[" + ", ".join(lit(k) for k in q["key_aliases"]) + "]::text[]"
        script.append(f"SELECT 'C', '{q['idx']}', diffs, value_diffs, replace(sample, E'\\n', '~~') "
                      f"FROM dg_compare('{name(q)}', 'dgb_{q['idx']}', {keys});")
    for q in created:
        if q["raising"]:
            script.append(f"SELECT 'R', '{q['idx']}', (SELECT count(*) FROM dg_plain) - count(*) FROM dgr_{q['idx']};")
    script.append("SELECT 'O', count(*) FILTER (WHERE owned), count(*) FILTER (WHERE NOT owned) "
                  "FROM velostream.views WHERE stream = 's2'::regclass;")
    script.append("SELECT 'E', substring(reason FROM '^continuous view \"?(dg_[0-9a-z]+)\"?:'), count(*), "
                  "count(*) FILTER (WHERE reason NOT LIKE '%division by zero%') FROM velostream.errors "
                  "GROUP BY 2;")
    waited, compared, errors, skipped, owned = {}, {}, {}, {}, ""
    for line in psql("\n".join(script), "compare"):
        f = line.split("|", 4)
        if f[0] == "W":
            waited[f[1]] = f[2] == "t"
        elif f[0] == "E":
            errors[f[1]] = (int(f[2]), int(f[3]))
        elif f[0] == "O":
            owned = f"s2: {f[1]} owned, {f[2]} shared"
        elif f[0] == "R":
            skipped[f[1]] = int(f[2])
        elif f[0] == "C":
            compared[f[1]] = (int(f[2]), int(f[3]), f[4].replace("~~", "\n"))
    equal = 0
    for q in created:
        key = str(q["idx"])
        if q["refuse"]:
            continue
        n, bad = errors.pop(name(q), (0, 0))
        if not waited.get(key):
            stats = psql(f"SELECT status, last_error, sqlstate FROM velostream.stats WHERE view = '{name(q)}'::regclass;",
                         "stats")
            fail(q, "velostream.wait() did not return true", "stats: " + "; ".join(stats))
            continue
        if key not in compared:
            fail(q, "the comparison did not run (see compare.err)")
            continue
        d, value_d, detail = compared[key]
        if d < 0:
            fail(q, "WRONG COLUMNS", detail)
            wrong += 1
            continue
        if d != 0:
            if value_d:
                fail(q, f"WRONG ANSWER: {d} rows differ", detail)
            else:
                fail(q, f"WRONG TEXT: {d} rows differ as text, none as values (a numeric's scale)", detail,
                     kind="WRONG TEXT (equal values, different text)")
            wrong += 1
            continue
        if bad or n != skipped.get(key, 0):
            fail(q, f"{n} dead letters ({bad} not a division by zero), expected {skipped.get(key, 0)}: "
                    f"the rows for which {' or '.join(e for e, _ in q['raising']) or 'nothing'} raises", kind="dead letters")
            continue
        equal += 1
    # 4. Drop the round's views.
    drops = [f"DROP MATERIALIZED VIEW IF EXISTS {name(q)}; DROP VIEW IF EXISTS dgb_{q['idx']}; "
             f"DROP TABLE IF EXISTS dgr_{q['idx']};" for q in queries]
    if not os.environ.get("DG_KEEP"):
        psql("\n".join(drops), "drop")
    valid = sum(1 for q in queries if not q["refuse"])
    print(f"round {rnd}: {len(queries)} queries ({sum(q['stream'] == 's1' for q in queries)} on s1, "
          f"{sum(q['stream'] == 's2' for q in queries)} on s2; {owned}; "
          f"{sum(1 for q in created if q['raising'])} dividing by delay), {valid} valid: {equal} equal, {wrong} wrong, "
          f"{unexpected} refused unexpectedly; {len(queries) - valid} to refuse: {refused_ok} refused as expected; "
          f"{time.time() - t0:.1f} s", flush=True)
    return equal, refused_ok


def main():
    start = time.time()
    indexes = [int(ONLY)] if ONLY else list(range(QUERIES))
    rounds = {}
    for i in indexes:
        rounds.setdefault(i // PER_ROUND, []).append(generate(i))
    equal = refused = valid = to_refuse = 0
    for rnd, queries in sorted(rounds.items()):
        queries = [anchor(rnd)] + queries
        e, rf = run_round(rnd, queries)
        equal += e
        refused += rf
        valid += sum(1 for q in queries if not q["refuse"])
        to_refuse += sum(1 for q in queries if q["refuse"])
    left = "".join(psql("SELECT coalesce(sum(backlog), 0) FROM velostream.stats;", "backlog"))
    print(f"differential: seed {SEED}, {len(indexes)} generated queries and {len(rounds)} anchor views in "
          f"{len(rounds)} rounds, {time.time() - start:.0f} s")
    if kinds:
        print("failures by kind: " + ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items())))
    ok = not failures
    print(f"{'PASS' if equal == valid else 'FAIL'}: differential seed {SEED}: {equal} of {valid} valid views "
          f"equal their batch queries")
    print(f"{'PASS' if refused == to_refuse else 'FAIL'}: differential seed {SEED}: {refused} of {to_refuse} "
          f"unsupported queries refused with the expected SQLSTATE, no view created")
    print(f"{'PASS' if left == '0' else 'FAIL'}: differential: nothing left in the stream logs (backlog {left})")
    return 0 if ok and left == "0" else 1


if __name__ == "__main__":
    sys.exit(main())
