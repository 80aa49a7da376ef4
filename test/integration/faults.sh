#!/usr/bin/env bash
# The fault-injection suite's short profile (test/faults/run.sh, seed 1): at
# least 10 faults of every kind while a COPY stream and a Kafka stream run
# several views; after each cycle every view must equal its batch query.
exec bash "$(dirname "$0")/../faults/run.sh" --profile short --seed 1
