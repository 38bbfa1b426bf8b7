#!/usr/bin/env bash
# Sets up everything Rapport needs on a fresh Debian machine, then nothing else:
#   ./scripts/setup.sh run    system packages for running, a virtualenv in .venv, the package
#   ./scripts/setup.sh test   the same plus the real servers and browser the test suite drives
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${1:-run}
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: Rapport needs Python 3.11 or newer as '$python' (set PYTHON=... to choose one)" >&2
  exit 1
fi

packages=()
# Debian ships venv and ensurepip separately from python3.
"$python" -c 'import ensurepip, venv' 2>/dev/null || packages+=("python3-venv")
# The pages serve Fluent UI and MSAL from node_modules (no build step, no CDN but Office.js's).
command -v npm >/dev/null 2>&1 || packages+=("npm")
# The mail parser is compiled with mypyc (scripts/build_compiled.py): a C compiler and headers.
command -v gcc >/dev/null 2>&1 || packages+=("gcc")
"$python" -c 'import os, sysconfig; os.stat(sysconfig.get_path("include") + "/Python.h")' \
  2>/dev/null || packages+=("python3-dev")
if [ "$profile" = "test" ]; then
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || packages+=("postgresql")
  command -v runuser >/dev/null 2>&1 || packages+=("util-linux")
  [ -x /usr/sbin/dovecot ] || packages+=("dovecot-imapd")
  # The pane and admin pages are tested in Debian's Chromium, driven by Playwright.
  command -v chromium >/dev/null 2>&1 || packages+=("chromium")
fi
if [ ${#packages[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
if [ "$profile" = "test" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[compile,test,dev]"
else
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[compile]"
fi
# The parse workers' modules, compiled: ~9% less CPU over an import (docs/benchmarks.md).
# Rebuilt only when a source changed; until then the sources run, with a warning.
if ! .venv/bin/python -c 'import sys; from server import compiled; sys.exit(isinstance(compiled.read_build(), str))'; then
  .venv/bin/python scripts/build_compiled.py
fi
# An editable install leaves our own modules uncompiled, and where PYTHONDONTWRITEBYTECODE is
# set (as on these machines) every command compiled them again: ~0.2 s of each start-up, and
# again in the parse workers' fork server. A regular install compiles them once, like this.
.venv/bin/python -m compileall -q server >/dev/null

# Front-end packages: the runtime ones for the pages; the test tools (axe-core, the Office.js
# typings, Microsoft's manifest validator and converter) only for the test profile.
if [ "$profile" = "test" ]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  npm ci --omit=dev --no-audit --no-fund --loglevel=error
fi
