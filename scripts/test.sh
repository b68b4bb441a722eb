#!/usr/bin/env bash
# Every test layer: (1) pure-Rust unit tests (with the rule fuzzer and its corpus), (2) #[pg_test]
# inside PostgreSQL, (3) pg_regress SQL tests against the installed extension in the private cluster
# (roles, upgrade from 0.1.0), (4) the documentation: every sql block of README.md and docs/*.md run on
# a fresh demo database and compared with what the documents show (scripts/doctest.py), and
# docs/reference.md regenerated from the catalog and compared (scripts/reference.py), (5) live tests
# with several connections against the same cluster (NOTIFY, concurrency, key types, pg_cron,
# injection corpus, in-database fuzzing, short soak), (6) the benchmark in --quick mode as a smoke
# test (no timing assertions). `scripts/test.sh soak` is the full soak (make soak); `scripts/test.sh
# model` the long model-based run (make model).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
layer=${1:-all}

if [[ $layer == all || $layer == unit ]]; then
  echo "== 1. unit tests (cargo test, no database; the rule schema against the parser with Python's jsonschema)"
  python3 -c 'import jsonschema' 2>/dev/null || { echo "test: Python's jsonschema is missing: run scripts/setup.sh" >&2; exit 1; }
  cargo test --lib -q -- --skip tests_pg
fi

if [[ $layer == all || $layer == pg ]]; then
  echo "== 2. #[pg_test] (cargo pgrx test pg15)"
  if [ "$(id -u)" = 0 ]; then
    install -d -o postgres -g postgres "$STATE/pgtest"
    chmod 755 "$STATE"
    cargo pgrx test pg$PG_MAJOR --runas postgres --pgdata "$STATE/pgtest"
  else
    cargo pgrx test pg$PG_MAJOR
  fi
fi

if [[ $layer == all || $layer == regress ]]; then
  echo "== 3. SQL tests (pg_regress, private cluster)"
  bash scripts/install.sh
  bash scripts/cluster.sh start
  PG_REGRESS=$(dirname "$("$PG_CONFIG" --pgxs)")/../../src/test/regress/pg_regress
  OUT=$STATE/regress
  rm -rf "$OUT"; mkdir -p "$OUT"
  cp -r tests/pg_regress/. "$OUT/"
  [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$OUT"
  tests=$(cd tests/pg_regress/sql && ls *.sql | sed 's/\.sql$//' | sort)
  if ! "${AS_PG[@]}" "$PG_REGRESS" --host="$SOCKDIR" --port="$PGPORT_PRIVATE" --user=postgres \
       --inputdir="$OUT" --outputdir="$OUT" --dbname=kenbun_regress $tests; then
    cat "$OUT/regression.diffs" 2>/dev/null | head -200
    exit 1
  fi
fi

if [[ $layer == all || $layer == docs ]]; then
  echo "== 4. documentation (every sql block of README.md and docs/*.md on a fresh demo database; docs/reference.md current)"
  if [[ $layer == docs ]]; then bash scripts/install.sh; fi
  bash scripts/cluster.sh start >/dev/null
  export PG_BIN SOCKDIR PGPORT_PRIVATE STATE
  python3 scripts/doctest.py check
  python3 scripts/reference.py check
fi

if [[ $layer == all || $layer == live ]]; then
  echo "== 5. live tests (several connections, private cluster)"
  if [[ $layer == live ]]; then bash scripts/install.sh; fi
  bash scripts/cluster.sh start >/dev/null
  # live.rs: NOTIFY, concurrency, key types, pg_cron; injection.rs: the injection corpus through every
  # text-taking function; fuzz_db.rs: 100k generated rule documents through the type and compile;
  # soak.rs: the short soak (KENBUN_SOAK_SECS, 15 s here; `make soak` runs 60 s)
  # model.rs: generated segments and transactions, drift checked after every statement (KENBUN_MODEL_CASES,
  # 60 cases here, about 80 s; `make model` runs 400)
  # lifecycle.rs: pg_dump/pg_restore in every format, DROP EXTENSION, unbind, a database upgraded from
  # 0.2.0; the client programs run as the server's user and write their dumps under $STATE/dumps
  # changes.rs: the change log's consumers, commit order, prune beside writers, logical decoding
  install -d "$STATE/dumps"; [ "$(id -u)" = 0 ] && chown postgres:postgres "$STATE/dumps"
  KENBUN_TEST_DSN="host=$SOCKDIR port=$PGPORT_PRIVATE user=postgres" KENBUN_SERVER_LOG="$LOGFILE" \
  KENBUN_SOAK_SECS=${KENBUN_SOAK_SECS:-15} KENBUN_PG_BIN="$PG_BIN" KENBUN_DUMP_DIR="$STATE/dumps" \
  KENBUN_RUN_AS=$([ "$(id -u)" = 0 ] && echo postgres) \
    cargo test -q --test live --test online --test lifecycle --test injection --test fuzz_db --test soak --test model --test changes -- --test-threads=1 --nocapture
fi

if [[ $layer == soak ]]; then
  echo "== soak: 8 clients for ${KENBUN_SOAK_SECS:-60} s against the private cluster"
  bash scripts/install.sh
  bash scripts/cluster.sh start >/dev/null
  KENBUN_TEST_DSN="host=$SOCKDIR port=$PGPORT_PRIVATE user=postgres" KENBUN_SERVER_LOG="$LOGFILE" \
  KENBUN_SOAK_SECS=${KENBUN_SOAK_SECS:-60} \
    cargo test -q --test soak -- --nocapture
fi

if [[ $layer == model ]]; then
  echo "== model: ${KENBUN_MODEL_CASES:-400} generated cases (segments, transactions, drift after every statement)"
  bash scripts/install.sh
  bash scripts/cluster.sh start >/dev/null
  KENBUN_TEST_DSN="host=$SOCKDIR port=$PGPORT_PRIVATE user=postgres" \
  KENBUN_MODEL_CASES=${KENBUN_MODEL_CASES:-400} \
    cargo test -q --test model -- --nocapture
fi

if [[ $layer == all || $layer == bench ]]; then
  echo "== 6. benchmark smoke run (bench/bench.py --quick)"
  if [[ $layer == bench ]]; then bash scripts/install.sh; fi
  bash scripts/cluster.sh start >/dev/null
  python3 bench/bench.py --quick --no-write
fi
