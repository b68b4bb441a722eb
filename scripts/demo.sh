#!/usr/bin/env bash
# Runs the demo against the private cluster (started by `make demo`).
set -euo pipefail
source "$(dirname "$0")/env.sh"
psql_private -q -d postgres -tc "SELECT 1 FROM pg_database WHERE datname = 'kenbun_demo'" | grep -q 1 \
  || psql_private -q -d postgres -c "CREATE DATABASE kenbun_demo"
# the extension is re-created so that a rebuilt version is picked up
psql_private -q -d kenbun_demo -c "DROP EXTENSION IF EXISTS kenbun CASCADE" 2>/dev/null
# what DROP EXTENSION left behind before 0.3.0 (generated functions, membership tables, triggers)
psql_private -q -d kenbun_demo -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS kenbun CASCADE"
psql_private -d kenbun_demo -f - < "$ROOT/scripts/demo.sql"
echo
echo "Explore it yourself: make psql   (database kenbun_demo, socket $SOCKDIR)"
