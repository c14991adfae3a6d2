"""What the worker scripts share: LeNet (as examples/lenet.py) and a synthetic batch stream."""
import numpy as np

import tapegrad
import tapegrad.nn as nn
import tapegrad.nn.functional as F


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, kernel_size=5)
        self.conv2 = nn.Conv2d(20, 50, kernel_size=5)
        self.fc1 = nn.Linear(800, 500)
        self.fc2 = nn.Linear(500, 10)

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2)
        x = F.max_pool2d(self.conv2(x), 2)
        x = F.relu(self.fc1(x.reshape(x.shape[0], 800)))
        return self.fc2(x)


def batches(seed, steps, batch, dtype=np.float64):
    """The same global batches on every rank: (steps, batch, 1, 28, 28) images and labels."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((steps, batch, 1, 28, 28)).astype(dtype),
            rng.integers(0, 10, (steps, batch)))


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)
