#!/usr/bin/env bash
# `make bench`: every benchmark on ../shared/data/flights-3m.csv.gz (the
# vendored January slice when it is not there), rewriting bench/RESULTS.md
# with the command, the machine, each figure and its ratio to the baseline
# measured in the same run, and bench/freshness.png. About 30 minutes on 2
# cores. As root on Debian 12 (installs what it needs, like the tests).
#   BENCH_RUNS=n (default 3): runs per figure (medians)
#   BENCH_ONLY="engine copy kafka freshness memory state exchange fallback scaling": a subset
#     (RESULTS.md then keeps only those sections)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs=${BENCH_RUNS:-3}
only=" ${BENCH_ONLY:-engine copy kafka freshness memory state exchange fallback scaling} "
bash scripts/install-deps.sh
command -v gnuplot >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q gnuplot-nox >/dev/null
data="$root/../shared/data/flights-3m.csv.gz"
[ -f "$data" ] || data="$root/data/flights-2001-01.csv.gz"
tmp=$(mktemp -d /tmp/velostream-benchall.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
want() { [[ "$only" == *" $1 "* ]]; }
started=$(date -u '+%Y-%m-%d %H:%M UTC')
t_start=$(date +%s)

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
mem=$(free -g | awk '/^Mem:/ {print $2}')
machine="$(nproc) vCPU ($cpu), ${mem} GiB RAM, Debian $(cat /etc/debian_version), $(/usr/lib/postgresql/15/bin/postgres --version), $(c++ --version | head -n 1), librdkafka $(dpkg-query -W -f='${Version}' librdkafka1 2>/dev/null || echo '?')"
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$root" status --porcelain 2>/dev/null | grep -v '^??' | head -n 1 || true)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 >/dev/null

section() { echo; echo "## $1"; echo; }
# A benchmark that fails leaves a line saying so; the others still run.
failed_bench() { local rc=$?; echo; echo "**This benchmark failed (exit $rc); its log went to make bench's stderr.**"; }
{
  echo "# Benchmark results"
  echo
  echo "Written by \`make bench\` (\`bench/run_all.sh\`, BENCH_RUNS=$runs) on $started, commit $commit${dirty:+ (with local changes)}."
  echo "Machine: $machine."
  echo "Data: \`${data#$root/}\` ($(zcat "$data" | tail -n +2 | wc -l) rows)."
  echo
  echo "Machines are shared and noisy: every figure stands beside a baseline measured in the same run, and"
  echo "ratios are the figures to compare. Earlier figures, with the story of each change, are in"
  echo "[HISTORY.md](HISTORY.md)."
} > "$tmp/RESULTS.md"

if want engine; then
  echo "== engine alone" >&2
  zcat "$data" | tail -n +2 > "$tmp/flights.csv"
  VELOSTREAM_BENCH_CSV="$tmp/flights.csv" build/engine_bench --benchmark_min_time=2 --benchmark_format=json \
    > "$tmp/engine.json" 2>/dev/null
  {
    section "Engine alone (no database)"
    echo "Command: \`VELOSTREAM_BENCH_CSV=flights.csv build/engine_bench --benchmark_min_time=2\` (Google Benchmark;"
    echo "one core). \`Csv\`: from CSV bytes (the Kafka CSV decoder) to aggregated state, 8,192 lines a batch, a"
    echo "flush (delta cleared) every 16 batches; the others from a generated flights-shaped batch. Goal: GROUP BY"
    echo "≥ 10M records/s per core."
    echo
    python3 - "$tmp/engine.json" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))["benchmarks"]
rate = {b["name"]: b["records/s"] for b in rows if "records/s" in b}
what = {
  "BM_Baseline_SumColumn": "baseline: sum one int column of a batch",
  "BM_DelayByOriginHourly": "GROUP BY origin, tumble(ts, 1 h); count, sum, avg, min, max",
  "BM_LongDelaysFiltered": "WHERE delay > 15 GROUP BY origin; count, sum",
  "BM_Csv_Baseline_SplitLines": "baseline: split the CSV bytes into lines",
  "BM_Csv_FilterProject": "CSV: WHERE delay > 15, project origin, destination, delay",
  "BM_Csv_GroupBy": "CSV: GROUP BY origin; count, sum, avg, min, max",
  "BM_Csv_GroupByTwoKeysTumble": "CSV: GROUP BY origin, tumble(ts, 1 h); count, sum, avg, max",
}
print("| benchmark | records/s per core | vs its baseline |")
print("|---|---:|---:|")
for name, r in rate.items():
    base = rate.get("BM_Csv_Baseline_SplitLines" if name.startswith("BM_Csv") else "BM_Baseline_SumColumn")
    print(f"| {what.get(name, name)} | {r / 1e6:.1f}M | {r / base:.3f}x |")
EOF
  } >> "$tmp/RESULTS.md"
fi

if want copy; then
  echo "== COPY path" >&2
  {
    section "COPY path: COPY into a stream until the views are complete"
    echo "Command: \`bash bench/copy_bench.sh $runs\`. The two views of issue 3 (\`delay_by_origin\`: origin,"
    echo "tumble(ts, 1 h), count/sum/avg/min/max; \`long_delays\`: WHERE delay > 15, origin and destination,"
    echo "count/sum), 2 partitions, \`shared_buffers = 1GB\`; beside a plain COPY into a heap table (the baseline),"
    echo "an AFTER INSERT FOR EACH ROW trigger upserting the same two summaries, and REFRESH MATERIALIZED VIEW."
    echo "Goals: bulk ≥ 1.0x plain COPY, trickle ≥ 1.0x, ≥ 20x the trigger. Two reference rows: the views'"
    echo "final rows inserted once after a plain COPY (the result writes any incremental path makes), and"
    echo "the trickle's COPYs alone with the workers paused (the ceiling). Where the time goes:"
    echo "[PROFILES.md](PROFILES.md)."
    echo
    bash bench/copy_bench.sh "$runs" || failed_bench
  } >> "$tmp/RESULTS.md"
