#!/usr/bin/env bash
# Sets everything up and runs Rapport on SQLite with demo data (in ./var/demo). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh run
exec .venv/bin/rapport demo "$@"
