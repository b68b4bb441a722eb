#!/usr/bin/env bash
# A private PostgreSQL 15 cluster for this checkout (not the system one): start | stop | status
set -euo pipefail
source "$(dirname "$0")/env.sh"
cmd=${1:-start}
owner() { if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$@"; fi; }
case $cmd in
start)
  mkdir -p "$STATE" "$SOCKDIR"; chmod 755 "$STATE"; owner "$STATE"
  if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
    "${AS_PG[@]}" "$PG_BIN/initdb" -D "$PGDATA_DIR" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >> "$PGDATA_DIR/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$SOCKDIR'
port = $PGPORT_PRIVATE
shared_buffers = 256MB
fsync = off
synchronous_commit = off
max_connections = 100
log_min_messages = warning
CONF
  fi
  # pg_cron (the documented scheduler for kenbun.refresh_due) runs in database kenbun_cron
  if ! grep -q "^cron.use_background_workers = on" "$PGDATA_DIR/postgresql.conf"; then
    # background workers: the cluster listens on no TCP port for pg_cron to connect to
    printf "%s\n" "shared_preload_libraries = 'pg_cron'" "cron.database_name = 'kenbun_cron'" \
      "cron.use_background_workers = on" \
      | "${AS_PG[@]}" tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
    "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1 \
      && "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast stop >/dev/null
  fi
  # logical decoding of kenbun.membership_changes (the change log's publication, tests/changes.rs)
  if ! grep -q "^wal_level = logical" "$PGDATA_DIR/postgresql.conf"; then
    printf "%s\n" "wal_level = logical" "max_replication_slots = 10" "max_wal_senders = 10" \
      | "${AS_PG[@]}" tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
    "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1 \
      && "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast stop >/dev/null
  fi
  if ! "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; then
    # without RUST_BACKTRACE: errors raised through pgrx would carry a Rust backtrace as DETAIL
    "${AS_PG[@]}" env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$LOGFILE" -w start >/dev/null
  fi
  psql_private -q -d postgres -tc "SELECT 1 FROM pg_database WHERE datname = 'kenbun_cron'" | grep -q 1 \
    || psql_private -q -d postgres -c "CREATE DATABASE kenbun_cron"
  echo "cluster: running (socket $SOCKDIR, port $PGPORT_PRIVATE, data $PGDATA_DIR)"
  ;;
stop)
  if [ -f "$PGDATA_DIR/PG_VERSION" ]; then "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast stop || true; fi
  ;;
restart)
  "$0" stop; "$0" start
  ;;
status)
  "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" status
  ;;
psql)
  shift; psql_private "$@"
  ;;
*) echo "usage: $0 start|stop|restart|status|psql" >&2; exit 2 ;;
esac
