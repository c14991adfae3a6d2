"""``tapegrad.linalg``: PyTorch's ``torch.linalg`` namespace, over ``tapegrad.ops.linalg``.

Everything is batched over leading dims and differentiable.

>>> A = tapegrad.randn(3, 3, dtype=tapegrad.float64)
>>> x = tapegrad.linalg.solve(A @ A.mT + tapegrad.eye(3, dtype=tapegrad.float64), tapegrad.ones(3, dtype=tapegrad.float64))
>>> tapegrad.linalg.norm(x), tapegrad.linalg.matrix_norm(A, "nuc")
"""
from .ops.linalg import (LinAlgError, cholesky, cholesky_ex, eig, eigh, eigvals, eigvalsh, inv, inv_ex, lstsq,  # noqa: F401
                         matrix_norm, matrix_power, matrix_rank, multi_dot, pinv, qr, slogdet, solve, solve_ex, svd,
                         svdvals, vecdot, vector_norm)
# torch.linalg's forms of names that mean something else at the top level (tapegrad.norm, .det, ...)
from .ops.linalg import linalg_cross as cross, linalg_det as det, linalg_diagonal as diagonal  # noqa: F401
from .ops.linalg import linalg_norm as norm  # noqa: F401
from .ops.matmul import bmm, matmul, mm  # noqa: F401  (what tapegrad.linalg held before)

__all__ = ["LinAlgError", "cholesky", "cholesky_ex", "cross", "det", "diagonal", "eig", "eigh", "eigvals", "eigvalsh", "inv",
           "inv_ex", "lstsq", "matmul", "matrix_norm", "matrix_power", "matrix_rank", "multi_dot", "norm", "pinv",
           "qr", "slogdet", "solve", "solve_ex", "svd", "svdvals", "vecdot", "vector_norm"]
