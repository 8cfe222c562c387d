#!/usr/bin/env bash
# Create .venv with Python >= 3.12 and install the package with its test extras.
# Idempotent: re-running only installs what changed.  Needs only the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SIM_VENV:-.venv}
pick_python() {
  for cand in python3.13 python3.12; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9])' | sort -V -r); do
      if PYENV_VERSION="$v" pyenv exec python -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
        echo "pyenv:$v"; return 0
      fi
    done
  fi
  if python3 -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then echo python3; return 0; fi
  return 1
}
if [ ! -x "$VENV/bin/python" ]; then
  py=$(pick_python) || { echo "setup: Python >= 3.12 not found (try: pyenv install 3.12)" >&2; exit 1; }
  echo "setup: creating $VENV with $py"
  case "$py" in
    pyenv:*) PYENV_VERSION="${py#pyenv:}" pyenv exec python -m venv "$VENV" ;;
    *) "$py" -m venv "$VENV" ;;
  esac
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
stamp="$VENV/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q -e ".[test]"
  touch "$stamp"
fi
