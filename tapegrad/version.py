"""``torch.version``: tapegrad's version, and None for every GPU toolkit (it runs on the CPU only),
so ``torch.version.cuda is None`` tests in environment reports answer as on CPU PyTorch."""
__version__ = "0.1.0"
cuda = None
hip = None
rocm = None
xpu = None
debug = False
git_version = None  # an installed package does not know its commit
