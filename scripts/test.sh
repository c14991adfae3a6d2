#!/usr/bin/env bash
# Set up a virtual environment with tapegrad and its test dependencies, then run the test suite.
# Works on a fresh machine with only Python >= 3.11 and a C++ compiler; a second run rebuilds
# nothing unless csrc/ or the build files changed (scripts/setup.sh). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
setup_venv test
# PyTorch is an optional oracle: the comparison tests skip without it. Install it only from a
# local CPU wheel (pip's find-links), never a multi-GB download; tapegrad itself never imports it.
if ! .venv/bin/python -c 'import torch' > /dev/null 2>&1; then
  for dir in ${PIP_FIND_LINKS:-}; do
    for whl in "$dir"/torch-2.13.0+cpu-*.whl; do
      if [ -f "$whl" ]; then
        echo "setup: installing the PyTorch oracle from $whl" >&2
        .venv/bin/python -m pip install -q "$whl" >> .venv/install.log 2>&1 || echo "setup: torch oracle not installed" >&2
        break 2
      fi
    done
  done
fi
exec .venv/bin/pytest -q "$@"
