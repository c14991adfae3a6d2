"""lgamma/digamma/polygamma and the tapegrad.special namespace against torch.special: values,
float64 gradients and second derivatives."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch_oracle import check_double_backward, check_forward_and_gradients  # noqa: E402

import tapegrad as tg  # noqa: E402

R = np.random.default_rng(0)
POS = R.uniform(0.2, 4.0, (3, 4))
ANY = R.uniform(-0.9, 0.9, (3, 4))
NEG = -POS - 0.25  # negative non-integers: lgamma of |Gamma|, digamma's branches

CASES = {
    "gamma": (lambda M, x, n: (M.lgamma(x), M.digamma(x), M.lgamma(n), M.digamma(n), x.lgamma(), x.digamma(),
                               M.polygamma(0, x)), [POS, NEG]),
    "special": (lambda M, x, p, a: (M.special.gammaln(x), M.special.psi(x), M.special.digamma(x),
                                    M.special.polygamma(2, x), M.special.multigammaln(x + 2, 3), M.special.erf(a),
                                    M.special.erfc(a), M.special.erfinv(a), M.special.expit(a),
                                    M.special.logit(p / 5), M.special.ndtr(a), M.special.ndtri(p / 5),
                                    M.special.log_ndtr(a), M.special.xlog1py(a, p), M.special.xlogy(p, x),
                                    M.special.sinc(a), M.special.exp2(a), M.special.expm1(a), M.special.log1p(p),
                                    M.special.logsumexp(a, 1), M.special.softmax(a, 0), M.special.log_softmax(a, 1)),
                [POS, R.uniform(0.2, 4.0, (3, 4)), ANY]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_special_matches_torch(name):
    fn, arrays = CASES[name]
    check_forward_and_gradients(fn, arrays, grad_rtol=1e-8)


def test_polygamma_matches_torch():
    """PyTorch's polygamma(n >= 1) is good to about 1e-9 relative (scipy's, which tapegrad uses, to
    the last bits), hence the looser tolerance."""
    for n in range(4):
        for a in (POS, NEG):
            got = {}
            for M in (torch, tg):
                x = M.tensor(a, requires_grad=True)
                y = x.polygamma(n) if n == 2 else M.polygamma(n, x)
                (g,) = (torch.autograd.grad if M is torch else tg.autograd.grad)(y.sum(), x)
                got[M] = (y.detach().numpy(), g.numpy())
            np.testing.assert_allclose(got[tg][0], got[torch][0], rtol=1e-8, err_msg=f"n={n}")
            np.testing.assert_allclose(got[tg][1], got[torch][1], rtol=1e-8, err_msg=f"n={n}")


@pytest.mark.parametrize("name,fn", [
    ("lgamma", lambda M, x: M.lgamma(x).sum()),
    ("digamma", lambda M, x: M.digamma(x).sum()),
    ("polygamma", lambda M, x: M.polygamma(1, x).sum()),
])
def test_special_double_backward_matches_torch(name, fn):
    check_double_backward(fn, [POS], name, lambda outs: outs[0])


def test_integer_input_and_bad_n():
    assert str(tg.lgamma(tg.tensor([1, 2, 3])).dtype) == str(torch.lgamma(torch.tensor([1, 2, 3])).dtype).split(".")[1]
    with pytest.raises(RuntimeError, match="polygamma"):
        tg.polygamma(-1, tg.ones(2))
