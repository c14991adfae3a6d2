"""tapegrad.hub (torch.hub's load_state_dict_from_url / download_url_to_file / get_dir / set_dir),
utils.model_zoo.load_url, and the small torch namespaces scripts touch: version, xpu, types."""
import hashlib
import os

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import hub


@pytest.fixture
def checkpoint(tmp_path):
    model = tg.nn.Linear(3, 2)
    src = tmp_path / "src"
    src.mkdir()
    raw = src / "raw.pt"
    tg.save(model.state_dict(), str(raw))
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    named = src / f"linear-{digest[:8]}.pth"
    os.replace(raw, named)
    return model, named, digest


def test_load_state_dict_from_url_downloads_once_and_checks_the_hash(tmp_path, checkpoint):
    model, path, _ = checkpoint
    cache = tmp_path / "cache"
    sd = hub.load_state_dict_from_url(path.as_uri(), model_dir=str(cache), check_hash=True, progress=False)
    fresh = tg.nn.Linear(3, 2)
    fresh.load_state_dict(sd)
    np.testing.assert_array_equal(fresh.weight.detach().numpy(), model.weight.detach().numpy())
    assert os.listdir(cache) == [path.name]
    os.unlink(path)  # the cached copy serves the next call
    from tapegrad.utils import model_zoo
    sd2 = model_zoo.load_url(path.as_uri(), model_dir=str(cache), progress=False)
    assert tg.equal(sd2["bias"], sd["bias"])


def test_a_bad_hash_leaves_nothing_behind(tmp_path, checkpoint):
    _, path, digest = checkpoint
    bad = path.with_name("linear-0000beef.pth")
    os.replace(path, bad)
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError, match='invalid hash value \\(expected "0000beef"'):
        hub.load_state_dict_from_url(bad.as_uri(), model_dir=str(cache), check_hash=True, progress=False)
    assert os.listdir(cache) == []
    with pytest.raises(ValueError, match="check_hash=True needs"):
        hub.load_state_dict_from_url(bad.with_name("plain.pth").as_uri(), model_dir=str(cache), check_hash=True)
    with pytest.raises(OSError):  # a missing source: urllib's error, and still nothing cached
        hub.download_url_to_file((tmp_path / "nope.pth").as_uri(), str(cache / "nope.pth"), progress=False)
    assert os.listdir(cache) == []


def test_pytorch_checkpoints_load_without_torch_in_tapegrad(tmp_path):
    torch = pytest.importorskip("torch")
    src = tmp_path / "resnet-head.pth"
    lin = torch.nn.Linear(4, 3)
    torch.save(lin.state_dict(), src)
    sd = hub.load_state_dict_from_url(src.as_uri(), model_dir=str(tmp_path / "c"), progress=False)
    np.testing.assert_array_equal(sd["weight"].numpy(), lin.weight.detach().numpy())


def test_get_and_set_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "_hub_dir", [None])
    monkeypatch.setenv("TAPEGRAD_HOME", str(tmp_path / "home"))
    assert hub.get_dir() == str(tmp_path / "home" / "hub")
    hub.set_dir(tmp_path / "elsewhere")
    assert hub.get_dir() == str(tmp_path / "elsewhere")


def test_version_xpu_and_types():
    assert tg.version.__version__ == tg.__version__ and tg.version.cuda is None and tg.version.hip is None
    assert not tg.xpu.is_available() and tg.xpu.device_count() == 0
    tg.xpu.manual_seed_all(0)  # scripts call it unconditionally
    with pytest.raises(RuntimeError, match="CPU only"):
        tg.xpu.current_device()
    from tapegrad.types import Number
    assert isinstance(3.0, Number.__args__)
