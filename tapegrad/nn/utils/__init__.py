"""``tapegrad.nn.utils``: gradient clipping, flat parameter vectors, weight_norm and the
parametrizations (``parametrize``, ``parametrizations.weight_norm`` / ``spectral_norm``),
and ``rnn``: padded and packed batches of variable-length sequences for the recurrent layers."""
from .clip_grad import clip_grad_norm_, clip_grad_value_  # noqa: F401
from .convert_parameters import parameters_to_vector, vector_to_parameters  # noqa: F401
from . import parametrize, parametrizations  # noqa: F401,E402
from .weight_norm import remove_weight_norm, weight_norm  # noqa: F401,E402
from . import rnn  # noqa: F401,E402
