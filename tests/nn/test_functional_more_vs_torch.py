"""The functional ops added for API coverage (grid_sample, affine_grid, ctc_loss, fractional and
Lp pooling, alpha dropout, multilabel margin, multi_head_attention_forward, ...) against PyTorch:
values and gradients in float64."""
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tapegrad as tg  # noqa: E402
import tapegrad.nn.functional as F  # noqa: E402

R = np.random.default_rng(0)


def _np(t):
    if t is None:
        return None
    return t.detach().numpy() if hasattr(t, "detach") else np.asarray(t)


def _run(fn, arrays, grad=(), kwargs_t=None, kwargs_g=None, reduce=lambda y: (y * y).sum(), tol=1e-10):
    """``fn(M, *tensors)`` in both libraries; compares outputs and the gradients of ``grad`` inputs."""
    res = {}
    for M in (torch, tg):
        ts = [M.tensor(a.copy(), requires_grad=(i in grad)) if isinstance(a, np.ndarray) and a.dtype.kind == "f"
              else (M.tensor(a.copy()) if isinstance(a, np.ndarray) else a) for i, a in enumerate(arrays)]
        out = fn(M, *ts)
        outs = out if isinstance(out, tuple) else (out,)
        if grad:
            reduce(outs[0]).backward()
        res[M] = [_np(o) for o in outs if o is not None] + [_np(ts[i].grad) for i in grad]
    for a, b in zip(res[torch], res[tg]):
        if a is None or b is None:
            assert a is None and b is None
        else:
            np.testing.assert_allclose(b, a, rtol=tol, atol=tol)
    return res[tg]


@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_grid_sample_matches_torch(mode, padding_mode, align_corners):
    x = R.standard_normal((2, 3, 5, 4))
    grid = R.uniform(-1.3, 1.3, (2, 3, 6, 2))
    grad = (0, 1) if mode != "nearest" else (0,)
    _run(lambda M, a, g: M.nn.functional.grid_sample(a, g, mode, padding_mode, align_corners), [x, grid], grad)



@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_grid_sample_on_pixel_centres_and_edges_matches_torch(mode, padding_mode, align_corners):
    # an affine_grid with align_corners=True puts points exactly on the edge pixels (the spatial
    # transformer tutorial's identity init): PyTorch's grid gradient is 0 on a clipping limit, and a
    # nearest sample is in the grid's graph with a zero gradient
    x = R.standard_normal((1, 2, 5, 4))
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 3), np.array([-1.0, -0.5, 0.0, 1.0, 1.5]), indexing="xy"), -1)
    _run(lambda M, a, g: M.nn.functional.grid_sample(a, g, mode, padding_mode, align_corners), [x, grid[None]],
         (0, 1))

@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_grid_sample_3d_and_affine_grid(padding_mode):
    x = R.standard_normal((2, 2, 3, 4, 5))
    grid = R.uniform(-1.2, 1.2, (2, 2, 3, 4, 3))
    _run(lambda M, a, g: M.nn.functional.grid_sample(a, g, "bilinear", padding_mode, False), [x, grid], (0, 1))
    for size, theta_shape in (((2, 3, 4, 5), (2, 2, 3)), ((2, 1, 3, 4, 2), (2, 3, 4))):
        theta = R.standard_normal(theta_shape)
        for ac in (False, True):
            _run(lambda M, t: M.nn.functional.affine_grid(t, size, align_corners=ac), [theta], (0,))
    with pytest.raises(ValueError, match="Nx2x3"):
        F.affine_grid(tg.zeros(1, 3, 3), (1, 1, 2, 2), align_corners=False)
    with pytest.raises(ValueError, match="mode"):
        F.grid_sample(tg.zeros(1, 1, 2, 2), tg.zeros(1, 1, 1, 2), mode="area")
    with pytest.warns(UserWarning, match="align_corners"):
        F.affine_grid(tg.zeros(1, 2, 3), (1, 1, 2, 2))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("concat", [False, True])
