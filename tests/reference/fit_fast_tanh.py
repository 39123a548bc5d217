"""Fits the coefficients of dsm::math::fast_tanh (include/dsm/expr/math.hpp).

tanh(x) ~ x * P(x^2) / Q(x^2) on [0, C], P of degree 6 and Q of degree 3 in x^2, Q(0) = 1,
minimising the largest relative error: weighted linear least squares, each pass dividing by the
previous Q (Sanathanan-Koerner), then Lawson's reweighting towards the minimax solution. Past C,
tanh rounds to 1 in float, so the kernel clamps |x| to C.

Prints the coefficients and the error of a float evaluation with FMAs (as the C++ compiles).
Run: /usr/bin/python3 tests/reference/fit_fast_tanh.py   (needs numpy and mpmath)
"""
import mpmath as mp
import numpy as np

C = 9.1
N_P, N_Q = 7, 4  # coefficients of P and Q in u = (x / C)^2
mp.mp.dps = 30

x = np.sort(np.concatenate([np.linspace(1e-3, C, 4000), np.geomspace(1e-5, 1e-3, 50)]))
f = np.array([float(mp.tanh(mp.mpf(v)) / mp.mpf(v)) for v in x])  # tanh(x) / x, even in x
u = (x / C) ** 2  # scaled to [0, 1] for conditioning
polyval = np.polynomial.polynomial.polyval

q_prev, weight, best = np.ones_like(u), np.ones_like(u), None
for it in range(300):
    lhs = np.hstack([np.vander(u, N_P, increasing=True), -f[:, None] * np.vander(u, N_Q, increasing=True)[:, 1:]])
    scale = np.sqrt(weight) / (f * q_prev)  # residual P - f Q, divided by f Q: the relative error
    sol, *_ = np.linalg.lstsq(lhs * scale[:, None], f * scale, rcond=None)
    p, q = sol[:N_P], np.concatenate([[1.0], sol[N_P:]])
    q_now = polyval(u, q)
    err = polyval(u, p) / q_now / f - 1
    if q_now.min() > 0 and (best is None or np.abs(err).max() < best[0]):
        best = (np.abs(err).max(), p.copy(), q.copy())
    q_prev = q_now
    if it >= 20:
        weight = weight * np.abs(err) ** 0.3
        weight /= weight.mean()

worst, p, q = best
pz = [p[i] / C ** (2 * i) for i in range(N_P)]  # back to powers of z = x^2
qz = [q[i] / C ** (2 * i) for i in range(N_Q)]
print("largest relative error in double: %.3g" % worst)
print("P (z^0 .. z^6):", ", ".join("%.9e" % v for v in pz))
print("Q (z^0 .. z^3):", ", ".join("%.9e" % v for v in qz))


def fma(a, b, c):  # a * b + c rounded once to float (the product of two floats is exact in double)
    return np.float32(a.astype(np.float64) * np.float64(b) + np.float64(c))


xs = np.float32(np.linspace(0, C, 400001)[1:])
zz = xs * xs
num = np.full_like(zz, np.float32(pz[-1]))
for co in pz[-2::-1]:
    num = fma(num, zz, np.float32(co))
den = np.full_like(zz, np.float32(qz[-1]))
for co in qz[-2::-1]:
    den = fma(den, zz, np.float32(co))
y = np.float32(xs * num) / den
ref = np.tanh(xs.astype(np.float64))
ulp = np.abs(y.astype(np.float64) - ref) / np.spacing(np.float32(ref)).astype(np.float64)
print("float evaluation: largest error %.2f ulp (at x = %.4f), mean %.2f ulp" % (ulp.max(), xs[ulp.argmax()], ulp.mean()))
