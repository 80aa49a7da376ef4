#!/usr/bin/env bash
# Installs every Debian 12 package that building, the demo and the tests need.
# Idempotent: does nothing when all are present. Run as root.
set -euo pipefail
PKGS=(build-essential pkg-config cmake procps gzip postgresql-15 postgresql-server-dev-15
      libabsl-dev libxxhash-dev libgtest-dev libbenchmark-dev librdkafka-dev libsimdjson-dev libpqxx-dev kcat
      clang libclang-rt-14-dev  # clang's libFuzzer and sanitizer runtimes: test/fuzz
      postgresql-15-hll postgresql-15-tdigest  # aggregates with combine functions the tests use
      python3)  # test/integration/differential.py, the differential test's query generator
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "velostream: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