def test_ctc_loss_matches_torch(reduction, concat):
    T, N, C = 12, 3, 5
    logits = R.standard_normal((T, N, C))
    tl = np.array([4, 0, 3])
    il = np.array([12, 5, 9])
    padded = R.integers(1, C, (N, 4))
    padded[2, :3] = [2, 2, 3]  # a repeated label needs a blank between its copies
    targets = np.concatenate([padded[b, :tl[b]] for b in range(N)]) if concat else padded
    # the gradient is compared through log_softmax: PyTorch's own log_probs gradient is the logits'
    _run(lambda M, z, t: M.nn.functional.ctc_loss(M.nn.functional.log_softmax(z, 2), t, M.tensor(il), M.tensor(tl),
                                                  reduction=reduction),
         [logits, targets], (0,), reduce=lambda y: (y * M_weights(y)).sum())


def M_weights(y):
    return 1.0 + 0 * y if y.ndim == 0 else (1.0 + 0.5 * (y * 0 + 1).cumsum(0))


def test_ctc_loss_impossible_unbatched_and_errors():
    lp = tg.tensor(R.standard_normal((2, 4))).log_softmax(1)
    loss = F.ctc_loss(lp, tg.tensor([1, 1]), tg.tensor(2), tg.tensor(2), reduction="sum")  # needs 3 steps
    assert float(loss) == np.inf
    z = tg.tensor(R.standard_normal((2, 4)), requires_grad=True)
    loss = F.ctc_loss(z.log_softmax(1), tg.tensor([1, 1]), tg.tensor(2), tg.tensor(2), reduction="sum",
                      zero_infinity=True)
    loss.backward()
    assert float(loss) == 0 and np.isfinite(_np(z.grad)).all()
    tz = torch.tensor(R.standard_normal((6, 4)))
    args = (torch.tensor([1, 2, 1]), torch.tensor(6), torch.tensor(3))
    want = torch.nn.functional.ctc_loss(tz.log_softmax(1), *args)
    got = F.ctc_loss(tg.tensor(tz.numpy()).log_softmax(1), *(tg.tensor(a.numpy()) for a in args))
    np.testing.assert_allclose(float(got), float(want), rtol=1e-10)
    with pytest.raises(RuntimeError, match="input_lengths"):
        F.ctc_loss(lp, tg.tensor([1]), tg.tensor(3), tg.tensor(1))


@pytest.mark.parametrize("kernel,out", [((2, 2), (3, 3)), (3, (2, 4)), ((2, 3), 1)])
def test_fractional_max_pool2d_matches_torch(kernel, out):
    x = R.standard_normal((2, 3, 7, 8))
    s = R.random((2, 3, 2))
    _run(lambda M, a, smp: M.nn.functional.fractional_max_pool2d(a, kernel, output_size=out, return_indices=True,
                                                                 _random_samples=smp), [x, s], (0,))
    _run(lambda M, a, smp: M.nn.FractionalMaxPool2d(kernel, output_ratio=0.5, _random_samples=smp)(a[0]),
         [x, s[:1]], (0,))


def test_lp_pool_and_unpool_match_torch():
    x = np.abs(R.standard_normal((2, 3, 9, 8))) + 0.1
    _run(lambda M, a: M.nn.functional.lp_pool2d(a, 2, (3, 2), stride=2), [x], (0,))
    _run(lambda M, a: M.nn.LPPool2d(3, 2, ceil_mode=True)(a), [x], (0,))
    _run(lambda M, a: M.nn.LPPool1d(1.5, 3, stride=2)(a[:, :, 0]), [x], (0,))

    def unpool(M, a):
        y, i = M.nn.functional.max_pool1d_with_indices(a, 2)
        return M.nn.MaxUnpool1d(2)(y, i, output_size=(2, 3, 9))
    _run(unpool, [x[:, :, :, 0]], (0,))
    _run(lambda M, a: M.nn.functional.adaptive_max_pool2d_with_indices(a, 3), [x], (0,))
    _run(lambda M, a: M.nn.functional.max_pool2d_with_indices(a, 3, 2), [x], (0,))


def test_multilabel_margin_and_triplet_distance_match_torch():
    x = R.standard_normal((4, 5))
    y = np.array([[3, 0, -1, 1, 2], [1, 2, 4, 0, 3], [-1, 1, 2, 3, 4], [4, 4, -1, 0, 0]])
    for red in ("mean", "sum", "none"):
        _run(lambda M, a, t: M.nn.MultiLabelMarginLoss(reduction=red)(a, t), [x, y], (0,))
    _run(lambda M, a, t: M.nn.functional.multilabel_margin_loss(a[0], t[0]), [x, y], (0,))
    a, p, n = (R.standard_normal((4, 3)) for _ in range(3))
    for swap in (False, True):
        _run(lambda M, *t: M.nn.TripletMarginWithDistanceLoss(swap=swap, margin=0.7)(*t), [a, p, n], (0, 1, 2))
        _run(lambda M, *t: M.nn.functional.triplet_margin_with_distance_loss(
            *t, distance_function=lambda u, v: 1 - M.nn.functional.cosine_similarity(u, v), swap=swap,
            reduction="none"), [a, p, n], (0, 1, 2))


