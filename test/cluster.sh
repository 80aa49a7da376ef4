# Throwaway PostgreSQL clusters with velostream preloaded, for the demo and the
# integration tests. Source it, then:
#   cluster_start DIR PORT [extra postgresql.conf lines...]
#   psql_c SQL...        (runs against the last started cluster)
#   poll SQL EXPECTED SECONDS
#   cluster_stop
# PostgreSQL refuses to run as root, so clusters run as user postgres.
# Every cluster has locale C.UTF-8 and encoding UTF8 (C.UTF-8 exists on every
# Debian 12), whatever the caller's LANG and LC_*: an unset LANG would give the
# C collation, an uninstalled locale would make initdb fail.
PGBIN=$(pg_config --bindir)
[ -x "$PGBIN/initdb" ] || PGBIN=/usr/lib/postgresql/15/bin
VS_DIR=""
VS_PORT=""

cluster_start() {
  VS_DIR=$1
  VS_PORT=$2
  shift 2
  rm -rf "$VS_DIR"
  mkdir -p "$VS_DIR"
  chown postgres "$VS_DIR"
  runuser -u postgres -- "$PGBIN/initdb" -D "$VS_DIR/data" -A trust -U postgres \
    --locale=C.UTF-8 --encoding=UTF8 >/dev/null
  {
    echo "shared_preload_libraries = 'velostream'"
    echo "velostream.database = 'postgres'"
    echo "max_worker_processes = 32"
    echo "port = $VS_PORT"
    echo "unix_socket_directories = '$VS_DIR'"
    echo "listen_addresses = ''"
    echo "fsync = on"
    for line in "$@"; do echo "$line"; done
  } >> "$VS_DIR/data/postgresql.conf"
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$VS_DIR/data" -l "$VS_DIR/server.log" -w start >/dev/null
}

cluster_stop() {
  [ -n "$VS_DIR" ] && [ -d "$VS_DIR/data" ] && \
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$VS_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
}

# psql_c SQL: runs SQL, unaligned tuples-only output, stops on the first error.
psql_c() {
  "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -At -h "$VS_DIR" -p "$VS_PORT" -U postgres -d postgres -c "$*"
}

# psql_f FILE: runs a file of SQL the same way.
psql_f() {
  "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -At -h "$VS_DIR" -p "$VS_PORT" -U postgres -d postgres -f "$1"
}

# poll SQL EXPECTED SECONDS: runs SQL (psql_c) until it returns EXPECTED, for at most SECONDS;
# prints the last value, fails on timeout.
poll() {
  local v
  for _ in $(seq 1 $((${3} * 5))); do
    v=$(psql_c "$1" 2>&1)
    [ "$v" = "$2" ] && { echo "$v"; return 0; }
    sleep 0.2
  done
  echo "$v"
  return 1
}

# kill_worker [SUFFIX]: kills (SIGKILL) a partition worker of the cluster,
# the first whose process title is "velostream worker SUFFIX..." (any worker
# without SUFFIX), and waits until the postmaster, which resets every backend
# and recovers after it, serves queries again (pg_isready can answer before
# the postmaster has noticed the dead worker).
kill_worker() {
  local pid
  pid=$(pgrep -P "$(head -n 1 "$VS_DIR/data/postmaster.pid")" -f "velostream worker ${1:-}" | head -n 1)
  [ -n "$pid" ] && kill -9 "$pid" && echo "killed worker $pid"
  sleep 1
  for _ in $(seq 1 600); do psql_c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done
}

# kafka_mock_start WORK --topic NAME:PARTITIONS ...: starts the embedded Kafka
# broker (build/velostream-kafka-mock, built if missing) with its log in
# WORK/mock.log and its stdin kept open on file descriptor 9 (write "down" /
# "up" to it to stop / restart the broker), waits for it and sets BS to its
# bootstrap servers. kafka_mock_stop stops it (call it from the EXIT trap).
kafka_mock_start() {
  local work=$1 root
  shift
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  [ -x "$root/build/velostream-kafka-mock" ] ||
    { cmake -S "$root" -B "$root/build" >/dev/null && cmake --build "$root/build" -j2 >/dev/null; }
  mkfifo "$work/mock.in"
  "$root/build/velostream-kafka-mock" "$@" --bootstrap-file "$work/bootstrap" \
    < "$work/mock.in" > /dev/null 2> "$work/mock.log" &
  VS_MOCK_PID=$!
  exec 9> "$work/mock.in"
  for _ in $(seq 1 50); do [ -s "$work/bootstrap" ] && break; sleep 0.1; done
  BS=$(cat "$work/bootstrap")
}

kafka_mock_stop() {
  exec 9>&-
  [ -n "${VS_MOCK_PID:-}" ] && kill "$VS_MOCK_PID" 2>/dev/null
  return 0
}
