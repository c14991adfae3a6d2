#!/usr/bin/env bash
# Build the documentation site (Sphinx) into docs/_build/html, warnings as errors, from a fresh
# environment each time so that no warning hides in a page an incremental build would skip.
# Sets up .venv as scripts/test.sh does (the docs extra: sphinx, myst-parser). Extra args go to
# sphinx-build, e.g.  bash scripts/docs.sh -b linkcheck
# The pages' examples run as tests: .venv/bin/pytest tests/test_docstrings.py
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
setup_venv docs
start=$(date +%s)
.venv/bin/python -m sphinx -W --keep-going -E -q -b html "$@" docs docs/_build/html
echo "docs: built in $(( $(date +%s) - start )) s with no warnings: open docs/_build/html/index.html" >&2
