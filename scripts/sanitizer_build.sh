# Sourced by scripts/sanitize.sh and scripts/tsan.sh: build _C once more with a sanitizer, in a
# build directory of its own, beside the normal build in .venv, and point tapegrad at it.
#   sanitizer_build build/NAME -DTAPEGRAD_OPTION=ON
# Sets PY (the .venv's python) and exports TAPEGRAD_C_PATH (tapegrad/__init__.py loads _C from it).
sanitizer_build() {
  local build=$1 option=$2
  PY=.venv/bin/python
  [ -x "$PY" ] || PY=${PYTHON:-python3}
  "$PY" -m pip install -q cmake ninja pybind11  # the build tools, into the same environment
  local exe
  exe=$("$PY" -c 'import sys; print(sys.executable)')
  export PATH="$(dirname "$exe"):$PATH"
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$option" \
    -DPython_EXECUTABLE="$exe" -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" > /dev/null
  cmake --build "$build" > /dev/null
  TAPEGRAD_C_PATH="$PWD/$(ls "$build"/_C*.so | head -n 1)"
  export TAPEGRAD_C_PATH
}
