# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# lucidrains/vit-pytorch: vit.py as written, einops included (rearrange / repeat on tensors, the
# Rearrange layer that cuts patches), with simple_vit.py's 2-D sincos position embedding (einops
# meshgrid-free: torch.meshgrid(indexing="ij")) and a Reduce('b n d -> b d', 'mean') pool, trained
# a few steps with Adam. The one change: the layers come from einops.layers.<framework> (einops
# ships einops.layers.torch; tapegrad provides einops.layers.tapegrad), picked by the module's name.
import importlib

from einops import rearrange, reduce, repeat

_layers = importlib.import_module(f"einops.layers.{torch.__name__}")
Rearrange, Reduce = _layers.Rearrange, _layers.Reduce


def pair(t):
    return t if isinstance(t, tuple) else (t, t)


def posemb_sincos_2d(h, w, dim, temperature: int = 10000, dtype=torch.float32):
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    assert (dim % 4) == 0, "feature dimension must be multiple of 4 for sincos emb"
    omega = torch.arange(dim // 4) / (dim // 4 - 1)
    omega = 1.0 / (temperature ** omega)

    y = y.flatten()[:, None] * omega[None, :]
    x = x.flatten()[:, None] * omega[None, :]
    pe = torch.cat((x.sin(), x.cos(), y.sin(), y.cos()), dim=1)
    return pe.type(dtype)


class FeedForward(nn.Module):
    def __init__(self, dim, hidden_dim, dropout=0.):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, hidden_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, dim),
            nn.Dropout(dropout)
        )

    def forward(self, x):
        return self.net(x)


class Attention(nn.Module):
    def __init__(self, dim, heads=8, dim_head=64, dropout=0.):
        super().__init__()
        inner_dim = dim_head * heads
        project_out = not (heads == 1 and dim_head == dim)

        self.heads = heads
        self.scale = dim_head ** -0.5

        self.norm = nn.LayerNorm(dim)

        self.attend = nn.Softmax(dim=-1)
        self.dropout = nn.Dropout(dropout)

        self.to_qkv = nn.Linear(dim, inner_dim * 3, bias=False)

        self.to_out = nn.Sequential(
            nn.Linear(inner_dim, dim),
            nn.Dropout(dropout)
        ) if project_out else nn.Identity()

    def forward(self, x):
        x = self.norm(x)

        qkv = self.to_qkv(x).chunk(3, dim=-1)
        q, k, v = map(lambda t: rearrange(t, 'b n (h d) -> b h n d', h=self.heads), qkv)

        dots = torch.matmul(q, k.transpose(-1, -2)) * self.scale

        attn = self.attend(dots)
        attn = self.dropout(attn)

        out = torch.matmul(attn, v)
        out = rearrange(out, 'b h n d -> b n (h d)')
        return self.to_out(out)


class Transformer(nn.Module):
    def __init__(self, dim, depth, heads, dim_head, mlp_dim, dropout=0.):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList([])

        for _ in range(depth):
            self.layers.append(nn.ModuleList([
                Attention(dim, heads=heads, dim_head=dim_head, dropout=dropout),
                FeedForward(dim, mlp_dim, dropout=dropout)
            ]))

    def forward(self, x):
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x

        return self.norm(x)


