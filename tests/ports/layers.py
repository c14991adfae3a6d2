# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
def det_init(m, scale=0.3):
    with torch.no_grad():
        for i, (n, p) in enumerate(sorted(m.named_parameters())):
            p.copy_(torch.from_numpy(np.random.default_rng(i).normal(0, scale, tuple(p.shape)).astype(np.float32)))
    return m
rng = np.random.default_rng(5)
x4 = torch.from_numpy(rng.standard_normal((2, 4, 6, 6)).astype(np.float32))
x3 = torch.from_numpy(rng.standard_normal((2, 4, 10)).astype(np.float32))
x2 = torch.from_numpy(rng.standard_normal((3, 8)).astype(np.float32))
acts = [nn.Hardswish(), nn.Hardsigmoid(), nn.Hardtanh(-0.5, 0.5), nn.Mish(), nn.SELU(), nn.CELU(0.5), nn.PReLU(),
        nn.PReLU(8), nn.Threshold(0.1, -1.0), nn.Hardshrink(0.3), nn.Softshrink(0.3), nn.Tanhshrink(), nn.GLU(),
        nn.Softmin(dim=1), nn.LogSigmoid(), nn.Softplus(beta=2), nn.ELU(0.3), nn.LeakyReLU(0.2), nn.SiLU(), nn.GELU(approximate="tanh"), nn.ReLU6(), nn.Softsign(), nn.Tanh(), nn.Sigmoid(), nn.LogSoftmax(dim=-1)]
for a in acts:
    det_init(a)
    xx = x2.clone().requires_grad_(True)
    y = a(xx)
    y.sum().backward()
    out["act_" + repr(a)] = (y, xx.grad)
out["softmax2d"] = nn.Softmax2d()(x4)
r = nn.RReLU(); r.eval(); out["rrelu_eval"] = r(x2)
layers = {
    "conv1d": nn.Conv1d(4, 6, 3, padding=1), "convT1d": nn.ConvTranspose1d(4, 3, 3, stride=2),
    "maxpool1d": nn.MaxPool1d(3, stride=2), "avgpool1d": nn.AvgPool1d(2), "aap1d": nn.AdaptiveAvgPool1d(4),
    "amp1d": nn.AdaptiveMaxPool1d(3), "inorm1d": nn.InstanceNorm1d(4, affine=True), "bn1d": nn.BatchNorm1d(4),
}
for k, l in layers.items():
    det_init(l)
    xx = x3.clone().requires_grad_(True)
    y = l(xx); y.sum().backward()
    out["l3_" + k] = (y, xx.grad, repr(l))
layers = {
    "zp": nn.ZeroPad2d((1, 0, 2, 1)), "cp": nn.ConstantPad2d(1, 0.5), "rp": nn.ReflectionPad2d(2), "repp": nn.ReplicationPad2d((1, 2, 0, 1)),
    "ps": nn.PixelShuffle(2), "pu": nn.PixelUnshuffle(2), "inorm2d": nn.InstanceNorm2d(4), "inorm2d_t": nn.InstanceNorm2d(4, track_running_stats=True),
    "gn": nn.GroupNorm(2, 4), "lrn": nn.LocalResponseNorm(3), "unfold": nn.Unfold(3, padding=1), "up": nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
    "upn": nn.UpsamplingNearest2d(scale_factor=2), "upb": nn.UpsamplingBilinear2d(size=(7, 9)), "convT2d": nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1),
    "drop2d_eval": nn.Dropout2d(0.5).eval(), "ln": nn.LayerNorm([6, 6]), "rms": nn.RMSNorm(6), "rms_eps": nn.RMSNorm([6, 6], eps=1e-3),
    "conv_reflect": nn.Conv2d(4, 2, 3, padding=1, padding_mode="reflect"), "conv_same": nn.Conv2d(4, 2, 4, padding="same"),
}
for k, l in layers.items():
    det_init(l)
    xx = x4.clone().requires_grad_(True)
    y = l(xx); y.sum().backward()
    out["l4_" + k] = (y, xx.grad, repr(l))
