"""Why a toy's samples are diffuse: the sampler with the exact score of the perturbed toy, and a
trained checkpoint's score against that exact score, level by level (numpy and scipy only).

  python3 bench/toy_diagnosis.py exact TOY [--levels L] [--sigma-end S] [--steps-per-level T]
        [--step-lr EPS] [--denoise] [--n N] [--seed K]
  python3 bench/toy_diagnosis.py error RUN_DIR      (a run of `ncsn-cuda train --data toy:TOY`)

The exact score: 8 Gaussians and rings in closed form (rings through the Rice density), the
checkerboard through the normal CDF, the swiss roll and moons by a sum over 1,500 points of the
generating curve (spaced far below the noise width, so the sum is the integral to many digits).
The measure is the one of src/metrics.ts, written again here to keep this script standalone.
"""
import argparse
import json
import struct
import sys

import numpy as np
from scipy.special import i0e, i1e, log_ndtr, logsumexp

# ---- the toys: generating curves and noise widths, as in src/data/toy.ts ----


def swissroll_curve(t):
    return np.stack([t * np.cos(t), t * np.sin(t)], -1) / 3.5


def moons_curve(a, which):
    x, y = (np.cos(a), np.sin(a)) if which == 0 else (1 - np.cos(a), 0.5 - np.sin(a))
    return np.stack([2.5 * (x - 0.5), 2.5 * (y - 0.25)], -1)


CURVE_POINTS = 1500
SWISS_T = 1.5 * np.pi * (1 + 2 * (np.arange(CURVE_POINTS) + 0.5) / CURVE_POINTS)
SWISS = swissroll_curve(SWISS_T)
MOON_A = np.pi * (np.arange(CURVE_POINTS // 2) + 0.5) / (CURVE_POINTS // 2)
MOONS = np.concatenate([moons_curve(MOON_A, 0), moons_curve(MOON_A, 1)])
CENTRES = 4 * np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], -1)
NOISE = {'8gaussians': 0.5, 'swissroll': 0.1, 'rings': 0.08, 'moons': 0.1, 'checkerboard': 0.0}
DARK = [(c, r) for c in range(4) for r in range(4) if (c + r) % 2 == 0]


def draw(toy, n, rng):
    u = rng.random((n, 3))
    z = rng.standard_normal((n, 2))
    if toy == '8gaussians':
        return CENTRES[np.floor(u[:, 0] * 8).astype(int)] + 0.5 * z
    if toy == 'swissroll':
        return swissroll_curve(1.5 * np.pi * (1 + 2 * u[:, 0])) + 0.1 * z
    if toy == 'rings':
        r = np.floor(u[:, 0] * 4) + 1
        a = 2 * np.pi * u[:, 1]
        return np.stack([r * np.cos(a), r * np.sin(a)], -1) + 0.08 * z
    if toy == 'moons':
        a = np.pi * u[:, 1]
        up = moons_curve(a, 0)
        down = moons_curve(a, 1)
        return np.where((u[:, 0] < 0.5)[:, None], up, down) + 0.1 * z
    if toy == 'checkerboard':
        x = -4 + 8 * u[:, 0]
        row = np.floor(u[:, 1] * 2) * 2 + (np.floor(x / 2) + 2) % 2
        return np.stack([x, -4 + 2 * (row + u[:, 2])], -1)
    raise SystemExit(f'unknown toy {toy}')


def points_score(x, centres, var):
    """Score of the equal mixture of N(c_j, var·I) over the rows c_j of centres, in chunks."""
    out = np.empty_like(x)
    for s in range(0, len(x), 512):
        xs = x[s:s + 512]
        d = centres[None, :, :] - xs[:, None, :]
        logw = -0.5 * (d * d).sum(-1) / var
        w = np.exp(logw - logw.max(1, keepdims=True))
        w /= w.sum(1, keepdims=True)
        out[s:s + 512] = (w[:, :, None] * d).sum(1) / var
    return out


