#!/usr/bin/env bash
# Profiles the backend of a single pgbench client with perf: where a single-row UPDATE of a lead's score,
# or an event INSERT, spends its time with kenbun's triggers.
#
#   bench/profile.sh update|insert|update-plain|insert-plain [seconds]     (default: update, 15 s)
#
# update / insert          UPDATE app.leads SET score = (score + 1) % 100 WHERE id = :id  /  INSERT INTO app.events …
#                          (the pgbench scripts of bench.py's measure 3, on the tables with kenbun's triggers)
# update-plain / ...       the same statements on app.leads_plain / app.events_plain (no triggers), for comparison
#
# Needs, as root (perf attaches to a backend of the postgres user):
#   bash scripts/cluster.sh start
#   python3 bench/bench.py --quick --setup-only      # or --leads N --setup-only; any bench.py run also leaves
#                                                    # its data in database kenbun_bench until the next run
# Prints the top $TOP (25) symbols by self time (perf report --no-children), by time including callees
# (--children) and the shares of each shared object, and saves them to bench/results/profile-<what>-<date>.txt.
# perf.data stays in /tmp (path printed) for further `perf report -i`.
# Environment: KENBUN_BENCH_DB (kenbun_bench), TOP (25), PERF_CALLGRAPH (empty: perf's -g, frame pointers;
# e.g. "dwarf" for --call-graph dwarf, better stacks through code built without frame pointers, larger files).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
what=${1:-update}
secs=${2:-15}
db=${KENBUN_BENCH_DB:-kenbun_bench}
top=${TOP:-25}

case $what in
update) table=app.leads ;;
update-plain) table=app.leads_plain ;;
insert) table=app.events ;;
insert-plain) table=app.events_plain ;;
*) echo "usage: $0 update|insert|update-plain|insert-plain [seconds]" >&2; exit 2 ;;
esac
case $what in
update*) stmt="UPDATE $table SET score = (score + 1) % 100 WHERE id = :id;" ;;
insert*) stmt="INSERT INTO $table (lead_id, type, occurred_at, metadata) VALUES (:id, 'page_view', now(), '{\"url\":\"/pricing\"}');" ;;
esac

command -v perf >/dev/null || { echo "perf is not installed" >&2; exit 1; }
if ! psql_private -d "$db" -Atqc "SELECT 1 FROM app.leads LIMIT 1" >/dev/null 2>&1; then
  echo "no bench data in database $db: start the cluster (bash scripts/cluster.sh start) and run" >&2
  echo "  python3 bench/bench.py --quick --setup-only" >&2
  exit 1
fi
maxid=$(psql_private -d "$db" -Atqc "SELECT max(id) FROM app.leads")
leads=$(psql_private -d "$db" -Atqc "SELECT count(*) FROM app.leads")
version=$(psql_private -d "$db" -Atqc "SELECT extversion FROM pg_extension WHERE extname = 'kenbun'")
segments=$(psql_private -d "$db" -Atqc "SELECT count(*) FROM kenbun.segments" 2>/dev/null || echo "?")

work=$(mktemp -d /tmp/kenbun-profile.XXXXXX)
chmod 755 "$work"
pgb_pid=""
cleanup() {
  if [ -n "$pgb_pid" ] && kill -0 "$pgb_pid" 2>/dev/null; then kill "$pgb_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
printf '%s\n%s\n' '\set id random(1, :maxid)' "$stmt" > "$work/script.sql"
chmod 644 "$work/script.sql"

app="kenbun_profile_$$"
# pgbench runs a little longer than perf samples, so that the samples cover steady state only
"${AS_PG[@]}" env PGAPPNAME="$app" "$PG_BIN/pgbench" -n -h "$SOCKDIR" -p "$PGPORT_PRIVATE" -U postgres \
  -f "$work/script.sql" -c 1 -j 1 -T $((secs + 3)) -D maxid="$maxid" "$db" > "$work/pgbench.out" 2>&1 &
pgb_pid=$!

backend=""
for _ in $(seq 1 50); do
  sleep 0.1
  backend=$(psql_private -d "$db" -Atqc "SELECT pid FROM pg_stat_activity WHERE application_name = '$app'
    AND backend_type = 'client backend' ORDER BY backend_start DESC LIMIT 1")
  [ -n "$backend" ] && break
done
if [ -z "$backend" ]; then
  echo "the pgbench backend did not show up in pg_stat_activity; pgbench said:" >&2
  cat "$work/pgbench.out" >&2
  exit 1
fi
sleep 1

data=/tmp/kenbun-profile-$KEY-$what.data  # not under $STATE: scripts/cluster.sh start chowns that to postgres
echo "sampling backend $backend ($what on $table, $leads leads, kenbun $version) for $secs s …" >&2
if [ -n "${PERF_CALLGRAPH:-}" ]; then cg=(--call-graph "$PERF_CALLGRAPH"); else cg=(-g); fi
perf record "${cg[@]}" -p "$backend" -o "$data" -- sleep "$secs" 2> "$work/perf.err" || {
  cat "$work/perf.err" >&2; exit 1; }
wait "$pgb_pid" || { echo "pgbench failed:" >&2; cat "$work/pgbench.out" >&2; exit 1; }
pgb_pid=""

report() {  # perf report without header lines and perf's empty IPC columns
  perf report -f -i "$data" --stdio -g none --percent-limit 0 "$@" 2>/dev/null \
    | grep -v '^#' | grep -v '^[[:space:]]*$' | sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//; s/[[:space:]]+$//'
}

mkdir -p bench/results
out=bench/results/profile-$what-$(date +%F).txt
{
  echo "# kenbun profile: $what ($stmt)"
  echo "# $(date -Is); kenbun $version; database $db: $leads leads, $segments segments; 1 pgbench client, $secs s"
  echo "# sampled backend pid $backend with perf record ${cg[*]}; $(grep -E '^(tps|latency average)' "$work/pgbench.out" | tr '\n' ';' | sed 's/;$//')"
  echo "# perf.data: $data"
  echo
  echo "## top $top symbols by self time: perf report --no-children --stdio --sort symbol -g none"
  report --no-children --sort symbol | head -n "$top" || true
  echo
  echo "## top $top symbols by time including callees: perf report --children --stdio --sort symbol -g none"
  echo "## (frames without a symbol, 0x…, left out: static functions of stripped binaries, mostly postgres and plpgsql.so)"
  report --children --sort symbol | grep -v -E '\] 0x[0-9a-f]+$' | head -n "$top" || true
  echo
  echo "## by shared object: perf report --no-children --stdio --sort dso -g none"
  report --no-children --sort dso | sort -rn | head -n 10 || true
} | tee "$out"
echo "written: $out" >&2