n2 = nn.InstanceNorm2d(4, track_running_stats=True); n2(x4)
out["inorm_running"] = (n2.running_mean, n2.running_var)
n2.eval(); out["inorm_eval"] = n2(x4)
bil = det_init(nn.Bilinear(8, 5, 3))
out["bilinear"] = bil(x2, x2[:, :5])
out["bil_repr"] = repr(bil)
fold = nn.Fold(output_size=(4, 5), kernel_size=(2, 2))
out["fold"] = fold(torch.arange(2 * 8 * 12, dtype=torch.float32).reshape(2, 8, 12))
# attention
mha = det_init(nn.MultiheadAttention(8, 2, batch_first=True))
q = torch.from_numpy(rng.standard_normal((2, 5, 8)).astype(np.float32))
kv = torch.from_numpy(rng.standard_normal((2, 7, 8)).astype(np.float32))
o, w = mha(q, kv, kv)
out["mha"] = (o, w)
kpm = torch.tensor([[False] * 7, [False] * 5 + [True] * 2])
o, w = mha(q, kv, kv, key_padding_mask=kpm, average_attn_weights=False)
out["mha_kpm"] = (o, w)
am = torch.triu(torch.ones(5, 7, dtype=torch.bool), diagonal=3)
o, w = mha(q, kv, kv, attn_mask=am)
out["mha_am"] = (o, w)
mha2 = det_init(nn.MultiheadAttention(8, 4))
o, w = mha2(q.transpose(0, 1), q.transpose(0, 1), q.transpose(0, 1), need_weights=False)
out["mha_seqfirst"] = o
out["mha_w_none"] = w is None
out["mha_names"] = [n for n, _ in mha.named_parameters()]
mha3 = det_init(nn.MultiheadAttention(8, 2, kdim=3, vdim=4))
o, w = mha3(q.transpose(0, 1), kv[..., :3].transpose(0, 1), kv[..., :4].transpose(0, 1))
out["mha_kdim"] = (o, w)
out["mha3_names"] = [n for n, _ in mha3.named_parameters()]
enc_layer = det_init(nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16, dropout=0.0, batch_first=True))
enc = nn.TransformerEncoder(enc_layer, num_layers=2)
det_init(enc)
out["enc_names"] = [n for n, _ in enc.named_parameters()]
mask = nn.Transformer.generate_square_subsequent_mask(5)
out["sq_mask"] = mask
y = enc(q, mask=mask)
out["enc"] = y
y = enc(q, src_key_padding_mask=torch.tensor([[False] * 5, [False] * 3 + [True] * 2]))
out["enc_kpm"] = y
enc_nf = det_init(nn.TransformerEncoderLayer(8, 2, 16, 0.0, activation="gelu", norm_first=True))
out["enc_nf"] = enc_nf(q.transpose(0, 1))
dec_layer = det_init(nn.TransformerDecoderLayer(d_model=8, nhead=2, dim_feedforward=16, dropout=0.0, batch_first=True))
out["dec"] = dec_layer(q, kv, tgt_mask=mask)
tr = det_init(nn.Transformer(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=16, dropout=0.0, batch_first=True))
out["tr"] = tr(kv, q, tgt_mask=mask)
out["tr_names"] = [n for n, _ in tr.named_parameters()]
sdpa = F.scaled_dot_product_attention(q.unsqueeze(1), kv.unsqueeze(1), kv.unsqueeze(1))
out["sdpa"] = sdpa
import copy
m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
best = copy.deepcopy(m.state_dict())
ema = copy.deepcopy(m)
with torch.no_grad():
    m[0].weight.add_(1.0)
out["deepcopy_indep"] = bool((best["0.weight"] != m[0].weight).all()) and bool((ema[0].weight != m[0].weight).all())
out["deepcopy_type"] = type(ema[0].weight).__name__
