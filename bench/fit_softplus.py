#!/usr/bin/env python3
"""The CPU softplus's and sigmoid's tables (native/cpu/vecmath.h, kSoftplusPoly and
kSigmoidTailPoly): g(t) = log1p(exp(-t)) and s(t) = 1/(1 + exp(t)) on eight intervals of width 2
over [0, 16), degree 8 in u = t - centre, least squares on Chebyshev nodes (near minimax). Prints
each table and the worst error of its float evaluation (with FMAs, as the kernels run it) against
softplus and sigmoid in double: absolute anywhere, and in ulp where g, or sigmoid, exceeds 1/4.

    python3 bench/fit_softplus.py
"""
import numpy as np

INTERVALS, WIDTH, DEGREE, NODES = 8, 2.0, 8, 400


def g(t):
    return np.log1p(np.exp(-t))


def s(t):
    return 1 / (1 + np.exp(t))


def fit(f):
    x = np.cos(np.pi * (np.arange(NODES) + 0.5) / NODES) * (WIDTH / 2)
    rows = [np.polynomial.polynomial.polyfit(x, f(x + i * WIDTH + WIDTH / 2), DEGREE) for i in range(INTERVALS)]
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


def print_table(name, table):
    print(f"inline constexpr float {name}[9][8] = {{")
    for j in range(DEGREE + 1):
        print("    {" + ", ".join(f"{v:.9g}f" for v in table[:, j]) + "},")
    print("};")


def worst(got, want, big):
    err = np.abs(got.astype(np.float64) - want)
    ulp = err[big] / np.spacing(want[big].astype(np.float32))
    return f"worst absolute error {err.max():.3g}, worst {ulp.max():.2f} ulp where it exceeds 1/4"


t = np.concatenate([np.linspace(0, 24, 4_000_001), 2.0 ** np.arange(-30, 0, 0.001)])
softplus_table = fit(g)
print("g:", worst(evaluate(softplus_table, t), g(t), g(t) > 0.25))
print_table("kSoftplusPoly", softplus_table)

z = np.linspace(-24, 24, 4_000_001)
sigmoid_table = fit(s)
tail = evaluate(sigmoid_table, np.abs(z))
sigmoid = np.where(z < 0, tail, (np.float32(1) - tail).astype(np.float32))
want = 1 / (1 + np.exp(-z))
print("sigmoid:", worst(sigmoid, want, want > 0.25))
print_table("kSigmoidTailPoly", sigmoid_table)
