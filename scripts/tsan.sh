#!/usr/bin/env bash
# Build the kernels and the tape once more with ThreadSanitizer (separate build directory) and run
# the thread tests (pytest marker `threads`) of tests/csrc and tests/autograd against that build.
# Expects scripts/test.sh's .venv.
#
# The build has no OpenMP: GNU libgomp is not instrumented, so TSan cannot see its barriers and
# would report every handoff between a region's threads as a race; with TAPEGRAD_TSAN the kernels'
# teams are std::threads (csrc/kernels/parallel.h), whose start and join TSan does see. Only glibc
# internals are suppressed (scripts/tsan.supp). The uninstrumented interpreter gets the TSan runtime by LD_PRELOAD; the test
# test_tsan_detects_a_race checks that TSan does report a deliberate race in this build.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/sanitizer_build.sh
BUILD=build/tsan
sanitizer_build "$BUILD" -DTAPEGRAD_TSAN=ON
export LD_PRELOAD="$(g++ -print-file-name=libtsan.so)"
# halt_on_error: the first report fails the run (exit code 66), as ASan's does in sanitize.sh.
# Reports go to files, as pytest's capture would swallow a halted process's stderr.
REPORT="$PWD/$BUILD/report"
rm -f "$REPORT".*
export TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1:log_path=$REPORT:suppressions=$PWD/scripts/tsan.supp"
# OpenBLAS's own threads are uninstrumented and only add noise and time here.
export OPENBLAS_NUM_THREADS=1
TESTS=(tests/csrc)
[ -d tests/autograd ] && TESTS+=(tests/autograd)
rc=0
"$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}" -m "threads and not slow" "$@" || rc=$?
if compgen -G "$REPORT.*" > /dev/null; then
  cat "$REPORT".* >&2
  echo "ThreadSanitizer reported the races above" >&2
  exit 1
fi
exit "$rc"
