#!/usr/bin/env python3
"""The CPU softplus's table (native/cpu/vecmath.h, kSoftplusPoly): g(t) = log1p(exp(-t)) on eight
intervals of width 2 over [0, 16), degree 8 in u = t - centre, least squares on Chebyshev nodes
(near minimax). Prints the table and the worst error of its float evaluation (with FMAs, as the
kernels run it) against g in double: absolute anywhere, and in ulp where g > 1/4.

    python3 bench/fit_softplus.py
"""
import numpy as np

INTERVALS, WIDTH, DEGREE, NODES = 8, 2.0, 8, 400


def g(t):
    return np.log1p(np.exp(-t))


def fit():
    x = np.cos(np.pi * (np.arange(NODES) + 0.5) / NODES) * (WIDTH / 2)
    rows = [np.polynomial.polynomial.polyfit(x, g(x + i * WIDTH + WIDTH / 2), DEGREE) for i in range(INTERVALS)]
    return np.array(rows).astype(np.float32)  # [interval, power]


def evaluate(table, t):
    """The kernels' arithmetic: each FMA rounded once to float."""
    t = t.astype(np.float32)
    inside = t < 16
    i = np.where(inside, t * np.float32(0.5), 0).astype(np.int32)
    u = (t - (i.astype(np.float32) * 2 + 1)).astype(np.float32)
    p = table[i, DEGREE]
    for j in range(DEGREE - 1, -1, -1):
        p = (p.astype(np.float64) * u + table[i, j]).astype(np.float32)
    return np.where(inside, p, np.float32(0))


table = fit()
t = np.concatenate([np.linspace(0, 24, 4_000_001), 2.0 ** np.arange(-30, 0, 0.001)])
err = np.abs(evaluate(table, t).astype(np.float64) - g(t))
big = g(t) > 0.25
ulp = err[big] / np.spacing(g(t[big]).astype(np.float32))
print(f"worst absolute error {err.max():.3g} (t = {t[err.argmax()]:.4g}), worst {ulp.max():.2f} ulp where g > 1/4")
print("inline constexpr float kSoftplusPoly[9][8] = {")
for j in range(DEGREE + 1):
    print("    {" + ", ".join(f"{v:.9g}f" for v in table[:, j]) + "},")
print("};")
