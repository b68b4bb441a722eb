#!/usr/bin/env bash
# Builds and installs the extension into Debian's PostgreSQL 15 directories.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
SUDO=(); [ "$(id -u)" = 0 ] || SUDO=(--sudo)
cargo pgrx install --release --pg-config "$PG_CONFIG" "${SUDO[@]}" 2>&1 | grep -v '^\s*$' | tail -n 3
