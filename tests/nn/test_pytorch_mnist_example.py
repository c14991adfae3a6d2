"""PyTorch's own mnist/main.py, with only its imports and data loading changed, runs on tapegrad."""
import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pytorch_mnist_main.py"


def test_pytorch_mnist_example_trains_a_few_steps(tmp_path):
    env = dict(os.environ, TAPEGRAD_MNIST_RANDOM="24")
    # 24 random images in batches of 8: three training steps (Adadelta + StepLR), then the test pass
    res = subprocess.run([sys.executable, str(EXAMPLE), "--epochs", "1", "--batch-size", "8",
                          "--test-batch-size", "12", "--log-interval", "1", "--save-model"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("Train Epoch: 1") == 3
    assert "Test set: Average loss:" in res.stdout and "/24 (" in res.stdout
    import tapegrad
    sd = tapegrad.load(tmp_path / "mnist_cnn.pt")
    assert sd["fc1.weight"].shape == (128, 9216) and sd["conv1.weight"].shape == (32, 1, 3, 3)


def test_pytorch_mnist_example_dry_run(tmp_path):
    env = dict(os.environ, TAPEGRAD_MNIST_RANDOM="16")
    res = subprocess.run([sys.executable, str(EXAMPLE), "--dry-run", "--epochs", "1", "--batch-size", "8",
                          "--test-batch-size", "16"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("Train Epoch: 1") == 1 and "Test set" in res.stdout


def test_example_changes_only_imports():
    """Apart from the header, the file differs from upstream only in its import block."""
    lines = EXAMPLE.read_text().splitlines()
    body = [ln for ln in lines if not ln.startswith("#")]
    imports = [ln for ln in body[:8]]
    assert imports[0] == "import argparse" and all(ln.startswith(("import", "from")) for ln in imports)
    assert "torchvision" not in "\n".join(body) and not any("import torch" in ln for ln in body)
