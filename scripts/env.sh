# Shared settings for kenbun's scripts: sourced, not run.
PG_MAJOR=15
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
export PATH="$HOME/.cargo/bin:$PATH"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# State lives under /tmp, keyed by the checkout path: the postgres user must reach it, and two
# checkouts (a clean CI clone beside a working copy) must not share a cluster.
KEY=$(printf '%s' "$ROOT" | md5sum | cut -c1-10)
STATE=/tmp/kenbun-$KEY
PGDATA_DIR=$STATE/data
SOCKDIR=$STATE/sock
PGPORT_PRIVATE=${KENBUN_PORT:-55432}
LOGFILE=$STATE/postgres.log
if [ "$(id -u)" = 0 ]; then AS_PG=(runuser -u postgres --); else AS_PG=(); fi
psql_private() { "${AS_PG[@]}" "$PG_BIN/psql" -X -h "$SOCKDIR" -p "$PGPORT_PRIVATE" -U postgres "$@"; }
