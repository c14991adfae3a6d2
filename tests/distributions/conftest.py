"""torch's distributions validate their arguments by default, but torch._dynamo (which some torch
calls in other test files enter, e.g. around module hooks or flex_attention) switches that
default off for the whole process: tests that compare validation errors with PyTorch's then saw
torch accept what it refuses when run after them. Put PyTorch's default back for each test."""
import sys

import pytest


@pytest.fixture(autouse=True)
def _torch_validates_distribution_arguments():
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    dist = torch.distributions.Distribution
    before = dist._validate_args
    dist.set_default_validate_args(True)
    yield
    dist.set_default_validate_args(before)
