"""``torch.profiler``: where a program's time goes, op by op.

While a ``profile`` records, the tape reports every op's forward (its name, start and end, its
inputs' shapes with ``record_shapes=True``) and every backward node (under its ``grad_fn`` class's
name, e.g. ``MulBackward0``, the ops its VJPs ran nested inside), from every thread;
``record_function(name)`` adds ranges of one's own. ``key_averages().table(sort_by=...)`` prints the
totals as PyTorch's table does, ``export_chrome_trace(path)`` writes a trace for chrome://tracing or
Perfetto, and ``schedule`` / ``on_trace_ready`` / ``step()`` record chosen steps of a training loop.

>>> with tapegrad.profiler.profile(record_shapes=True) as prof:
...     loss = model(x).sum()
...     loss.backward()
>>> print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=10))

The implementation, and what it does not record, is ``tapegrad/autograd/_profiling.py`` (the
autograd layer, so that ``autograd.profiler`` can use it too).
"""
from .autograd._profiling import (EventList, FunctionEvent, FunctionEventAvg, ProfilerAction,  # noqa: F401
                                  ProfilerActivity, kineto_available, profile, record_function, schedule,
                                  supported_activities, tensorboard_trace_handler)

__all__ = ["profile", "record_function", "schedule", "ProfilerAction", "ProfilerActivity", "tensorboard_trace_handler",
           "EventList", "FunctionEvent", "FunctionEventAvg", "supported_activities", "kineto_available"]
