"""Floating-point edge cases (log 0, 1/0, overflow, 0/0) give inf/nan without a RuntimeWarning, as
PyTorch's ops do, forward and backward, so a script run under ``-W error`` does not stop on them;
numpy calls of the user's own keep numpy's warnings."""
import threading
import warnings

import numpy as np
import pytest

import tapegrad as tg

EDGE = [0.0, 1.0, -1.0, 1e30]

CASES = {
    "log": lambda x: x.log(),
    "log2": lambda x: tg.log2(x),
    "log1p": lambda x: (x - 2).log1p(),
    "div_scalar": lambda x: x / 0,
    "div_self": lambda x: x / x,
    "sqrt": lambda x: x.sqrt(),
    "rsqrt": lambda x: x.rsqrt(),
    "pow_neg": lambda x: x ** -1.5,
    "reciprocal": lambda x: x.reciprocal(),
    "exp_overflow": lambda x: (x * 100).float().exp(),
    "mul_overflow": lambda x: x.float() * 1e30,
    "inf_times_zero": lambda x: (x.log() * 0),
    "atanh": lambda x: x.atanh(),
    "logit": lambda x: x.logit(),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_edge_values_do_not_warn(name):
    x = tg.tensor(EDGE, dtype=tg.float64, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning fails the test
        y = CASES[name](x)
        y.sum().backward()
    assert x.grad is not None
    assert not np.isfinite(y.detach().numpy()).all() or not np.isfinite(x.grad.numpy()).all()


def test_values_are_the_ieee_ones():
    x = tg.tensor([0.0, 1.0, -1.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = x.log()
        y.sum().backward()
    np.testing.assert_array_equal(y.detach().numpy(), [-np.inf, 0.0, np.nan])
    np.testing.assert_array_equal(x.grad.numpy(), [np.inf, 1.0, -1.0])


def test_the_users_numpy_still_warns_and_raises():
    tg.tensor([0.0]).log()  # the op's quiet state does not leak out of it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeWarning, match="divide by zero"):
            np.log(np.zeros(1))
    with np.errstate(divide="raise"):
        tg.tensor([0.0]).log()  # tapegrad's op: quiet even here
        with pytest.raises(FloatingPointError):
            np.log(np.zeros(1))


def test_an_error_inside_an_op_keeps_its_message_and_the_state():
    with pytest.raises(Exception, match="shape|size|broadcast"):
        tg.ones(2, 3) + tg.ones(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeWarning):
            np.log(np.zeros(1))


def test_threads_keep_their_own_state():
    # one thread's ops never switch another thread's numpy warnings off
    stop = threading.Event()
    errors = []

    def ops():
        x = tg.tensor([0.0, 1.0], requires_grad=True)
        while not stop.is_set():
            x.log().sum().backward()

    t = threading.Thread(target=ops)
    t.start()
    try:
        for _ in range(200):
            with np.errstate(divide="raise"):
                try:
                    np.log(np.zeros(1))
                    errors.append("no FloatingPointError in the main thread")
                except FloatingPointError:
                    pass
    finally:
        stop.set()
        t.join()
    assert errors == []


def test_user_code_inside_backward_keeps_the_users_numpy_state():
    # a custom Function's forward and backward and a tensor hook are the user's numpy code: they
    # warn as they would anywhere; the tapegrad ops around them stay quiet
    calls = []

    class LogZero(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            np.log(np.zeros(1))
            return x * 2

        @staticmethod
        def backward(ctx, g):
            calls.append("backward")
            np.log(np.zeros(1))
            return g * 2

    x = tg.ones(2, requires_grad=True)
    x.register_hook(lambda g: calls.append("hook") or np.log(np.zeros(1)) and None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = LogZero.apply(x)
        (y * 0).log().sum().backward()  # log(0) in the op: quiet
    assert calls == ["backward", "hook"]
    assert [str(w.message) for w in caught] == ["divide by zero encountered in log"] * 3
