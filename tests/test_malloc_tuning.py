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


def _thp_mode():
    try:
        text = open("/sys/kernel/mm/transparent_hugepage/enabled").read()
    except OSError:
        return None
    return text[text.index("[") + 1:text.index("]")]


def test_reserve_huge_heap_validates():
    with pytest.raises(ValueError, match="reserve_huge_heap: bytes must be >= 0"):
        tg._C.reserve_huge_heap(-1)
    assert tg._C.reserve_huge_heap(1 << 20) == 0  # below one huge page: nothing to advise


@pytest.mark.skipif(not sys.platform.startswith("linux") or _thp_mode() != "madvise",
                    reason="transparent huge pages in madvise mode (Linux) only")
def test_import_puts_the_heap_top_on_huge_pages():
    """A fresh interpreter that imports tapegrad has a heap mapping advised to huge pages (VmFlags
    'hg') of about the reserved size, and arrays allocated there are backed by huge pages."""
    code = ("import tapegrad, numpy as np\n"
            "xs = [np.ones(1 << 20, np.float32) for _ in range(8)]\n"
            "blocks = open('/proc/self/smaps').read().split('\\n')\n"
            "size = huge = 0\n"
            "for i, line in enumerate(blocks):\n"
            "    if line.endswith('[heap]'):\n"
            "        fields = dict(l.split(':', 1) for l in blocks[i + 1:i + 25] if ':' in l and ' ' not in l.split(':')[0])\n"
            "        if ' hg' in ' ' + fields.get('VmFlags', ''):\n"
            "            size += int(fields['Size'].split()[0]); huge += int(fields['AnonHugePages'].split()[0])\n"
            "print(size, huge)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    size, huge = map(int, out.stdout.split())
    assert size >= 400 << 10, f"advised heap: {size} KiB"
    assert huge >= 16 << 10, f"huge pages under 32 MiB of arrays: {huge} KiB"
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, TAPEGRAD_MALLOC_TUNING="0"))
    assert off.returncode == 0, off.stderr
    assert off.stdout.split()[0] == "0"  # the tuning off leaves the heap alone


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="rlimits: Linux")
def test_no_heap_reservation_under_an_address_space_limit():
    """With ulimit -v set, the 512 MiB reservation (and the top pad every later heap extension
    would ask for) would count against it: import leaves the heap alone, and a program that
    allocates close to the limit still can."""
    code = ("import resource\n"
            "resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))\n"
            "import tapegrad, numpy as np\n"
            "print(tapegrad._C.reserve_huge_heap(512 << 20))\n"
            "xs = [np.ones(1 << 20, np.float32) for _ in range(64)]\n"
            "print(len(xs))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "64"]