fi

if want kafka; then
  echo "== Kafka path" >&2
  {
    section "Kafka path: creating a stream over a full topic until its view is complete"
    echo "Command: \`bash bench/kafka_bench.sh $runs\`. The embedded mock broker shares the 2 cores. Goal:"
    echo "≥ 0.8x the bare consumer, ≥ 1M msg/s. Two views: \`k_by_route\` (origin, destination, tumble day:"
    echo "570,842 groups, one new result row for every 5 messages, so writing the result table bounds it) and"
    echo "\`k_by_origin\` (300 groups: the ingestion path itself). With 2 workers each consumes half the topic"
    echo "partitions and routes rows by origin through the partition logs. Where the time goes:"
    echo "[PROFILES.md](PROFILES.md)."
    echo
    bash bench/kafka_bench.sh "$runs" || failed_bench
  } >> "$tmp/RESULTS.md"
fi

if want freshness; then
  echo "== freshness" >&2
  {
    section "Freshness at steady input rates"
    echo "Command: \`bash bench/freshness_bench.sh\` (\`build/velostream-freshness\`, libpqxx and librdkafka:"
    echo "a COPY transaction, or a produced batch, every 20 ms at the target rate; a poller reads the view"
    echo "every 2 ms). Time from the commit (or the broker's acknowledgement) to visibility. Goal: p99 < 500 ms"
    echo "at 100k rows/s. Where the achieved rate is below the target, the writer (or the broker) was the"
    echo "bound. Plot: [freshness.png](freshness.png)."
    echo
    bash bench/freshness_bench.sh "$root/bench" || failed_bench
  } >> "$tmp/RESULTS.md"
fi

if want memory; then
  echo "== memory" >&2
  {
    section "Worker memory per live group"
    echo "Command: \`bash bench/memory_bench.sh\` (1,000,000 distinct keys, one owned view per line, each on its"
    echo "own one-partition stream; the worker's private memory, RssAnon, before and after). Goal: ≤ 200 bytes per group for a"
    echo "count/sum/avg view."
    echo
    bash bench/memory_bench.sh || failed_bench
  } >> "$tmp/RESULTS.md"
fi

if want state; then
  echo "== bounded state" >&2
  {
    section "Bounded state: 10M keys under velostream.state_memory"
    echo "Command: \`bash bench/state_memory_bench.sh\` (10,000,000 distinct keys, GROUP BY k with count, sum and"
    echo "avg, one worker, fed in INSERTs of 1,000,000 rows; the worker's private memory, RssAnon, sampled every"
    echo "0.2 s). Baseline in the same run: a budget the state never reaches. Goal: memory bounded by the budget,"
    echo "not by the number of keys."
    echo
    bash bench/state_memory_bench.sh || failed_bench
  } >> "$tmp/RESULTS.md"
fi

if want exchange; then
  echo "== exchanged groups" >&2
  {
    section "Exchanged groups: a session view by another column than the routing one"
    echo "Command: \`bash bench/exchange_bench.sh $runs\` (3M flights, two partitions routed by origin, an emit-final"
    echo "session view by destination, whose groups the workers exchange, against the same view by origin, owned;"
    echo "the stream paused during the COPY, timed from its resume until both views are complete and closed)."
    echo "Baseline in the same run: the owned view."
    echo
    bash bench/exchange_bench.sh "$runs" || failed_bench
  } >> "$tmp/RESULTS.md"
fi

if want fallback; then
  echo "== aggregate and expression paths" >&2
  {
    section "Aggregate and expression paths (issue 9)"
    echo "Command: \`bash bench/fallback_bench.sh $runs\` (one worker; native against PostgreSQL's aggregate"
    echo "protocol and executor; goal for the fallbacks ≥ 2M rec/s per core)."
    echo
    bash bench/fallback_bench.sh "$runs" || failed_bench
  } >> "$tmp/RESULTS.md"
fi

if want scaling; then
  echo "== scaling" >&2
  {
    section "Scaling with partition workers"
    echo "Commands: \`PARTITIONS=n COPY_ONLY=1 bash bench/copy_bench.sh 1\` and \`FORMATS=csv WORKERS=\"1 2 4\""
    echo "VIEWS=k_by_origin bash bench/kafka_bench.sh 1\`. On 2 cores, more than 2 workers only add contention: the bound is the"
    echo "machine (and, for Kafka, the broker sharing it)."
    echo
    for n in 1 2 4; do PARTITIONS=$n COPY_ONLY=1 bash bench/copy_bench.sh 1 | grep -E "plain COPY into|until both views|^\|---|^\| measure" ; echo; done
    FORMATS=csv WORKERS="1 2 4" VIEWS=k_by_origin bash bench/kafka_bench.sh 1 || failed_bench
  } >> "$tmp/RESULTS.md"
fi

echo >> "$tmp/RESULTS.md"
echo "All of \`make bench\` took $(( ($(date +%s) - t_start) / 60 )) minutes." >> "$tmp/RESULTS.md"
cp "$tmp/RESULTS.md" "$root/bench/RESULTS.md"
echo "wrote bench/RESULTS.md" >&2
