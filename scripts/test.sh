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
# worksteal: an idle process takes half of the other's queue. With the default (load), the
# process that drew the unit tests finished 400 s before the one that drew the crash tests.
.venv/bin/pytest -n 2 --dist worksteal --durations=15 "$@"
