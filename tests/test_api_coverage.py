"""scripts/api_coverage.py: tapegrad's share of PyTorch's public API may only grow (a ratchet)."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", "api_coverage.py")


@pytest.fixture(scope="module")
def coverage():
    spec = importlib.util.spec_from_file_location("api_coverage", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def measured(coverage):
    return coverage.measure()


def test_every_namespace_stays_at_or_above_its_floor(coverage, measured):
    assert set(coverage.FLOORS) == {label for label, _, _ in coverage.NAMESPACES}
    low = {label: f"{r['share']:.4f} < floor {r['floor']}" for label, r in measured.items() if r["share"] < r["floor"]}
    assert not low, f"API coverage fell below its floor (a name was removed or renamed?): {low}"


def test_every_exclusion_matches_a_name(coverage, measured):
    # a stale or mistyped pattern would hide nothing today and something unintended tomorrow
    assert coverage.unused_exclusions(measured) == []


def test_exclusions_are_one_reasoned_entry_each(coverage):
    for ns, pattern, reason in coverage.EXCLUDED + coverage.KEPT:
        assert ns == "*" or set(ns.split()) <= {label for label, _, _ in coverage.NAMESPACES}, ns
        assert pattern and not pattern.startswith("_") and reason.strip(), (ns, pattern, reason)


def test_exclusion_rules(coverage):
    assert coverage.exclusion("torch", "cudnn_convolution") == "cuDNN: NVIDIA's GPU kernels"
    assert coverage.exclusion("torch", "view_copy") is not None
    assert coverage.exclusion("torch", "index_copy") is None  # KEPT overrides the *_copy pattern
    assert coverage.exclusion("Tensor", "index_copy") is None
    assert coverage.exclusion("torch", "add") is None


def test_counts_are_what_tapegrad_has(measured):
    import tapegrad
    r = measured["Tensor"]
    assert r["counted"] == r["covered"] + len(r["missing"])
    assert all(callable(getattr(tapegrad.Tensor, n)) for n in r["covered_names"])
    assert not any(callable(getattr(tapegrad.Tensor, n, None)) for n in r["missing"])
    assert "add" in r["covered_names"] and "cuda" in r["excluded"]
    # typing re-exports are nobody's API
    assert "Callable" not in measured["nn.init"]["missing"] + measured["nn.init"]["covered_names"]


def test_command_line(measured):
    out = subprocess.run([sys.executable, SCRIPT, "--json"], capture_output=True, text=True, check=True).stdout
    data = json.loads(out)["namespaces"]
    assert {k: v["covered"] for k, v in data.items()} == {k: v["covered"] for k, v in measured.items()}
    missing = subprocess.run([sys.executable, SCRIPT, "--missing", "fft"], capture_output=True, text=True,
                             check=True).stdout.split()
    assert missing == measured["fft"]["missing"]
    bad = subprocess.run([sys.executable, SCRIPT, "--missing", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown namespace" in bad.stderr
