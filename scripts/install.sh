#!/usr/bin/env bash
# Builds the extension and installs it into Debian's PostgreSQL 15 directories.
# Each file is written beside its destination and renamed over it, so backends that have the old
# library loaded keep their (unchanged) mapping instead of crashing on a file rewritten in place.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
SUDO=(); [ "$(id -u)" = 0 ] || SUDO=(sudo)
OUT=$ROOT/target/release/kenbun-pg$PG_MAJOR
rm -rf "$OUT"
cargo pgrx package --pg-config "$PG_CONFIG" --out-dir "$OUT" 2>&1 | grep -v '^\s*$' | tail -n 2
put() { # put <source> <destination>
  "${SUDO[@]}" install -D -m 644 "$1" "$2.kenbun-new"
  "${SUDO[@]}" mv -f "$2.kenbun-new" "$2"
}
(cd "$OUT" && find . -type f) | while read -r f; do put "$OUT/$f" "/${f#./}"; done
# the install scripts of earlier releases: CREATE EXTENSION kenbun VERSION '<old>' then
# ALTER EXTENSION kenbun UPDATE (sql/kenbun--<old>--<new>.sql, copied by pgrx above); their
# secondary control files say which schema those versions were installed in
for f in sql/archive/kenbun--*.sql sql/archive/kenbun--*.control; do put "$f" "$("$PG_CONFIG" --sharedir)/extension/$(basename "$f")"; done
