#!/usr/bin/env bash
# Build the kernels once more with AddressSanitizer + UndefinedBehaviorSanitizer (separate build
# directory) and run the kernel and tape tests against that build (csrc/tape.cpp is the tape's
# hot path). Expects scripts/test.sh's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/sanitizer_build.sh
sanitizer_build build/sanitize -DTAPEGRAD_SANITIZE=ON
export LD_PRELOAD="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1  # a refused allocation raises MemoryError, as without ASan
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
exec "$PY" -m pytest -q -p no:cacheprovider tests/csrc tests/autograd -m "not slow" "$@"
