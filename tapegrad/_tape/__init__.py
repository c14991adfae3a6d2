"""The tape: the bottom layer of tapegrad. It imports nothing above it.

``grad_mode`` (whether ops record), ``node`` (one recorded op application), ``registry``
(the op table and ``apply``, which runs an op and records it) and ``engine`` (the backward
pass). The ops (``tapegrad.ops``) are written against this layer; ``Tensor`` and the public
autograd API (``tapegrad.autograd``) sit above them.
"""
