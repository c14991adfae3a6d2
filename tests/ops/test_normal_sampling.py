"""Normal samples (randn, normal, normal_, torch.distributions' rsample): Box-Muller on the kernel
threads from the generator's raw words (csrc/kernels/random.h). They must be normal (moments, a
Kolmogorov-Smirnov test per dtype and seed: deterministic, as the seeds are fixed), follow the
generator (seeding, saved and restored state, private Generators) and not depend on the thread
count."""
import numpy as np
import pytest
from scipy import stats

import tapegrad as tg
from tapegrad import _C


@pytest.mark.parametrize("dtype", [tg.float32, tg.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("seed", [0, 1, 2, 12345])
def test_samples_are_standard_normal(dtype, seed):
    tg.manual_seed(seed)
    z = tg.randn(400_001, dtype=dtype).numpy().astype(np.float64)
    assert np.isfinite(z).all()
    assert abs(z.mean()) < 5 / np.sqrt(z.size) and abs(z.std() - 1) < 0.006
    assert abs(stats.skew(z)) < 0.02 and abs(stats.kurtosis(z)) < 0.04
    assert stats.kstest(z, "norm").pvalue > 1e-4
    # the two halves of each pair (cos and sin of one angle) are uncorrelated
    assert abs(np.corrcoef(z[:-1:2], z[1::2])[0, 1]) < 0.01
    # tails: 2 P(Z > 3) = 0.0027, and the largest |z| float32's 2^-32-step uniforms allow is 6.7
    assert abs(np.mean(np.abs(z) > 3) - 0.0027) < 0.0006
    assert np.abs(z).max() < (6.7 if dtype == tg.float32 else 8.6)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 2047, 2048, 2049, (1 << 15) + 1, (1 << 17) + 3])
@pytest.mark.parametrize("dtype", [tg.float32, tg.float64], ids=["float32", "float64"])
def test_every_size_is_filled_with_finite_samples(n, dtype):
    z = tg.randn(n, dtype=dtype)
    assert z.shape == (n,) and z.dtype == dtype
    assert np.isfinite(z.numpy()).all()
    if n > 1000:  # no stale memory anywhere: the last elements (an odd count's half pair) vary too
        assert len(np.unique(z.numpy()[-600:])) == 600


@pytest.mark.threads
@pytest.mark.parametrize("dtype", [tg.float32, tg.float64], ids=["float32", "float64"])
def test_the_samples_follow_the_seed_not_the_thread_count(dtype, restore_threads):
    runs = []
    for threads in (1, 2, 3):
        _C.set_num_threads(threads)
        tg.manual_seed(7)
        runs.append(tg.randn(300, 301, dtype=dtype).numpy())
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])
    tg.manual_seed(8)
    assert not np.array_equal(runs[0], tg.randn(300, 301, dtype=dtype).numpy())


def test_generator_state_and_private_generators():
    tg.manual_seed(3)
    state = tg.get_rng_state()
    a = tg.randn(5000)
    b = tg.randn(5000)
    assert not np.array_equal(a.numpy(), b.numpy())  # the stream moves on
    tg.set_rng_state(state)
    np.testing.assert_array_equal(tg.randn(5000).numpy(), a.numpy())
    g1, g2 = tg.Generator().manual_seed(11), tg.Generator().manual_seed(11)
    x = tg.randn(4096, generator=g1)
    tg.randn(4096)  # the global stream does not touch g2's
    np.testing.assert_array_equal(tg.randn(4096, generator=g2).numpy(), x.numpy())


@pytest.mark.parametrize("dtype", [tg.float32, tg.float64], ids=["float32", "float64"])
def test_normal_and_normal_are_the_scaled_stream(dtype):
    """normal_(m, s), normal(m, s, size) and randn draw the same words: m + s z of randn's z."""
    tg.manual_seed(5)
    z = tg.randn(64, 65, dtype=dtype).numpy().astype(np.float64)
    tg.manual_seed(5)
    x = tg.empty(64, 65, dtype=dtype).normal_(2.0, 0.5).numpy()
    tg.manual_seed(5)
    y = tg.normal(2.0, 0.5, size=(64, 65), dtype=dtype).numpy()
    tol = 1e-6 if dtype == tg.float32 else 1e-14
    np.testing.assert_allclose(x, 2.0 + 0.5 * z, rtol=tol, atol=tol)
    np.testing.assert_array_equal(x, y)
    with pytest.raises(RuntimeError, match="normal_ expects std >= 0.0"):
        tg.empty(3).normal_(0.0, -1.0)


@pytest.mark.parametrize("dtype", [tg.float16, tg.bfloat16], ids=["float16", "bfloat16"])
def test_16_bit_samples_are_rounded_float32_samples(dtype):
    tg.manual_seed(9)
    z32 = tg.randn(5000).numpy()
    tg.manual_seed(9)
    z = tg.randn(5000, dtype=dtype)
    assert z.dtype == dtype
    np.testing.assert_array_equal(z.numpy().view(np.uint16), z32.astype(np.dtype(dtype)).view(np.uint16))


def test_tensor_mean_and_std_and_distributions_still_sample():
    m = tg.arange(4.0).reshape(4, 1).expand(4, 20000)
    x = tg.normal(m, tg.full((4, 20000), 0.5))
    np.testing.assert_allclose(x.numpy().mean(1), [0, 1, 2, 3], atol=0.02)
    tg.manual_seed(0)
    d = tg.distributions.Normal(tg.tensor([1.0, -1.0]), tg.tensor([2.0, 0.1]))
    s = d.rsample((100_000,)).numpy()
    np.testing.assert_allclose(s.mean(0), [1.0, -1.0], atol=0.03)
    np.testing.assert_allclose(s.std(0), [2.0, 0.1], rtol=0.02)


def test_bad_raw_words_name_the_op():
    out = np.empty(5, np.float32)
    with pytest.raises(ValueError, match="normal: 5 samples need 3 raw words, got 2"):
        _C.normal_from_bits(np.zeros(2, np.uint64), out)
    with pytest.raises(ValueError, match="normal: raw must be a C-contiguous uint64 array"):
        _C.normal_from_bits(np.zeros(3, np.int64), out)
