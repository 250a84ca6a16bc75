"""PyTorch peer of `ncsn-cuda bench --workload w1`: the same W1 model, trained and sampled the same
way, timed the same way, printed as one JSON line.

W1 (docs/workloads.md): data 0.2 N((-5,-5), I) + 0.8 N((5,5), I); sigmas geometric 20 -> 1,
L = 10; MLP of width 128 with per-level biases, s = (W3 h2 + b3) / sigma_i; DSM with lambda = sigma^2;
Adam 1e-3; EMA 0.999; annealed Langevin with alpha_i = eps sigma_i^2 / sigma_L^2, eps = 0.1.

    /usr/bin/python3 bench/torch_w1.py --threads 2                # CPU: batch 512, 10,000 particles
    python3 bench/torch_w1.py --device cuda --tf32 off            # GPU: batch 4096, 1,000,000 particles

train_steps_per_s: steps per second at the batch size; sample_particle_steps_per_s: particles x
Langevin steps per second. Each is the best of --repeats timings after a warm-up.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConditionalMlp(nn.Module):
    def __init__(self, sigmas, width=128, dim=2):
        super().__init__()
        levels = len(sigmas)
        self.fc1 = nn.Linear(dim, width)
        self.fc2 = nn.Linear(width, width)
        self.out = nn.Linear(width, dim)
        self.level_bias1 = nn.Parameter(torch.zeros(levels, width))
        self.level_bias2 = nn.Parameter(torch.zeros(levels, width))
        self.register_buffer("sigmas", sigmas)

    def forward(self, x, level):
        h = F.softplus(self.fc1(x) + self.level_bias1[level])
        h = F.softplus(self.fc2(h) + self.level_bias2[level])
        return self.out(h) / self.sigmas[level].unsqueeze(1)


def mixture(n, device, generator=None):
    upper = torch.rand(n, 1, device=device, generator=generator) >= 0.2
    centre = torch.where(upper, torch.tensor(5.0, device=device), torch.tensor(-5.0, device=device))
    return centre + torch.randn(n, 2, device=device, generator=generator)


def train_step(model, ema, opt, data, batch, sigmas):
    idx = torch.randint(0, data.shape[0], (batch,), device=data.device)
    x = data[idx]
    level = torch.randint(0, len(sigmas), (batch,), device=data.device)
    sigma = sigmas[level].unsqueeze(1)
    z = torch.randn_like(x)
    s = model(x + sigma * z, level)
    loss = 0.5 * ((sigma * s + z) ** 2).sum(dim=1).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    with torch.no_grad():
        params = list(model.parameters())
        torch._foreach_mul_(ema, 0.999)
        torch._foreach_add_(ema, params, alpha=0.001)
    return loss


@torch.no_grad()
def annealed_langevin(model, sigmas, n, steps_per_level, eps, levels=None):
    device = sigmas.device
    x = torch.rand(n, 2, device=device) * 16 - 8
    for i in range(len(sigmas) if levels is None else levels):
        alpha = eps * (sigmas[i] / sigmas[-1]) ** 2
        level = torch.full((n,), i, dtype=torch.long, device=device)
        for _ in range(steps_per_level):
            x = x + 0.5 * alpha * model(x, level) + torch.sqrt(alpha) * torch.randn_like(x)
    return x


def timed(device, fn):
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1000.0
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=None, help="512 on CPU, 4096 on GPU")
    p.add_argument("--particles", type=int, default=None, help="10,000 on CPU, 1,000,000 on GPU")
    p.add_argument("--train-steps", type=int, default=500)
    p.add_argument("--sample-steps", type=int, default=20, help="Langevin steps per level, over all 10 levels")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tf32", choices=["on", "off"], default="off")
    p.add_argument("--quality", action="store_true", help="also train 5,000 steps at batch 128 and report the (5,5) mode fraction")
    a = p.parse_args()

    device = a.device
    torch.set_num_threads(a.threads)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = a.tf32 == "on"
        torch.backends.cudnn.allow_tf32 = a.tf32 == "on"
    batch = a.batch or (4096 if device == "cuda" else 512)
    particles = a.particles or (1_000_000 if device == "cuda" else 10_000)
    torch.manual_seed(0)
    sigmas = torch.exp(torch.linspace(math.log(20.0), math.log(1.0), 10)).to(device)
    data = mixture(100_000, device)
    model = ConditionalMlp(sigmas).to(device)
    ema = [q.detach().clone() for q in model.parameters()]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)

    for _ in range(20):
        train_step(model, ema, opt, data, batch, sigmas)

    def train_run():
        for _ in range(a.train_steps):
            train_step(model, ema, opt, data, batch, sigmas)

    train_rate = max(a.train_steps / timed(device, train_run) for _ in range(a.repeats))

    annealed_langevin(model, sigmas, particles, 1, 0.1)
    sample_rate = max(
        particles * a.sample_steps * len(sigmas)
        / timed(device, lambda: annealed_langevin(model, sigmas, particles, a.sample_steps, 0.1))
        for _ in range(a.repeats)
    )

    out = {
        "workload": "w1",
        "impl": "pytorch",
        "torch": torch.__version__,
        "device": device,
        "threads": a.threads,
        "tf32": a.tf32 == "on" if device == "cuda" else None,
        "train_batch": batch,
        "train_steps_per_s": round(train_rate),
        "sample_particles": particles,
        "sample_particle_steps_per_s": round(sample_rate),
        "repeats": a.repeats,
    }
    if a.quality:
        q = ConditionalMlp(sigmas).to(device)
        q_ema = [t.detach().clone() for t in q.parameters()]
        q_opt = torch.optim.Adam(q.parameters(), lr=1e-3)
        for _ in range(5000):
            train_step(q, q_ema, q_opt, data, 128, sigmas)
        with torch.no_grad():
            for t, e in zip(q.parameters(), q_ema):
                t.copy_(e)
        x = annealed_langevin(q, sigmas, 10_000, 100, 0.1)
        out["mode_fraction"] = round(float(((x[:, 0] + x[:, 1]) > 0).float().mean()), 4)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