def log_interval(x, lo, hi, sigma):
    """log P(lo < x + σz < hi) and its derivative in x, for z ~ N(0, 1), stable in both tails."""
    a, b = (lo - x) / sigma, (hi - x) / sigma
    # P = Φ(b) − Φ(a) = Φ(−a) − Φ(−b): the form whose larger term is not near 1
    upper = a > 0
    la = np.where(upper, log_ndtr(-a), log_ndtr(b))
    lb = np.where(upper, log_ndtr(-b), log_ndtr(a))
    logp = la + np.log1p(-np.exp(lb - la))
    logphi_a = -0.5 * a * a - 0.5 * np.log(2 * np.pi)
    logphi_b = -0.5 * b * b - 0.5 * np.log(2 * np.pi)
    dlogp = (np.exp(logphi_a - logp) - np.exp(logphi_b - logp)) / sigma
    return logp, dlogp


def exact_score(toy, x, sigma):
    if toy == '8gaussians':
        return points_score(x, CENTRES, 0.25 + sigma**2)
    if toy == 'swissroll':
        return points_score(x, SWISS, 0.01 + sigma**2)
    if toy == 'moons':
        return points_score(x, MOONS, 0.01 + sigma**2)
    if toy == 'rings':
        tau2 = 0.0064 + sigma**2
        rho = np.maximum(np.linalg.norm(x, axis=1), 1e-12)
        logs, grads = [], []
        for r in (1, 2, 3, 4):
            k = rho * r / tau2
            # Rice: p ∝ exp(−(ρ² + r²)/2τ²) I0(ρr/τ²); I0 scaled by e^{−k}
            logs.append(-(rho**2 + r * r) / (2 * tau2) + np.log(i0e(k)) + k)
            grads.append(-rho / tau2 + (r / tau2) * i1e(k) / i0e(k))
        logs = np.stack(logs)
        w = np.exp(logs - logsumexp(logs, axis=0))
        return ((w * np.stack(grads)).sum(0) / rho)[:, None] * x
    if toy == 'checkerboard':
        logs, grads = [], []
        for c, r in DARK:
            lx, gx = log_interval(x[:, 0], -4 + 2 * c, -2 + 2 * c, sigma)
            ly, gy = log_interval(x[:, 1], -4 + 2 * r, -2 + 2 * r, sigma)
            logs.append(lx + ly)
            grads.append(np.stack([gx, gy], -1))
        logs = np.stack(logs)
        w = np.exp(logs - logsumexp(logs, axis=0))
        return (w[:, :, None] * np.stack(grads)).sum(0)
    raise SystemExit(f'unknown toy {toy}')


def measure(toy, x):
    """Fraction in the support, and each mode's share of the samples in it against its truth."""
    if toy == 'checkerboard':
        c, r = np.floor((x[:, 0] + 4) / 2), np.floor((x[:, 1] + 4) / 2)
        inside = (c >= 0) & (c < 4) & (r >= 0) & (r < 4) & ((c + r) % 2 == 0)
        mode = (c * 4 + r) // 2
        modes = 8
    elif toy == 'rings':
        rho = np.linalg.norm(x, axis=1)
        k = np.clip(np.round(rho), 1, 4)
        inside = np.abs(rho - k) < 3 * NOISE[toy]
        mode, modes = k - 1, 4
    else:
        pts = {'8gaussians': CENTRES, 'swissroll': SWISS, 'moons': MOONS}[toy]
        d2 = np.stack([((pts - p) ** 2).sum(1) for p in x])
        j = d2.argmin(1)
        inside = np.sqrt(d2[np.arange(len(x)), j]) < 3 * NOISE[toy]
        modes = {'8gaussians': 8, 'swissroll': 4, 'moons': 2}[toy]
        mode = j * modes // len(pts)
    share = np.bincount(mode[inside].astype(int), minlength=modes) / max(1, inside.sum())
    return inside.mean(), share, 1 / modes


def ald(score, sigmas, steps, eps, denoise, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-8, 8, (n, 2))
    for i, s in enumerate(sigmas):
        alpha = eps * (s / sigmas[-1]) ** 2
        for _ in range(steps):
            x = x + 0.5 * alpha * score(x, i) + np.sqrt(alpha) * rng.standard_normal(x.shape)
    if denoise:
        x = x + sigmas[-1] ** 2 * score(x, len(sigmas) - 1)
    return x


