#!/usr/bin/env bash
# The project's two set-up-and-go commands (see README):
#   ./dev.sh demo [DIR]     create .venv if needed, install sparecast, run the demo pipeline into DIR
#   ./dev.sh test [ARGS]    create .venv if needed, install sparecast with test extras, run pytest
set -euo pipefail
cd "$(dirname "$0")"
VENV="${SPARECAST_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
  fi
  "$VENV/bin/python" -m pip install -q -e ".[test]"
}

cmd="${1:-}"
shift || true
case "$cmd" in
  demo)
    ensure_venv
    out="${1:-demo_out}"
    [ $# -gt 0 ] && shift
    exec "$VENV/bin/sparecast" demo --output "$out" "$@"
    ;;
  test)
    ensure_venv
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    echo "usage: ./dev.sh demo [DIR] [demo options] | ./dev.sh test [pytest args]" >&2
    exit 2
    ;;
esac