@pytest.mark.parametrize("feature", [False, True])
def test_alpha_dropout_keeps_moments_and_eval_is_identity(feature):
    x = tg.randn(400, 50, 2, dtype=tg.float64)
    fn = F.feature_alpha_dropout if feature else F.alpha_dropout
    assert fn(x, 0.3, training=False) is x
    y = _np(fn(x, 0.3, training=True))
    assert abs(y.mean()) < 0.05 and abs(y.std() - 1) < 0.05
    dropped = np.isclose(y, -1.7580993408473766 * (1 / np.sqrt((1.7580993408473766 ** 2 * 0.3 + 1) * 0.7)) * 0.7)
    assert 0.25 < dropped.mean() < 0.35
    if feature:
        assert (dropped.all(-1) | ~dropped.any(-1)).all()  # whole channels
    m = tg.nn.FeatureAlphaDropout(0.3) if feature else tg.nn.AlphaDropout(0.3)
    assert m.eval()(x) is x
    with pytest.raises(ValueError, match="between 0 and 1"):
        fn(x, 1.5)


def test_inplace_activations_and_small_aliases():
    x = R.standard_normal((3, 4))
    for name in ("celu_", "selu_"):
        t, g = torch.tensor(x.copy()), tg.tensor(x.copy())
        getattr(torch.nn.functional, name)(t)
        assert getattr(F, name)(g) is g
        np.testing.assert_allclose(_np(g), _np(t), rtol=1e-12)
    g = tg.tensor(x.copy())
    F.rrelu_(g)
    np.testing.assert_allclose(_np(g), _np(torch.nn.functional.rrelu(torch.tensor(x))), rtol=1e-12)
    img = R.standard_normal((1, 2, 3, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _run(lambda M, a: M.nn.functional.upsample_bilinear(a, scale_factor=2), [img], (0,))
        _run(lambda M, a: M.nn.functional.upsample_nearest(a, size=5), [img], (0,))
    _run(lambda M, a: M.nn.functional.native_channel_shuffle(a, 2), [R.standard_normal((1, 4, 2, 2))])
    _run(lambda M, a, w, b: M.conv_tbc(a, w, b, 1) if M is torch else F.conv_tbc(a, w, b, 1),
         [R.standard_normal((7, 2, 3)), R.standard_normal((3, 3, 4)), R.standard_normal(4)], (0, 1, 2))


@pytest.mark.parametrize("opts", [dict(), dict(bias_kv=True), dict(zero_attn=True), dict(bias_kv=True, zero_attn=True),
                                  dict(separate=True, masks=True), dict(masks=True, unbatched=True),
                                  dict(masks=True, need_weights=False)])
def test_multi_head_attention_forward_matches_torch(opts):
    L, S, N, E, H = 3, 4, 2, 6, 2
    unb = opts.get("unbatched")
    q = R.standard_normal((L, E) if unb else (L, N, E))
    k = R.standard_normal((S, E) if unb else (S, N, E))
    v = R.standard_normal((S, E) if unb else (S, N, E))
    w_in, b_in = R.standard_normal((3 * E, E)), R.standard_normal(3 * E)
    w_out, b_out = R.standard_normal((E, E)), R.standard_normal(E)
    bk, bv = R.standard_normal((1, 1, E)), R.standard_normal((1, 1, E))
    am = R.random((L, S)) < 0.3
    am[:, 0] = False
    kpm = np.zeros((N, S), bool) if not unb else np.zeros(S, bool)
    kpm[..., -1] = True

    def fn(M, q, k, v, w_in, b_in, w_out, b_out, bk, bv):
        extra = {}
        if opts.get("separate"):
            extra = dict(use_separate_proj_weight=True, q_proj_weight=w_in[:E], k_proj_weight=w_in[E:2 * E],
                         v_proj_weight=w_in[2 * E:])
        if opts.get("masks"):
            extra.update(attn_mask=M.tensor(am), key_padding_mask=M.tensor(kpm))
        return M.nn.functional.multi_head_attention_forward(
            q, k, v, E, H, w_in, b_in, bk if opts.get("bias_kv") else None, bv if opts.get("bias_kv") else None,
            bool(opts.get("zero_attn")), 0.0, w_out, b_out, need_weights=opts.get("need_weights", True),
            average_attn_weights=False, **extra)
    _run(fn, [q, k, v, w_in, b_in, w_out, b_out, bk, bv], (0, 1, 2, 3, 4, 5, 6, 7, 8))


def test_cross_map_lrn2d_forward_matches_torch_and_gradient_is_exact():
    x = R.standard_normal((2, 7, 3, 2))
    _run(lambda M, a: M.nn.CrossMapLRN2d(5, alpha=0.3, beta=0.75, k=2.0)(a), [x])
    _run(lambda M, a: M.nn.CrossMapLRN2d(3)(a), [x[:, :2]])
    m = tg.nn.CrossMapLRN2d(5, alpha=0.3, beta=0.75, k=2.0)
    assert tg.autograd.gradcheck(lambda a: m(a), (tg.tensor(x[:1, :, :1, :1], requires_grad=True),))
    with pytest.raises(ValueError, match="4D"):
        m(tg.zeros(2, 3))


def test_deprecated_container_and_nllloss2d():
    with pytest.warns(UserWarning, match="Container is deprecated"):
        c = tg.nn.Container(a=tg.nn.Linear(2, 3))
    assert [n for n, _ in c.named_children()] == ["a"]
    x = R.standard_normal((2, 3, 4, 4))
    y = R.integers(0, 3, (2, 4, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _run(lambda M, a, t: M.nn.NLLLoss2d()(a, t), [x, y], (0,))


@pytest.mark.parametrize("mode,antialias", [("bicubic", False), ("bicubic", True), ("bilinear", True)])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size,scale", [((4, 3), None), ((13, 5), None), (None, (0.4, 1.7)), ((9, 7), None)])
def test_interpolate_bicubic_and_antialias_match_torch(mode, antialias, align_corners, size, scale):
    x = R.standard_normal((2, 3, 9, 7))
    _run(lambda M, a: M.nn.functional.interpolate(a, size=size, scale_factor=scale, mode=mode,
                                                  align_corners=align_corners, antialias=antialias), [x], (0,))


def test_interpolate_area_matches_torch():
    x = R.standard_normal((2, 3, 9, 7))
    _run(lambda M, a: M.nn.functional.interpolate(a, size=(4, 3), mode="area"), [x], (0,))
    _run(lambda M, a: M.nn.functional.interpolate(a[:, :, 0], scale_factor=0.5, mode="area"), [x], (0,))
    with pytest.raises(ValueError, match="Anti-alias"):
        F.interpolate(tg.zeros(1, 1, 4), size=2, mode="linear", antialias=True)


@pytest.mark.parametrize("bias_kv,zero_attn,batch_first,kdim", [(True, False, False, None), (False, True, True, None),
                                                                (True, True, True, 5)])
def test_multihead_attention_bias_kv_and_zero_attn_match_torch(bias_kv, zero_attn, batch_first, kdim):
    E, H = 6, 3
    tm = torch.nn.MultiheadAttention(E, H, add_bias_kv=bias_kv, add_zero_attn=zero_attn, batch_first=batch_first,
                                     kdim=kdim, vdim=kdim).double()
    gm = tg.nn.MultiheadAttention(E, H, add_bias_kv=bias_kv, add_zero_attn=zero_attn, batch_first=batch_first,
                                  kdim=kdim, vdim=kdim).double()
    assert sorted(gm.state_dict()) == sorted(tm.state_dict())
    gm.load_state_dict({k: tg.tensor(v.detach().numpy().copy()) for k, v in tm.state_dict().items()})
    q = R.standard_normal((2, 3, E) if batch_first else (3, 2, E))
    kv = R.standard_normal((2, 4, kdim or E) if batch_first else (4, 2, kdim or E))
    kpm = np.zeros((2, 4), bool)
    kpm[:, -1] = True

    def fn(M, m, q, kv):
        return m(q, kv, kv, key_padding_mask=M.tensor(kpm))
    res = [fn(torch, tm, torch.tensor(q), torch.tensor(kv)), fn(tg, gm, tg.tensor(q), tg.tensor(kv))]
    for a, b in zip(*res):
        np.testing.assert_allclose(_np(b), _np(a), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", ["plain", "bias_kdim", "probs", "unbatched", "module"])
def test_linear_cross_entropy_matches_torch(case):
    x = R.standard_normal((4, 5))
    if case == "plain":
        w, t = R.standard_normal((7, 5)), R.integers(0, 7, 4)
        _run(lambda M, a, ww, tt: M.nn.functional.linear_cross_entropy(a, ww, tt, label_smoothing=0.1), [x, w, t],
             (0, 1))
    elif case == "bias_kdim":
        w, b, t = R.standard_normal((3, 2, 5)), R.standard_normal((3, 2)), R.integers(0, 3, (4, 2))
        _run(lambda M, a, ww, bb, tt: M.nn.functional.linear_cross_entropy(a, ww, tt, linear_bias=bb,
                                                                           reduction="none"), [x, w, b, t], (0, 1, 2))
    elif case == "probs":
        w, t = R.standard_normal((3, 5)), R.dirichlet(np.ones(3), 4)
        _run(lambda M, a, ww, tt: M.nn.functional.linear_cross_entropy(a, ww, tt), [x, w, t], (0, 1))
    elif case == "unbatched":
        w = R.standard_normal((3, 5))
        _run(lambda M, a, ww, tt: M.nn.functional.linear_cross_entropy(a[0], ww, tt), [x, w, np.array(2)], (0, 1))
    else:
        tm = torch.nn.LinearCrossEntropyLoss(5, 3, out_features=(2,), bias=True).double()
        gm = tg.nn.LinearCrossEntropyLoss(5, 3, out_features=(2,), bias=True, dtype=tg.float64)
        assert sorted(gm.state_dict()) == sorted(tm.state_dict())
        gm.load_state_dict({k: tg.tensor(v.detach().numpy().copy()) for k, v in tm.state_dict().items()})
        t = R.integers(0, 3, (4, 2))
        _run(lambda M, a, tt: (tm if M is torch else gm)(a, tt), [x, t], (0,))
        assert gm.options is None and tg.nn.LinearCrossEntropyOptions(batch_chunk_size=2).batch_chunk_size == 2


def test_cosine_similarity_broadcasts_and_normalises_each_input_first():
    # each input divided by max(||x||, eps) before the dot product, as PyTorch: vectors whose norms
    # are above eps but whose product is below it keep their true cosine
    a = np.array([[1e-5, 0.0], [3.0, 4.0], [0.0, 0.0]])
    b = np.array([[1e-5, 1e-5], [1.0, 0.0], [1.0, 1.0]])
    _run(lambda M, x, y: M.nn.functional.cosine_similarity(x, y), [a, b], (0, 1), reduce=lambda y: y.sum(), tol=1e-8)
    _run(lambda M, x, y: M.nn.functional.cosine_similarity(x, y, dim=-1), [R.standard_normal(3),
                                                                          R.standard_normal((2, 3))], (0, 1))
    _run(lambda M, x, y: M.nn.functional.cosine_similarity(x, y, dim=0), [np.array([1, 2]), np.array([2.0, 2.0])])
    with pytest.raises(RuntimeError, match="floating point"):
        F.cosine_similarity(tg.tensor([1, 2]), tg.tensor([2, 2]), dim=0)


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div", "soft_margin_loss",
                                  "binary_cross_entropy_with_logits", "multilabel_soft_margin_loss", "gaussian_nll_loss"])
@pytest.mark.parametrize("dts", [("float32", "float64"), ("float64", "float32"), ("int64", "float32")])
def test_losses_promote_input_and_target_as_torch(name, dts):
    # a float32 output against a float64 target is float64 for the regression losses (the target
    # used to be cast down to the input's dtype); huber and soft margin keep the input's dtype
    res = {}
    for M in (torch, tg):
        x = M.tensor([[0.2, 0.7], [0.4, 0.1]]).to(getattr(M, dts[0]))
        y = M.tensor([[0.5, 1.0], [0.0, 1.0]]).to(getattr(M, dts[1]))
        fn = getattr(M.nn.functional, name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                res[M] = fn(x, y, M.ones(2, 2)) if name == "gaussian_nll_loss" else fn(x, y)
            except (RuntimeError, NotImplementedError) as e:
                res[M] = e
    if isinstance(res[torch], Exception):
        assert isinstance(res[tg], Exception)
        return
    assert str(res[tg].dtype).split(".")[-1] == str(res[torch].dtype).split(".")[-1]
    np.testing.assert_allclose(_np(res[tg]), _np(res[torch]), rtol=1e-6)


def test_kl_div_is_nan_where_the_target_is_negative():
    t = np.array([-2.5, 0.5, 0.0, 0.2])
    _run(lambda M, x, y: M.nn.functional.kl_div(x, y, reduction="none"), [np.array([-1.5, -2.5, -1.0, 0.3]), t], (0,),
         reduce=lambda y: y.sum())


@pytest.mark.parametrize("call", [
    lambda M: M.nn.functional.glu(M.tensor(1.0)), lambda M: M.nn.functional.softshrink(M.ones(2), -0.5),
    lambda M: M.nn.functional.layer_norm(M.ones(2), ()), lambda M: M.nn.functional.group_norm(M.ones(1, 4, 1), 4),
    lambda M: M.nn.functional.instance_norm(M.ones(2, 4, 1))], ids=lambda c: "")
def test_functional_errors_torch_raises(call):
    with pytest.raises(Exception) as want:
        call(torch)
    with pytest.raises(type(want.value)):
        call(tg)


def test_nll_and_cross_entropy_with_every_target_ignored_are_nan_with_zero_gradient():
    x = np.array([[0.0, -3.0], [3.0, 2.5]])
    t = np.array([-100, -100])
    for fn in (lambda M, x, t: M.nn.functional.nll_loss(x, t), lambda M, x, t: M.nn.functional.cross_entropy(x, t),
               lambda M, x, t: M.nn.functional.cross_entropy(x, t, label_smoothing=0.1)):
        _run(fn, [x, t], (0,), reduce=lambda y: y)


def test_linear_with_no_input_features():
    for shapes in [((1, 3, 0), (2, 0), (2,)), ((1, 3, 0), (0, 0), (0,))]:
        _run(lambda M, x, w, b: M.nn.functional.linear(x, w, b), [np.ones(s) for s in shapes], (0, 1, 2))


@pytest.mark.parametrize("log_input", [True, False])
def test_poisson_nll_loss_full_is_differentiable_in_the_target_and_keeps_integer_targets_exact(log_input):
    # Stirling's term (full=True) was a constant cast to the input's dtype: no gradient for the
    # target, and truncated to integers for an int64 input (op_db's poisson_nll_loss samples)
    x = R.uniform(0.2, 3.0, 7)
    y = np.array([0.25, 0.5, 1.0, 1.5, 2.0, 4.0, 7.5])  # (PyTorch's target gradient at 0 is NaN)
    _run(lambda M, a, b: M.nn.functional.poisson_nll_loss(a, b, log_input, True, reduction="none"), [x, y], (0, 1))
    _run(lambda M, a, b: M.nn.functional.poisson_nll_loss(a, b, log_input, True), [x, y], (0, 1))
    xi, yi = np.array([-3, 0, 1, 2, 5]), np.array([3, 1, 4, 2, 0])
    _run(lambda M, a, b: M.nn.functional.poisson_nll_loss(a, b, True, True, reduction="none"), [xi, yi], tol=1e-6)


def test_group_norm_of_an_empty_batch():
    # op_db's (0, 6, 3) sample raised: reshape(0, groups, -1) is ambiguous
    _run(lambda M, x, w, b: M.nn.functional.group_norm(x, 2, w, b), [np.ones((0, 6, 3)), R.standard_normal(6),
                                                                      R.standard_normal(6)], (0, 1, 2),
         reduce=lambda y: y.sum())


def test_multi_margin_loss_of_a_zero_d_input():
    # op_db's 0-d sample raised 'expected 1-D or 2-D input'
    for red in ("none", "mean"):
        _run(lambda M, x: M.nn.functional.multi_margin_loss(x, M.tensor(0), reduction=red), [np.array(-3.7)], (0,),
             reduce=lambda y: y.sum())
        _run(lambda M, x: M.nn.functional.multi_margin_loss(x, M.tensor(1), p=2, reduction=red), [np.array([-3.7, 1.0])],
             (0,), reduce=lambda y: y.sum())
