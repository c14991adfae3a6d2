"""The dtype objects under PyTorch's names: ``tapegrad.float32`` is ``_dtype.public(_dtype.float32)``."""
from . import _dtype
from ._dtype import public as _public

float32 = float = _public(_dtype.float32)  # noqa: A001  (PyTorch's aliases)
float64 = double = _public(_dtype.float64)
float16 = half = _public(_dtype.float16)
int64 = long = _public(_dtype.int64)
int32 = int = _public(_dtype.int32)  # noqa: A001
int16 = short = _public(_dtype.int16)
int8 = _public(_dtype.int8)
uint8 = _public(_dtype.uint8)
uint16 = _public(_dtype.uint16)
uint32 = _public(_dtype.uint32)
uint64 = _public(_dtype.uint64)
bool_ = _public(_dtype.bool_)
complex64 = cfloat = _public(_dtype.complex64)
complex128 = cdouble = _public(_dtype.complex128)
complex32 = chalf = _dtype.complex32  # a name only: comparisons and attributes, no tensors (numpy has no such type)
bfloat16 = _public(_dtype.bfloat16)  # None without ml_dtypes (tapegrad.__getattr__ says what to install)
float8_e4m3fn = _public(_dtype.float8_e4m3fn)
float8_e5m2 = _public(_dtype.float8_e5m2)
