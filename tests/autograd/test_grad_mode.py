"""no_grad / enable_grad / set_grad_enabled, as context managers and as decorators."""
import pytest

import tapegrad as tg


def leaf():
    return tg.tensor([1.0, 2.0], requires_grad=True)


def test_no_grad_context_manager():
    x = leaf()
    with tg.no_grad():
        assert not tg.is_grad_enabled()
        y = x * 2
    assert tg.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None


def test_enable_grad_inside_no_grad():
    x = leaf()
    with tg.no_grad():
        with tg.enable_grad():
            y = x * 2
        z = x * 2
    assert y.requires_grad and not z.requires_grad


def test_decorators():
    x = leaf()

    @tg.no_grad()
    def f(t):
        return t * 2

    @tg.enable_grad()
    def g(t):
        return t * 2

    assert not f(x).requires_grad
    with tg.no_grad():
        assert g(x).requires_grad
    assert tg.is_grad_enabled()
    assert f.__name__ == "f"


def test_set_grad_enabled_forms():
    x = leaf()
    with tg.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert tg.is_grad_enabled()
    tg.set_grad_enabled(False)  # as a plain call it switches at once, like PyTorch
    try:
        assert not tg.is_grad_enabled()
    finally:
        tg.set_grad_enabled(True)
    assert tg.is_grad_enabled()

    @tg.set_grad_enabled(False)
    def f(t):
        return t * 2

    assert tg.is_grad_enabled()  # the decorator does not leak the mode
    assert not f(x).requires_grad
    assert tg.is_grad_enabled()


def test_mode_restored_after_exception():
    with pytest.raises(ValueError):
        with tg.no_grad():
            raise ValueError
    assert tg.is_grad_enabled()

    @tg.no_grad()
    def boom():
        raise ValueError

    with pytest.raises(ValueError):
        boom()
    assert tg.is_grad_enabled()


def test_backward_restores_grad_mode():
    x = leaf()
    (x * 2).sum().backward()
    assert tg.is_grad_enabled()
