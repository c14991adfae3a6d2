"""``tapegrad.futures``: PyTorch's ``torch.futures.Future``, the result of work that finishes
later (a collective started with ``async_op=True``: ``work.get_future()``).

A future either completes when someone calls :meth:`Future.set_result` (or
:meth:`Future.set_exception`), or, for one made from pending work, when it is waited on or
polled: MPI makes progress inside calls, so a future of a collective completes in ``wait()`` or
``done()``, not in a background thread. Callbacks added with :meth:`Future.then` and
:meth:`Future.add_done_callback` run once, in the thread that completes the future.

>>> from tapegrad.futures import Future
>>> f = Future()
>>> g = f.then(lambda fut: fut.value() * 2)
>>> f.set_result(21)
>>> g.wait()
42
"""
from __future__ import annotations

import threading
from typing import Callable, Generic, TypeVar

__all__ = ["Future", "collect_all", "wait_all"]

T = TypeVar("T")


class Future(Generic[T]):
    """A value that becomes available later, with PyTorch's ``torch.futures.Future`` methods.
    Generic in its value's type, as PyTorch's (``Future[Tensor]`` in annotations)."""

    def __init__(self, *, devices=None):
        self._cond = threading.Condition()
        self._done = False
        self._value = None
        self._error: BaseException | None = None
        self._callbacks: list = []
        self._drive: Callable | None = None  # completes pending work (blocking), when there is some
        self._poll: Callable | None = None   # asks pending work whether it is complete, without blocking

    @classmethod
    def _of(cls, drive: Callable, poll: Callable) -> "Future":
        """A future of pending work: ``drive()`` blocks until the work is done and returns the
        value; ``poll()`` says whether it is done."""
        fut = cls()
        fut._drive, fut._poll = drive, poll
        return fut

    def _settle(self):
        """Drive pending work to completion (one thread does; the others wait on the condition)."""
        with self._cond:
            drive, self._drive, self._poll = self._drive, None, None
        if drive is None:
            return
        try:
            value = drive()
        except BaseException as e:  # the work failed: the future carries its error
            if not self._done:
                self.set_exception(e)
            return
        if not self._done:  # a chained future is completed by its parent's callback instead
            self.set_result(value)

    def done(self) -> bool:
        """Whether the value (or an error) is there, without blocking."""
        poll = self._poll
        if not self._done and poll is not None and poll():
            self._settle()
        return self._done

    def wait(self):
        """Block until the future completes; return its value or raise its error."""
        if not self._done and self._drive is not None:
            self._settle()
        with self._cond:
            while not self._done:
                self._cond.wait()
        if self._error is not None:
            raise self._error
        return self._value

    def value(self):
        """The value of a completed future (raises its error; RuntimeError if not complete yet)."""
        if not self._done:
            raise RuntimeError("Future.value(): the future has not completed yet; call wait() first")
        if self._error is not None:
            raise self._error
        return self._value

    def then(self, callback: Callable) -> "Future":
        """A new future completed with ``callback(self)`` once this one completes (with the
        callback's exception, if it raises). Waiting on the new future waits on this one."""
        child = Future()

        def run(parent):
            try:
                child.set_result(callback(parent))
            except BaseException as e:
                child.set_exception(e)

        child._drive, child._poll = self.wait, self.done
        self.add_done_callback(run)
        return child

    def add_done_callback(self, callback: Callable) -> None:
        """Run ``callback(self)`` when the future completes (now, if it has)."""
        with self._cond:
            if not self._done:
                self._callbacks.append(callback)
                return
        callback(self)

    def set_result(self, result) -> None:
        """Complete the future with ``result`` (once: a second call raises RuntimeError)."""
        self._complete(result, None)

    def set_exception(self, result: BaseException) -> None:
        """Complete the future with an error, raised by ``wait()`` and ``value()``."""
        if not isinstance(result, BaseException):
            raise TypeError(f"Future.set_exception: expected an exception, got {type(result).__name__}")
        self._complete(None, result)

    def _complete(self, value, error):
        with self._cond:
            if self._done:
                raise RuntimeError("Future: set_result/set_exception called on a future that is already complete")
            self._value, self._error, self._done = value, error, True
            callbacks, self._callbacks = self._callbacks, []
            self._cond.notify_all()
        for cb in callbacks:
            cb(self)

    def __repr__(self):
        state = "done" if self._done else "pending"
        return f"<tapegrad.futures.Future ({state})>"


def collect_all(futures) -> Future:
    """A future completed with the list of ``futures`` once all of them have completed."""
    futures = list(futures)
    for f in futures:
        if not isinstance(f, Future):
            raise TypeError(f"collect_all: expected Futures, got {type(f).__name__}")

    def drive():
        for f in futures:
            try:
                f.wait()
            except BaseException:  # the caller reads each one's error from it
                pass
        return futures

    return Future._of(drive, lambda: all(f.done() for f in futures))


def wait_all(futures) -> list:
    """Wait for every future and return their values (raises the first error met)."""
    return [f.wait() for f in list(futures)]
