"""The import-time allocator setting (tapegrad/__init__.py, csrc/bindings.cpp)."""
import os
import subprocess
import sys

import pytest

import tapegrad as tg


def test_keep_freed_memory_validates_and_reports():
    assert isinstance(tg._C.keep_freed_memory(32 << 20, 256 << 20), bool)
    with pytest.raises(ValueError, match="keep_freed_memory"):
        tg._C.keep_freed_memory(-1, 0)


@pytest.mark.parametrize("setting", ["0", "1"])
def test_import_with_and_without_the_tuning(setting):
    env = dict(os.environ, TAPEGRAD_MALLOC_TUNING=setting)
    code = "import tapegrad as tg; x = tg.randn(512, 512, requires_grad=True); (x @ x).sum().backward(); print('ok')"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
