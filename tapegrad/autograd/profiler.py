"""``torch.autograd.profiler``: the older profiler's names, over ``tapegrad.profiler``
(``with profile() as prof: ...; print(prof.key_averages().table(sort_by="self_cpu_time_total"))``)."""
from ._profiling import EventList, FunctionEvent, FunctionEventAvg, record_function  # noqa: F401
from ._profiling import profile as _profile

__all__ = ["profile", "record_function", "EventList", "FunctionEvent", "FunctionEventAvg"]


class profile(_profile):
    """The legacy signature: ``enabled=False`` records nothing; ``use_cuda``/``use_device`` and the
    other device options are accepted (every op here runs on the CPU)."""

    def __init__(self, enabled: bool = True, *, use_cuda: bool = False, use_device=None, record_shapes: bool = False,
                 with_flops: bool = False, profile_memory: bool = False, with_stack: bool = False,
                 with_modules: bool = False, use_kineto: bool = False, use_cpu: bool = True, experimental_config=None,
                 acc_events: bool = False, custom_trace_id_callback=None):
        super().__init__(record_shapes=record_shapes, acc_events=acc_events)
        self.enabled = bool(enabled)

    def start(self):
        if self.enabled:
            super().start()
