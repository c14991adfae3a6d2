"""Names that timm and torchvision touch at import (found running timm 1.0 with torch aliased to
tapegrad): each as PyTorch has it, checked against PyTorch where it is importable."""
import collections.abc
import importlib
import sys
import typing

import pytest

import tapegrad as tg
import tapegrad.hub as hub
from tapegrad.utils import data


def test_torch_home_is_the_hub_cache_root(monkeypatch, tmp_path):
    monkeypatch.setenv("TAPEGRAD_HOME", str(tmp_path / "home"))
    assert hub._get_torch_home() == str(tmp_path / "home")
    assert hub.get_dir() == str(tmp_path / "home" / "hub")
    monkeypatch.delenv("TAPEGRAD_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub._get_torch_home() == str(tmp_path / "xdg" / "tapegrad")
    torch = pytest.importorskip("torch")
    monkeypatch.delenv("TORCH_HOME", raising=False)
    assert torch.hub._get_torch_home() == str(tmp_path / "xdg" / "torch")  # the same rule, PyTorch's name


def test_model_zoo_reexports_hubs_tqdm():
    from tapegrad.utils import model_zoo
    assert model_zoo.tqdm is hub.tqdm and model_zoo.load_url is hub.load_state_dict_from_url
    torch = pytest.importorskip("torch")
    import torch.utils.model_zoo
    assert torch.utils.model_zoo.tqdm is torch.hub.tqdm


def test_hub_tqdm_stand_in_without_tqdm(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if tqdm were not installed
    try:
        plain = importlib.reload(hub)
        with plain.tqdm(total=4) as bar:
            bar.update(1)
            bar.update(1)
        assert bar.n == 2 and capsys.readouterr().err == "\r25.0%\r50.0%\n"
        plain.tqdm(total=None, disable=True).update(3)
        assert capsys.readouterr().err == ""
    finally:
        monkeypatch.undo()
        importlib.reload(hub)


def test_datasets_samplers_and_loaders_are_generic():
    torch = pytest.importorskip("torch")

    class Vision(data.Dataset[int]):  # torchvision's VisionDataset(data.Dataset[T_co])
        def __getitem__(self, i):
            return tg.tensor([float(i)])

        def __len__(self):
            return 3

    class Stream(data.IterableDataset[int]):
        def __iter__(self):
            return iter(range(3))

    for name in ("Dataset", "IterableDataset", "Subset", "ConcatDataset", "Sampler", "DataLoader"):
        ours, theirs = getattr(data, name)[int], getattr(torch.utils.data, name)[int]
        assert typing.get_origin(ours) is getattr(data, name) and typing.get_args(ours) == typing.get_args(theirs)
    for name in ("SequentialSampler", "RandomSampler", "BatchSampler", "DistributedSampler"):
        assert isinstance(getattr(data, name), type) and issubclass(getattr(data, name), data.Sampler)
    assert isinstance(Stream(), collections.abc.Iterable) and list(Stream()) == [0, 1, 2]
    assert [b.tolist() for b in data.DataLoader(Vision(), batch_size=2)] == [[[0.0], [1.0]], [[2.0]]]
    assert [b.tolist() for b in data.DataLoader(Stream(), batch_size=2)] == [[0, 1], [2]]


@pytest.mark.parametrize("spec", ["cuda", "cuda:1", "mps", "meta", "cpu:0", "xla", "xpu:2"])
def test_other_device_types_are_values_as_in_pytorch(spec):
    torch = pytest.importorskip("torch")
    ours, theirs = tg.device(spec), torch.device(spec)
    assert (repr(ours), str(ours), ours.type, ours.index) == (repr(theirs), str(theirs), theirs.type, theirs.index)
    for a in ("cpu", "cuda", "cuda:0", "cuda:1", "meta", "cpu:0"):
        assert (ours == tg.device(a)) == (theirs == torch.device(a)), a
    assert tg.device("cuda", 1) == tg.device("cuda:1") and str(tg.device("cuda", 1)) == str(torch.device("cuda", 1))


def test_a_device_default_argument_imports_but_nothing_goes_there():
    class PrefetchLoader:  # timm.data.loader's signature: a CUDA device as a default value
        def __init__(self, device: tg.device = tg.device("cuda")):
            self.device = device

    d = PrefetchLoader().device
    for make in (lambda: tg.zeros(2, device=d), lambda: tg.ones(2).to(d), lambda: tg.nn.Linear(2, 2).to(d),
                 lambda: tg.tensor([1.0], device="mps"), lambda: tg.set_default_device("cuda:0")):
        with pytest.raises(RuntimeError, match="tapegrad runs on the CPU only; device '(cuda|mps|cuda:0)' is not available"):
            make()
    with pytest.raises(RuntimeError, match="device type at start of device string: foo"):
        tg.device("foo")
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match="device type at start of device string: foo"):
        torch.device("foo")


def test_jit_annotations_names():
    torch = pytest.importorskip("torch")
    import torch.jit.annotations as theirs

    import tapegrad.jit.annotations as ours
    for name in ours.__all__:
        assert getattr(ours, name) is getattr(theirs, name) or name.startswith("BroadcastingList"), name
    assert ours.BroadcastingList2[int] is None and theirs.BroadcastingList2[int] is None
    assert tg.jit.annotations is ours
