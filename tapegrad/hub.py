"""``torch.hub``'s download-and-load half: ``load_state_dict_from_url`` (the call pretrained model
code makes, e.g. torchvision's ``resnet.py``), ``download_url_to_file``, ``get_dir`` / ``set_dir``.
Checkpoints are PyTorch's own ``.pth`` files or tapegrad's, read by ``tapegrad.load`` (no unpickling).

Left out on purpose: ``hub.load`` / ``list`` / ``help``, which download a GitHub repository and run
its ``hubconf.py``, i.e. execute code fetched from the network.

The cache is ``$TAPEGRAD_HOME/hub`` (default ``$XDG_CACHE_HOME/tapegrad/hub``, else
``~/.cache/tapegrad/hub``), checkpoints under ``checkpoints/``. A download goes to a temporary
file in that directory and is renamed into place only once complete (and its hash checked), so an
interrupted one never leaves a truncated checkpoint behind for the next run to load.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
from urllib.parse import urlparse
from urllib.request import Request, urlopen

from .serialization import load as _load

try:
    from tqdm import tqdm
except ImportError:  # PyTorch's hub offers the same stand-in (torchvision imports ``tqdm`` from here)
    class tqdm:  # noqa: N801  (tqdm's name)
        """A bar that prints ``done/total`` percentages to stderr, for machines without tqdm."""

        def __init__(self, total=None, disable=False, unit=None, *args, **kwargs):
            self.total, self.disable, self.unit, self.n = total, disable, unit, 0

        def update(self, n):
            """Add ``n`` to the count and print the new state."""
            if self.disable:
                return
            self.n += n
            if self.total is None:
                sys.stderr.write(f"\r{self.n:0.1f} bytes")
            else:
                sys.stderr.write(f"\r{100 * self.n / float(self.total):0.1f}%")
            sys.stderr.flush()

        def close(self):
            """End the bar's line."""
            self.disable = True

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            if not self.disable:
                sys.stderr.write("\n")
            self.close()

__all__ = ["get_dir", "set_dir", "download_url_to_file", "load_state_dict_from_url"]

ENV_TAPEGRAD_HOME = "TAPEGRAD_HOME"

# a file name's "-<hex>." part: the leading digits of its SHA-256 (torchvision's naming)
HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")
READ_DATA_CHUNK = 128 * 1024
_hub_dir = [None]


def get_dir() -> str:
    """The hub's cache directory (``set_dir``'s, else ``$TAPEGRAD_HOME/hub``, else
    ``$XDG_CACHE_HOME/tapegrad/hub``, else ``~/.cache/tapegrad/hub``)."""
    if _hub_dir[0] is not None:
        return _hub_dir[0]
    return os.path.join(_get_torch_home(), "hub")


def _get_torch_home() -> str:
    """tapegrad's cache root, the directory ``hub`` and downloaded data live under (PyTorch's
    private helper of that name, which torchvision and timm import): ``$TAPEGRAD_HOME``, else
    ``$XDG_CACHE_HOME/tapegrad``, else ``~/.cache/tapegrad``.

    >>> _get_torch_home().endswith("tapegrad") or "TAPEGRAD_HOME" in os.environ
    True
    """
    home = os.environ.get(ENV_TAPEGRAD_HOME) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "tapegrad")
    return os.path.expanduser(home)


def set_dir(d) -> None:
    """Use ``d`` as the hub's cache directory from now on."""
    _hub_dir[0] = os.path.expanduser(os.fspath(d))


def download_url_to_file(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
    """Download ``url`` to ``dst``, written whole or not at all; with ``hash_prefix`` the file's
    SHA-256 must start with it (RuntimeError otherwise, and nothing is written). ``progress``
    shows a tqdm bar (without tqdm, percentages on stderr, as PyTorch's)."""
    dst = os.path.expanduser(os.fspath(dst))
    directory = os.path.dirname(os.path.abspath(dst))
    req = Request(url, headers={"User-Agent": "tapegrad.hub"})
    with urlopen(req) as response:  # noqa: S310  (the caller's URL, as torch.hub)
        length = response.headers.get("Content-Length") if hasattr(response, "headers") else None
        total = int(length) if length and length.isdigit() else None
        bar = None
        if progress:
            bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=os.path.basename(dst))
        fd, tmp = tempfile.mkstemp(prefix=".download-", dir=directory)
        try:
            sha = hashlib.sha256()
            with os.fdopen(fd, "wb") as f:
                while True:
                    chunk = response.read(READ_DATA_CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                    sha.update(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            if hash_prefix is not None:
                digest = sha.hexdigest()
                if not digest.startswith(hash_prefix):
                    raise RuntimeError(f'invalid hash value (expected "{hash_prefix}", got "{digest}") for {url}')
            os.replace(tmp, dst)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        finally:
            if bar is not None:
                bar.close()


def load_state_dict_from_url(url: str, model_dir: str | None = None, map_location=None, progress: bool = True,
                             check_hash: bool = False, file_name: str | None = None,
                             weights_only: bool = False) -> dict:
    """The checkpoint at ``url``, downloaded once into ``model_dir`` (default
    ``get_dir()/checkpoints``) and loaded by ``tapegrad.load``. ``check_hash``: the file name's
    ``-<hex>.`` part must be a prefix of its SHA-256. ``file_name`` names the cached file (default:
    the URL's last part)."""
    model_dir = os.path.join(get_dir(), "checkpoints") if model_dir is None else os.path.expanduser(model_dir)
    os.makedirs(model_dir, exist_ok=True)
    filename = file_name or os.path.basename(urlparse(url).path)
    if not filename:
        raise ValueError(f"load_state_dict_from_url: no file name in {url!r}; pass file_name=")
    cached = os.path.join(model_dir, filename)
    if not os.path.exists(cached):
        hash_prefix = None
        if check_hash:
            m = HASH_REGEX.search(filename)
            if m is None:
                raise ValueError(f"load_state_dict_from_url: check_hash=True needs a '-<sha256 prefix>.' "
                                 f"in the file name, got {filename!r}")
            hash_prefix = m.group(1)
        download_url_to_file(url, cached, hash_prefix, progress=progress)
    return _load(cached, map_location=map_location)
