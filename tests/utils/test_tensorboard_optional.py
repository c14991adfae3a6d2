"""tapegrad.utils.tensorboard is an optional extra: without the tensorboard package, importing it
raises an ImportError that names the extra, and tapegrad itself does not need it."""
import importlib
import subprocess
import sys

import pytest


def test_import_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "tensorboard.compat.proto.event_pb2", None)
    monkeypatch.delitem(sys.modules, "tapegrad.utils.tensorboard", raising=False)
    monkeypatch.delitem(sys.modules, "tapegrad.utils.tensorboard.writer", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'tapegrad\[tensorboard\]'"):
        importlib.import_module("tapegrad.utils.tensorboard")


def test_tapegrad_does_not_import_tensorboard():
    code = "import sys, tapegrad, tapegrad.utils; print('tensorboard' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
