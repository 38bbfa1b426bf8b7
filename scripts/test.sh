#!/usr/bin/env bash
# Sets everything up and runs the whole test suite, lint included, on SQLite and PostgreSQL.
# Extra arguments go to pytest (e.g. ./scripts/test.sh -k imap).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh test
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy server
echo "== pytest"
.venv/bin/pytest -n 2 --durations=15 "$@"
