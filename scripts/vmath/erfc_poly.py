"""How the polynomials of csrc/kernels/vmath.h's float64 erfc (vmath::log_erfcx_below3 and
log_erfcx_3to6) were fitted: L(a) = log(e^(a^2) erfc(a)) on [0, 3] and [3, 6] as polynomials in
v = a - 1.5 and v = a - 4.5, by Chebyshev interpolation in 50-digit arithmetic, then monomials
rounded to doubles. Prints each degree's largest error (absolute: erfc = exp(-a^2 + L) takes it as
a relative error) and the coefficients in the four chains of v^4 that the kernel evaluates.
Needs mpmath (pip install mpmath).
"""
import mpmath as mp

mp.mp.dps = 50


def L(a):
    return mp.log(mp.erfc(a)) + a * a


def K(a):
    return L(a) / a


def fit(lo, hi, deg, f=L, grid=30):
    mid, half = (mp.mpf(lo) + hi) / 2, (mp.mpf(hi) - lo) / 2
    nodes = [half * mp.cos(mp.pi * (k + mp.mpf(0.5)) / (deg + 1)) for k in range(deg + 1)]
    A = mp.matrix([[n ** j for j in range(deg + 1)] for n in nodes])
    coef = mp.lu_solve(A, mp.matrix([f(mid + n) for n in nodes]))
    # the constant term in two parts: c0h, a multiple of 2^-30 (added exactly to -a^2 by the kernel's
    # exp, vmath::exp_d3_mid), and the rest rounded
    c0h = float(mp.nint(coef[0] * 2 ** grid) / 2 ** grid)
    cs = [float(coef[0] - c0h)] + [float(c) for c in coef[1:]]
    worst = max(abs(c0h + sum(mp.mpf(c) * v ** j for j, c in enumerate(cs)) - f(mid + v)) * (mid + v if f is K else 1) for v in mp.linspace(-half + mp.mpf(10) ** -30, half, 1201))
    return c0h, cs, worst


# the kernel's degrees: 23 and 17 (24 / 25 and 18 / 19 are no better in doubles). Below 3 the
# polynomial is K = L / a (erfc = exp(-a^2 + a K), as accurate near 0 as erfc's own ulp), its
# constant's leading part a multiple of 2^-20 (so that z times it is exact for erfc's z of 21 bits);
# the error printed is a times K's.
for lo, hi, degs, chosen, f, grid in ((0, 3, (22, 23, 24), 23, K, 20), (3, 6, (15, 16, 17, 18, 19), 17, L, 30)):
    for deg in degs:
        c0h, cs, worst = fit(lo, hi, deg, f, grid)
        print(f"[{lo}, {hi}] degree {deg}: largest error {float(worst):.2e}")
    c0h, cs, worst = fit(lo, hi, chosen, f, grid)
    print(f"degree {chosen}: c0h {c0h!r}; chains (v^4 steps, highest first):")
    for j in range(4):
        print(f"  p{j}:", ", ".join(repr(c) for c in cs[j::4][::-1]))

# exp_d3_mid's polynomial: exp(r) = 1 + r + r^2 G(r) on |r| <= 0.35, G of degree 9
g = lambda r: (mp.exp(r) - 1 - r) / r ** 2
H, deg = mp.mpf(0.35), 9
nodes = [H * mp.cos(mp.pi * (k + mp.mpf(0.5)) / (deg + 1)) for k in range(deg + 1)]
A = mp.matrix([[n ** j for j in range(deg + 1)] for n in nodes])
cs = [float(c) for c in mp.lu_solve(A, mp.matrix([g(n) for n in nodes]))]
worst = max(abs(sum(mp.mpf(c) * r ** j for j, c in enumerate(cs)) - g(r)) * r * r / mp.exp(r)
            for r in mp.linspace(-H, H, 2000))
print(f"exp: G of degree {deg}, relative error {float(worst):.2e}:", ", ".join(repr(c) for c in cs))