def report(toy, x):
    frac, share, truth = measure(toy, x)
    worst = np.abs(share - truth).max()
    return f'{100 * frac:.1f} % in support; mode shares {np.round(100 * share, 1).tolist()} % (truth {100 * truth:.1f} %, worst off by {100 * worst:.1f} points)'


# ---- a checkpoint's MLP in numpy ----


def read_checkpoint(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        blob = f.read()
    meta = header.pop('__metadata__')
    tensors = {}
    for name, t in header.items():
        a, b = t['data_offsets']
        tensors[name] = np.frombuffer(blob[a:b], dtype=np.float32).reshape(t['shape']).astype(np.float64)
    return json.loads(meta['config']), tensors


def mlp_score(config, tensors, x, level, prefix='ema.'):
    h = x
    for k in range(1, config['depth'] + 1):
        sin = k == 1 and config.get('firstLayer', 'softplus') == 'sin'
        p = f'{prefix}sin1.' if sin else f'{prefix}fc{k}.'
        z = h @ tensors[p + 'weight'].T + tensors[p + 'bias'] + tensors[p + 'level_bias'][level]
        h = np.sin(z) if sin else np.logaddexp(0, z)
    y = h @ tensors[prefix + 'out.weight'].T + tensors[prefix + 'out.bias']
    return y / config['sigmas'][level]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('what', choices=['exact', 'error', 'learned'])
    ap.add_argument('target')
    ap.add_argument('--sigma-begin', type=float, default=8)
    ap.add_argument('--sigma-end', type=float, default=0.05)
    ap.add_argument('--levels', type=int, default=12)
    ap.add_argument('--steps-per-level', type=int, default=100)
    ap.add_argument('--step-lr', type=float, default=None)
    ap.add_argument('--denoise', action='store_true')
    ap.add_argument('--n', type=int, default=4000)
    ap.add_argument('--seed', type=int, default=0)
    args = ap.parse_args()
    if args.what == 'exact':
        toy = args.target
        sigmas = np.exp(np.linspace(np.log(args.sigma_begin), np.log(args.sigma_end), args.levels))
        eps = args.step_lr if args.step_lr is not None else 0.1 * args.sigma_end**2
        x = ald(lambda x, i: exact_score(toy, x, sigmas[i]), sigmas, args.steps_per_level, eps, args.denoise, args.n, args.seed)
        print(f'{toy} exact score, σ {args.sigma_begin}→{args.sigma_end} L={args.levels} T={args.steps_per_level} ε={eps:.3g}{" denoised" if args.denoise else ""}: {report(toy, x)}')
        return
    config, tensors = read_checkpoint(f'{args.target}/checkpoint.safetensors')
    toy = config['data'].split(':')[1]
    sigmas = np.array(config['sigmas'])
    if args.what == 'learned':
        s = config['sampling']
        eps = args.step_lr if args.step_lr is not None else s['stepLr']
        x = ald(lambda x, i: mlp_score(config, tensors, x, i), sigmas, args.steps_per_level, eps, args.denoise, args.n, args.seed)
        print(f'{toy} learned score ({args.target}), T={args.steps_per_level} ε={eps:.3g}{" denoised" if args.denoise else ""}: {report(toy, x)}')
        return
    # σ²·E‖s_θ − s*‖² over q_σ, the part of the DSM loss (×2) that training can still remove,
    # against σ²·E‖s*‖²; and the same over the points 0.3 to 1 outside the support (light squares,
    # gaps between rings) where sampling at that level finds particles that training rarely sees
    rng = np.random.default_rng(1)
    data = draw(toy, 20000, rng)
    print(f'{toy}: level σ, σ²E‖s_θ−s*‖², σ²E‖s*‖², relative error')
    for i, s in enumerate(sigmas):
        xt = data + s * rng.standard_normal(data.shape)
        exact = exact_score(toy, xt, s)
        err = s * s * ((mlp_score(config, tensors, xt, i) - exact) ** 2).sum(1).mean()
        ref = s * s * (exact**2).sum(1).mean()
        print(f'  {i + 1:2d}  σ={s:.3g}  {err:.4f}  {ref:.4f}  {err / ref:.3f}')


if __name__ == '__main__':
    sys.exit(main())
