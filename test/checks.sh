# Checks shared by integration scripts that count their results (source it
# after test/cluster.sh): pass/failed count into npass/nfail, which the
# script prints as its closing "N passed, N failed" line.
npass=0; nfail=0
pass() { echo "PASS: $*"; npass=$((npass + 1)); }
failed() { echo "FAIL: $*"; nfail=$((nfail + 1)); }
# same VIEW ORACLE WHAT: the view equals its batch query (EXCEPT ALL both ways)
same() {
  local d
  d=$(psql_c "SELECT count(*) FROM ((TABLE $1 EXCEPT ALL TABLE $2) UNION ALL (TABLE $2 EXCEPT ALL TABLE $1)) d" 2>&1)
  [ "$d" = 0 ] && pass "$3: $1 equals its batch query ($(psql_c "SELECT count(*) FROM $1") groups)" \
    || failed "$3: $1 differs from its batch query: $d"
}
# wait_view VIEW [TIMEOUT]: velostream.wait() on the view (default 120 s)
wait_view() {
  [ "$(psql_c "SELECT velostream.wait('$1', '${2:-120 s}')")" = t ] || failed "velostream.wait('$1') timed out"
}
