#!/usr/bin/env bash
# Build the kernels once more with AddressSanitizer + UndefinedBehaviorSanitizer (separate build
# directory) and run the kernel and tape tests against that build (csrc/tape.cpp is the tape's
# hot path). Expects scripts/test.sh's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=${PYTHON:-python3}
"$PY" -m pip install -q cmake ninja pybind11  # the build tools, into the same environment
BIN=$(dirname "$("$PY" -c 'import sys; print(sys.executable)')")
export PATH="$BIN:$PATH"
BUILD=build/sanitize
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTAPEGRAD_SANITIZE=ON \
  -DPython_EXECUTABLE="$("$PY" -c 'import sys; print(sys.executable)')" \
  -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" > /dev/null
cmake --build "$BUILD" > /dev/null
LIB=$(ls "$BUILD"/_C*.so | head -n 1)
export TAPEGRAD_C_PATH="$PWD/$LIB"
export LD_PRELOAD="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
exec "$PY" -m pytest -q -p no:cacheprovider tests/csrc tests/autograd -m "not slow" "$@"
