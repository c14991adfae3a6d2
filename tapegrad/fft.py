"""``tapegrad.fft``: PyTorch's ``torch.fft`` namespace, over ``tapegrad.ops.fft`` (scipy.fft computes).

Every transform is differentiable (complex outputs follow PyTorch's conventions for complex
gradients) and takes ``norm=`` "backward" (the default), "ortho" or "forward".

>>> x = tapegrad.randn(8, requires_grad=True)
>>> (tapegrad.fft.rfft(x).abs() ** 2).sum().backward()
"""
from .ops.fft import (fft, fft2, fftfreq, fftn, fftshift, hfft, hfft2, hfftn, ifft, ifft2, ifftn,  # noqa: F401
                      ifftshift, ihfft, ihfft2, ihfftn, irfft, irfft2, irfftn, rfft, rfft2, rfftfreq, rfftn)

__all__ = ["fft", "fft2", "fftfreq", "fftn", "fftshift", "hfft", "hfft2", "hfftn", "ifft", "ifft2", "ifftn",
           "ifftshift", "ihfft", "ihfft2", "ihfftn", "irfft", "irfft2", "irfftn", "rfft", "rfft2", "rfftfreq", "rfftn"]
