#!/bin/sh
# The user guide's classroom pictures from the real window under Xvfb (see classroom.py).
# Usage, from anywhere: docs/screenshots/classroom.sh [OUT_DIR]   (default docs/images)
# PYTHON picks the interpreter (default: the repository's .venv, else python3).
set -eu
root="$(cd "$(dirname "$0")/../.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"
[ -x "$py" ] || py=python3
exec "$py" "$root/docs/screenshots/classroom.py" "$@"
