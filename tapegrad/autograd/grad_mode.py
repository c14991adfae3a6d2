"""``torch.autograd.grad_mode``'s public names (the implementation is the tape's, ``tapegrad/_tape``)."""
from .._tape.grad_mode import (_GradModeContext, enable_grad, is_grad_enabled, no_grad,  # noqa: F401
                               set_grad_enabled, state)
