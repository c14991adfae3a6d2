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


def test_a_shared_instance_entered_twice_restores_grad_mode():
    # PyTorch keeps one `prev` per instance: after this, its grad mode stays off for good
    ng = tg.no_grad()
    with ng:
        with ng:
            pass
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()


def test_a_shared_instance_in_several_threads_restores_each_threads_mode():
    import threading
    ng = tg.no_grad()
    barrier = threading.Barrier(4)
    after = []

    def work():
        with ng:
            barrier.wait()  # all four inside at once: entries interleave across threads
        after.append(tg.is_grad_enabled())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert after == [True] * 4 and tg.is_grad_enabled()


@pytest.mark.parametrize("ctx,inside", [(tg.no_grad, False), (tg.inference_mode, False)])
def test_decorator_without_parentheses(ctx, inside):
    @ctx
    def f():
        return tg.is_grad_enabled()

    assert f() is inside and tg.is_grad_enabled()


def test_a_decorated_generator_runs_its_steps_in_the_mode_and_gives_the_caller_its_own():
    @tg.no_grad()
    def gen():
        for _ in range(2):
            yield tg.is_grad_enabled()

    g = gen()
    assert next(g) is False
    assert tg.is_grad_enabled()  # between steps the caller's mode holds
    assert next(g) is False
    with tg.no_grad():
        @tg.enable_grad()
        def gen2():
            yield tg.is_grad_enabled()
        assert next(gen2()) is True
        assert not tg.is_grad_enabled()


def test_a_decorated_generator_forwards_send_throw_and_close():
    seen = []

    @tg.no_grad()
    def gen():
        try:
            x = yield 1
            seen.append((x, tg.is_grad_enabled()))
            yield 2
        except KeyError:
            seen.append(("thrown", tg.is_grad_enabled()))
            yield 3
        finally:
            seen.append(("closed", tg.is_grad_enabled()))

    g = gen()
    assert next(g) == 1 and g.send("hi") == 2 and g.throw(KeyError) == 3
    g.close()
    assert seen == [("hi", False), ("thrown", False), ("closed", False)] and tg.is_grad_enabled()


def test_is_inference_mode_enabled_reports_inference_mode_not_no_grad():
    assert not tg.is_inference_mode_enabled()
    with tg.no_grad():
        assert not tg.is_inference_mode_enabled()  # PyTorch: no_grad is not inference mode
    with tg.inference_mode():
        assert tg.is_inference_mode_enabled() and not tg.is_grad_enabled()
        with tg.inference_mode(False):
            assert not tg.is_inference_mode_enabled()
        assert tg.is_inference_mode_enabled()
    assert not tg.is_inference_mode_enabled()

    @tg.inference_mode()
    def f():
        return tg.is_inference_mode_enabled(), tg.is_grad_enabled()

    @tg.inference_mode
    def h():
        return tg.is_inference_mode_enabled()

    assert f() == (True, False) and h() is True and not tg.is_inference_mode_enabled()
