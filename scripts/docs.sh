#!/usr/bin/env bash
# make docs: regenerates docs/reference.md from the catalog, then runs every sql block of the documents
# and writes what they print (docs/expected/ and the ```text blocks after them).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
export PG_BIN SOCKDIR PGPORT_PRIVATE STATE
python3 scripts/reference.py write
python3 scripts/doctest.py accept
