"""How the polynomial coefficients of csrc/kernels/vmath.h's float64 log (vmath::kLogPoly,
for log, log2 and log10 on r = z/c - 1 over the table's intervals) were fitted, with the
table's first search. Needs mpmath (pip install mpmath); the table itself:
scripts/vmath/log_table.py.
"""
import mpmath as mp, struct, random
mp.mp.dps = 50
def d2b(x): return struct.unpack('<Q', struct.pack('<d', x))[0]
def b2d(u): return struct.unpack('<d', struct.pack('<Q', u))[0]
SH = 48
ONE = 0x3ff0000000000000
OFF = ONE - 21 * (1 << (SH - 1))
print("OFF", hex(OFF), b2d(OFF))
random.seed(7)
def ulp_err(L):
    if L == 0: return mp.mpf(0)
    e = mp.floor(mp.log(abs(L), 2))
    return abs(L - mp.mpf(float(L))) / mp.mpf(2) ** (e - 52)
out = {}
rmax = 0
for base, lnb in (("e", mp.mpf(1)), ("2", mp.log(2)), ("10", mp.log(10))):
    invcs, logcs, worst = [], [], 0
    for i in range(16):
        zl = b2d(OFF + i * (1 << SH)); zh = b2d(OFF + (i + 1) * (1 << SH))
        if i == 10:
            invcs.append(1.0); logcs.append(0.0); rmax = max(rmax, zh - 1, 1 - zl); continue
        c = (mp.mpf(zl) + mp.mpf(zh)) / 2
        u0 = d2b(float(1 / c))
        best = None
        for t in range(6000):
            inv = b2d(u0 + (random.randint(-(1 << 36), 1 << 36) if t else 0))
            L = -mp.log(mp.mpf(inv)) / lnb
            err = ulp_err(L)
            if best is None or err < best[0]: best = (err, inv, float(L))
        err, inv, L = best
        worst = max(worst, err)
        invcs.append(inv); logcs.append(L)
        for z in (zl, zh): rmax = max(rmax, abs(mp.mpf(z) * inv - 1))
    print(base, "worst logc err (ulp)", float(worst))
    out[base] = (invcs, logcs)
print("rmax", float(rmax), float(mp.log(rmax, 2)))
R = rmax * mp.mpf(1.01)
f = lambda r: (mp.log1p(r) - r) / r**2 if abs(r) > mp.mpf(10)**-25 else mp.mpf(-0.5) + r/3 - r*r/4
for deg in (7, 8, 9):
    nodes = [R * mp.cos(mp.pi * (k + 0.5) / (deg + 1)) for k in range(deg + 1)]
    A = mp.matrix([[n**j for j in range(deg + 1)] for n in nodes]); b = mp.matrix([f(n) for n in nodes])
    coef = mp.lu_solve(A, b)
    cs = [float(c) for c in coef]
    worst = max(abs(sum(mp.mpf(c) * x**j for j, c in enumerate(cs)) - f(x)) for x in mp.linspace(-R, R, 3001))
    print(deg, "abs err P 2^%.1f" % float(mp.log(worst, 2)), "y abs 2^%.1f" % float(mp.log(worst * R * R, 2)), "rel near 1: 2^%.1f" % float(mp.log(worst*R,2)))
    if deg == 8: P8 = coef
with open("table16.inc", "w") as fo:
    for base in ("e", "2", "10"):
        invcs, logcs = out[base]
        fo.write(f"// base {base}\n  {{" + ", ".join(v.hex() for v in invcs) + "},\n  {" + ", ".join(v.hex() for v in logcs) + "},\n")
    for base, lnb in (("e", mp.mpf(1)), ("2", mp.log(2)), ("10", mp.log(10))):
        fo.write(f"// P base {base}\n" + ", ".join(float(c / lnb).hex() for c in P8) + "\n")
    for base, lnb in (("2", mp.log(2)), ("10", mp.log(10))):
        inv = 1 / lnb; hi = float(inv); lo = float(inv - mp.mpf(hi))
        fo.write(f"// 1/ln{base} hi lo: {hi.hex()} {lo.hex()}\n")
    l = mp.log10(2); hi = float(l); hi = b2d(d2b(hi) & ~((1 << 12) - 1)); lo = float(l - mp.mpf(hi))
    fo.write(f"// log10(2) hi (12 zero bits) lo: {hi.hex()} {lo.hex()}\n")
    l = mp.log(2); hi = b2d(d2b(float(l)) & ~((1 << 12) - 1)); lo = float(l - mp.mpf(hi))
    fo.write(f"// ln2 hi lo: {hi.hex()} {lo.hex()}\n")