class ViT(nn.Module):
    def __init__(self, *, image_size, patch_size, num_classes, dim, depth, heads, mlp_dim, pool='cls', channels=3,
                 dim_head=64, dropout=0., emb_dropout=0.):
        super().__init__()
        image_height, image_width = pair(image_size)
        patch_height, patch_width = pair(patch_size)

        assert image_height % patch_height == 0 and image_width % patch_width == 0, \
            'Image dimensions must be divisible by the patch size.'

        num_patches = (image_height // patch_height) * (image_width // patch_width)
        patch_dim = channels * patch_height * patch_width
        assert pool in {'cls', 'mean'}, 'pool type must be either cls (cls token) or mean (mean pooling)'

        self.to_patch_embedding = nn.Sequential(
            Rearrange('b c (h p1) (w p2) -> b (h w) (p1 p2 c)', p1=patch_height, p2=patch_width),
            nn.LayerNorm(patch_dim),
            nn.Linear(patch_dim, dim),
            nn.LayerNorm(dim),
        )

        self.pos_embedding = nn.Parameter(torch.randn(1, num_patches + 1, dim))
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.dropout = nn.Dropout(emb_dropout)

        self.transformer = Transformer(dim, depth, heads, dim_head, mlp_dim, dropout)

        self.pool = pool
        self.to_latent = nn.Identity()

        self.mlp_head = nn.Linear(dim, num_classes)

    def forward(self, img):
        x = self.to_patch_embedding(img)
        b, n, _ = x.shape

        cls_tokens = repeat(self.cls_token, '1 1 d -> b 1 d', b=b)
        x = torch.cat((cls_tokens, x), dim=1)
        x += self.pos_embedding[:, :(n + 1)]
        x = self.dropout(x)

        x = self.transformer(x)

        x = x.mean(dim=1) if self.pool == 'mean' else x[:, 0]

        x = self.to_latent(x)
        return self.mlp_head(x)


class SimpleViT(nn.Module):
    """simple_vit.py's: sincos positions, mean pooling (here through einops' Reduce layer)."""

    def __init__(self, *, image_size, patch_size, num_classes, dim, depth, heads, mlp_dim, channels=3, dim_head=64):
        super().__init__()
        image_height, image_width = pair(image_size)
        patch_height, patch_width = pair(patch_size)
        patch_dim = channels * patch_height * patch_width

        self.to_patch_embedding = nn.Sequential(
            Rearrange("b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch_height, p2=patch_width),
            nn.LayerNorm(patch_dim),
            nn.Linear(patch_dim, dim),
            nn.LayerNorm(dim),
        )

        self.pos_embedding = posemb_sincos_2d(
            h=image_height // patch_height,
            w=image_width // patch_width,
            dim=dim,
        )

        self.transformer = Transformer(dim, depth, heads, dim_head, mlp_dim)
        self.pool = Reduce("b n d -> b d", "mean")
        self.linear_head = nn.Linear(dim, num_classes)

    def forward(self, img):
        x = self.to_patch_embedding(img)
        x += self.pos_embedding.to(x.device, dtype=x.dtype)
        x = self.transformer(x)
        return self.linear_head(self.pool(x))


def init_from_numpy(model, seed):
    with torch.no_grad():
        for k, (n, p) in enumerate(model.named_parameters()):
            p.copy_(torch.from_numpy(np.random.default_rng(seed + k).normal(0, 0.2, tuple(p.shape)).astype(np.float32)))


rng = np.random.default_rng(5)
images = torch.from_numpy(rng.standard_normal((4, 6, 3, 8, 8)).astype(np.float32))
labels = torch.from_numpy(rng.integers(0, 3, (4, 6)))
for name, model in (("vit", ViT(image_size=8, patch_size=4, num_classes=3, dim=16, depth=2, heads=2, mlp_dim=32,
                                dim_head=8)),
                    ("simple", SimpleViT(image_size=8, patch_size=(2, 4), num_classes=3, dim=16, depth=1, heads=2,
                                         mlp_dim=24, dim_head=8))):
    init_from_numpy(model, 11)
    out[f"{name}_params"] = sum(p.numel() for p in model.parameters())
    out[f"{name}_patches"] = model.to_patch_embedding[0](images[0])
    opt = optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for step in range(4):
        loss = F.cross_entropy(model(images[step]), labels[step])
        opt.zero_grad()
        loss.backward()
        if step == 0:
            out[f"{name}_grads0"] = {n: p.grad.clone() for n, p in model.named_parameters()}
        opt.step()
        losses.append(loss.item())
    out[f"{name}_losses"] = losses
    model.eval()
    with torch.no_grad():
        out[f"{name}_logits"] = model(images[0])
out["pos"] = posemb_sincos_2d(2, 4, 8)
out["reduce_max"] = reduce(images[0], "b c (h h2) (w w2) -> b c h w", "max", h2=2, w2=2)
out["tolerance"] = (2e-4, 2e-5)  # four Adam steps through softmax attention in float32
