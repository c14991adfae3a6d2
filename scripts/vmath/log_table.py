"""How csrc/kernels/vmath.h's float64 log table (vmath::log_table: 16 entries of 1/c and
log(c) for log, log2 and log10) was searched: each 1/c is a double near the centre of its
interval whose -log(1/c) rounds to a double with the smallest error, so that the sum of the
large terms is exact (musl's log does the same). Writes table16b.inc; needs mpmath
(pip install mpmath). The polynomial coefficients: scripts/vmath/log_poly.py.
"""
import mpmath as mp, struct, numpy as np
mp.mp.dps = 50
def d2b(x): return struct.unpack('<Q', struct.pack('<d', x))[0]
def b2d(u): return struct.unpack('<d', struct.pack('<Q', u))[0]
SH = 48; ONE = 0x3ff0000000000000; OFF = ONE - 21 * (1 << (SH - 1))
rng = np.random.default_rng(5)
res = {}
for base, lnb, grid in (("e", mp.mpf(1), 43), ("2", mp.log(2), 42), ("10", mp.log(10), 43)):
    lnb_ld = np.longdouble(str(lnb)) if base != "e" else np.longdouble(1)
    invcs, logcs, worst = [], [], 0
    for i in range(16):
        if i == 10:
            invcs.append(1.0); logcs.append(0.0); continue
        zl = b2d(OFF + i * (1 << SH)); zh = b2d(OFF + (i + 1) * (1 << SH))
        u0 = d2b(float(2 / (mp.mpf(zl) + mp.mpf(zh))))
        us = (u0 + rng.integers(-(1 << 38), 1 << 38, 1 << 21)).astype(np.uint64)
        inv = us.view(np.float64).astype(np.longdouble)
        L = -np.log(inv) / lnb_ld
        scaled = L * np.longdouble(2) ** grid
        dist = np.abs(scaled - np.round(scaled))
        order = np.argsort(dist)[:40]
        best = None
        for j in order:
            invd = float(us[j:j+1].view(np.float64)[0])
            Lm = -mp.log(mp.mpf(invd)) / lnb
            q = mp.nint(Lm * mp.mpf(2) ** grid) / mp.mpf(2) ** grid
            e = abs(Lm - q)
            if best is None or e < best[0]: best = (e, invd, float(q))
        e, invd, q = best
        assert mp.mpf(q) * 2**grid == mp.nint(mp.mpf(q) * 2**grid)
        worst = max(worst, e)
        invcs.append(invd); logcs.append(q)
    print(base, "worst |logc - exact| = 2^%.1f" % float(mp.log(worst, 2)))
    res[base] = (invcs, logcs)
with open("table16b.inc", "w") as fo:
    for base in ("e", "2", "10"):
        invcs, logcs = res[base]
        fo.write(f"// base {base}\n{{{{" + ", ".join(v.hex() for v in invcs) + "}},\n {{" + ", ".join(v.hex() for v in logcs) + "}}}},\n")
