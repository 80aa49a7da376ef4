#!/usr/bin/env bash
# Fault-injection suite: builds the driver (test/faults/driver.cpp), starts a
# throwaway cluster and the embedded Kafka broker, and runs the driver, which
# streams real flights through a COPY stream and a Kafka stream with several
# views while it injects faults at seeded random moments, and checks after
# each cycle that every view equals its batch query over the committed rows.
#
#   bash test/faults/run.sh [--profile short|long] [--seed N] [driver options...]
#
# short (the default, run by test/run_all.sh): 12 cycles of one fault each,
# 100,000 flights reused cyclically; long: 30 cycles of two faults, all 508,239.
# Driver options: --cycles N, --faults-per-cycle N, --only kill_worker,... (see
# README). Needs the extension installed (make install). Cluster on port
# $VS_FAULTS_PORT (55450) in $VS_FAULTS_DIR (/tmp/velostream-faults).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/test/cluster.sh"
profile=short
seed=1
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --profile) profile=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
dir=${VS_FAULTS_DIR:-/tmp/velostream-faults}
port=${VS_FAULTS_PORT:-55450}
partitions=16

cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
  cmake --build "$root/build" -j2 --target velostream-faults velostream-kafka-mock >/dev/null ||
  { echo "FAIL: faults: building the driver failed (libpqxx-dev installed? see scripts/install-deps.sh)"; exit 1; }

work=$(mktemp -d /tmp/velostream-faults-work.XXXXXX)
chmod 755 "$work"
trap 'kafka_mock_stop; cluster_stop; rm -rf "$work"' EXIT
kafka_mock_start "$work" --topic flights:$partitions  # the driver writes "down" / "up" to $work/mock.in
bs=$BS
zcat "$root/data/flights-2001-01.csv.gz" | tail -n +2 > "$work/flights.csv"

cluster_start "$dir" "$port" "velostream.flush_interval = 50" "restart_after_crash = on" \
  "max_worker_processes = 32" "log_line_prefix = '%m [%p] %b '"
echo "cluster in $dir (port $port), mock Kafka at $bs"
"$root/build/velostream-faults" --host "$VS_DIR" --port "$VS_PORT" --pgbin "$PGBIN" --pgdata "$VS_DIR/data" \
  --pglog "$VS_DIR/server.log" --brokers "$bs" --mock-fifo "$work/mock.in" --topic flights \
  --topic-partitions $partitions --data "$work/flights.csv" --profile "$profile" --seed "$seed" "${args[@]}"
rc=$?
mkdir -p "$root/build"
cp "$VS_DIR/server.log" "$root/build/faults-server.log" 2>/dev/null
if [ $rc -ne 0 ]; then
  echo "server log: build/faults-server.log; its last velostream errors:"
  grep -E "ERROR|FATAL|PANIC" "$VS_DIR/server.log" | grep -v "terminating connection\|fault injection" | tail -n 8
  grep -E "fault injection" "$VS_DIR/server.log" | tail -n 2
fi
exit $rc
