#!/usr/bin/env bash
# Create the virtualenv (if needed) and install the project against constraints.txt.
# Usage: bootstrap.sh [EXTRAS]. PYTHON=<interpreter> picks the Python (default: the newest
# supported one found: 3.13, 3.12, 3.11, on PATH or under pyenv); VENV=<dir> the virtualenv
# (default .venv). Sourced by the other scripts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${VENV:-.venv}
SUPPORTED_MINORS="13 12 11"

# The interpreter's "3.X" if it runs and is a supported version, else nothing.
supported_version() {
  local version
  version=$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || return 1
  for minor in $SUPPORTED_MINORS; do
    [ "$version" = "3.$minor" ] && { echo "$version"; return 0; }
  done
  return 1
}

# The newest supported interpreter: PATH first (a pyenv shim that is not active fails to run
# and is skipped), then pyenv's installed versions, newest patch first.
find_python() {
  local minor candidate pyenv_root
  pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
  for minor in $SUPPORTED_MINORS; do
    for candidate in "python3.$minor" \
      $(ls -d "$pyenv_root"/versions/3."$minor".*/bin/python3."$minor" 2>/dev/null | sort -rV); do
      if supported_version "$candidate" >/dev/null; then
        command -v "$candidate" 2>/dev/null || echo "$candidate"
        return 0
      fi
    done
  done
  return 1
}

if [ -n "${PYTHON:-}" ]; then
  supported_version "$PYTHON" >/dev/null || {
    echo "bootstrap: PYTHON=$PYTHON is not a runnable Python 3.11-3.13" >&2
    exit 1
  }
elif [ ! -x "$VENV/bin/python" ]; then
  PYTHON=$(find_python) || {
    echo "bootstrap: no Python 3.11, 3.12 or 3.13 found (set PYTHON=/path/to/python3.X)" >&2
    exit 1
  }
fi
if [ -x "$VENV/bin/python" ] && [ -n "${PYTHON:-}" ] &&
  [ "$(supported_version "$VENV/bin/python" || true)" != "$(supported_version "$PYTHON")" ]; then
  echo "bootstrap: $VENV has another Python; recreating it with $PYTHON" >&2
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV with Python $(supported_version "$PYTHON") ($PYTHON)" >&2
  "$PYTHON" -m venv "$VENV"
fi
extras=${1:-}
stamp="$VENV/.installed${extras:+-$extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  echo "bootstrap: installing into $VENV (Python $(supported_version "$VENV/bin/python"))" >&2
  # (grep drops this machine's notes about absent local package mirrors.)
  {
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      -c constraints.txt -e ".${extras:+[$extras]}"
  } 2> >(grep -v "^WARNING: Location" >&2)
  touch "$stamp"
fi
