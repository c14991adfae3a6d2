#!/usr/bin/env bash
# Set up a virtual environment with tapegrad and its test dependencies, then run the test suite.
# Works on a fresh machine with only Python >= 3.11 and a C++ compiler. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q -e ".[test]"
exec .venv/bin/pytest -q "$@"
