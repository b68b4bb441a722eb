#!/usr/bin/env bash
# Installs everything kenbun needs on a fresh Debian 12 machine. Idempotent: each step is skipped
# when already done. Runs as root (CI) or as a user with sudo (a developer laptop).
set -euo pipefail
PGRX_VERSION=0.18.1
PG_MAJOR=15
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
export PATH="$HOME/.cargo/bin:$PATH"
export DEBIAN_FRONTEND=noninteractive

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

APT_PKGS=(build-essential pkg-config libssl-dev libclang-dev
          postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR postgresql-contrib
          postgresql-$PG_MAJOR-cron sudo)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing apt packages: ${missing[*]}"
  $SUDO apt-get update -q
  # the whole list, so the server is upgraded to the minor version of the -dev headers
  $SUDO apt-get install -y -q "${APT_PKGS[@]}"
fi

if ! cargo pgrx --version 2>/dev/null | grep -qx "cargo-pgrx $PGRX_VERSION"; then
  echo "setup: installing cargo-pgrx $PGRX_VERSION (takes ~5 minutes once)"
  cargo install cargo-pgrx --version "=$PGRX_VERSION" --locked
fi

if ! grep -qs "^pg$PG_MAJOR = \"$PG_CONFIG\"" "$HOME/.pgrx/config.toml"; then
  cargo pgrx init --pg$PG_MAJOR "$PG_CONFIG"
fi

# the rule schema's unit test (src/rule/schema/tests.rs) validates with Python's jsonschema (tests/schema.py)
if ! python3 -c 'import jsonschema' 2>/dev/null; then
  echo "setup: installing the Python package jsonschema"
  if python3 -m pip --version >/dev/null 2>&1; then
    # Debian's own python3 is externally managed (PEP 668): then into /usr/local (root) or ~/.local
    python3 -m pip install --quiet 'jsonschema==4.26.0' 2>/dev/null \
      || python3 -m pip install --quiet --break-system-packages 'jsonschema==4.26.0'
  else
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q python3-jsonschema
  fi
  python3 -c 'import jsonschema'
fi
