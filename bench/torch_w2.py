"""PyTorch peer of `ncsn-cuda bench --workload w2`: the same W2 U-Net, trained and sampled the same
way, timed the same way, printed as one JSON line.

W2 (docs/workloads.md): 28x28 images in [0, 1]; sigmas geometric 1 -> 0.01, L = 10; the conditional
U-Net with base width C, CondInstanceNorm++ (as W2 writes it) and ELU, output the score itself; DSM
with lambda = sigma^2; Adam 1e-3; EMA 0.999; annealed Langevin with eps = 4e-5 in our convention.

    /usr/bin/python3 bench/torch_w2.py --threads 2                       # CPU: C = 32, batch 32
    python3 bench/torch_w2.py --device cuda --tf32 off                   # GPU: C = 64, batch 128, cuDNN
    python3 bench/torch_w2.py --device cuda --tf32 on --compile on       # the same under torch.compile

train_images_per_s: training images per second at the batch size; sample_image_steps_per_s: images x
Langevin steps per second over the same batch. Each is the best of --repeats timings after a
warm-up; on a GPU each timing ends with a device synchronisation. The images are uniform noise in
[0, 1]: the arithmetic does not depend on their values.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class CondInstanceNormPlus(nn.Module):
    """y_k = gamma (x_k - mu_k)/s_k + beta + alpha (mu_k - m)/v, per level, as W2 writes it."""

    def __init__(self, channels, levels):
        super().__init__()
        self.embed = nn.Embedding(levels, 3 * channels)
        with torch.no_grad():
            self.embed.weight.normal_(1, 0.02)
            self.embed.weight[:, channels : 2 * channels] = 0

    def forward(self, x, level):
        gamma, beta, alpha = self.embed(level).chunk(3, dim=-1)
        mu = x.mean(dim=(2, 3))
        m = mu.mean(dim=1, keepdim=True)
        v = torch.sqrt(mu.var(dim=1, keepdim=True) + 1e-5)
        h = F.instance_norm(x, eps=1e-5)
        shift = beta + alpha * (mu - m) / v
        return gamma[..., None, None] * h + shift[..., None, None]


class NormAct(nn.Module):
    def __init__(self, channels, levels):
        super().__init__()
        self.norm = CondInstanceNormPlus(channels, levels)

    def forward(self, x, level):
        return F.elu(self.norm(x, level))


class Residual(nn.Module):
    def __init__(self, channels, levels):
        super().__init__()
        self.norm1, self.conv1 = NormAct(channels, levels), nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2, self.conv2 = NormAct(channels, levels), nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, h, level):
        return h + self.conv2(self.norm2(self.conv1(self.norm1(h, level)), level))


class UNet(nn.Module):
    def __init__(self, c_in=1, C=32, levels=10):
        super().__init__()
        L = levels
        self.conv_in, self.res1 = nn.Conv2d(c_in, C, 3, padding=1), Residual(C, L)
        self.down1_norm, self.down1 = NormAct(C, L), nn.Conv2d(C, 2 * C, 3, stride=2, padding=1)
        self.res2 = Residual(2 * C, L)
        self.down2_norm, self.down2 = NormAct(2 * C, L), nn.Conv2d(2 * C, 2 * C, 3, stride=2, padding=1)
        self.res3, self.res4 = Residual(2 * C, L), Residual(2 * C, L)
        self.up1_norm, self.up1 = NormAct(4 * C, L), nn.Conv2d(4 * C, 2 * C, 3, padding=1)
        self.res5 = Residual(2 * C, L)
        self.up2_norm, self.up2 = NormAct(3 * C, L), nn.Conv2d(3 * C, C, 3, padding=1)
        self.res6 = Residual(C, L)
        self.out_norm, self.conv_out = NormAct(C, L), nn.Conv2d(C, c_in, 3, padding=1)

    def forward(self, x, level):
        up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")
        a = self.res1(self.conv_in(x), level)
        b = self.res2(self.down1(self.down1_norm(a, level)), level)
        c = self.res4(self.res3(self.down2(self.down2_norm(b, level)), level), level)
        u = self.res5(self.up1(self.up1_norm(torch.cat([up(c), b], dim=1), level)), level)
        u = self.res6(self.up2(self.up2_norm(torch.cat([up(u), a], dim=1), level)), level)
        return self.conv_out(self.out_norm(u, level))


def train_step(model, ema, opt, data, batch, sigmas):
    idx = torch.randint(0, data.shape[0], (batch,), device=data.device)
    x = data[idx] * 255.0 / 256.0 + torch.rand_like(data[idx]) / 256.0
    level = torch.randint(0, len(sigmas), (batch,), device=data.device)
    sigma = sigmas[level].view(-1, 1, 1, 1)
    z = torch.randn_like(x)
    s = model(x + sigma * z, level)
    loss = 0.5 * ((sigma * s + z) ** 2).sum(dim=(1, 2, 3)).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    with torch.no_grad():
        params = list(model.parameters())
        torch._foreach_mul_(ema, 0.999)
        torch._foreach_add_(ema, params, alpha=0.001)


@torch.no_grad()
def annealed_langevin(model, sigmas, n, steps_per_level, eps):
    x = torch.rand(n, 1, 28, 28, device=sigmas.device)
    for i in range(len(sigmas)):
        alpha = eps * (sigmas[i] / sigmas[-1]) ** 2
        level = torch.full((n,), i, dtype=torch.long, device=sigmas.device)
        for _ in range(steps_per_level):
            x = x + 0.5 * alpha * model(x, level) + torch.sqrt(alpha) * torch.randn_like(x)
    return x


def best_rate(count, fn, repeats, sync):
    best = 0.0
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        best = max(best, count / (time.perf_counter() - t))
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--channels", type=int, help="base width C (default 32 on a CPU, 64 on a GPU)")
    p.add_argument("--batch", type=int, help="default 32 on a CPU, 128 on a GPU")
    p.add_argument("--train-steps", type=int, help="default 5 on a CPU, 20 on a GPU")
    p.add_argument("--sample-steps", type=int, help="Langevin steps per level timed (default 1 on a CPU, 5 on a GPU)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tf32", choices=["on", "off"], default="off", help="GPU: cuDNN and matmuls on TF32")
    p.add_argument("--compile", choices=["on", "off"], default="off", help="run the model under torch.compile")
    a = p.parse_args()
    gpu = a.device == "cuda"
    channels = a.channels or (64 if gpu else 32)
    batch = a.batch or (128 if gpu else 32)
    train_steps = a.train_steps or (20 if gpu else 5)
    sample_steps = a.sample_steps or (5 if gpu else 1)

    torch.set_num_threads(a.threads)
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = a.tf32 == "on"
        torch.backends.cudnn.allow_tf32 = a.tf32 == "on"
        torch.backends.cudnn.benchmark = True
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    torch.manual_seed(0)
    sigmas = torch.exp(torch.linspace(math.log(1.0), math.log(0.01), 10)).to(a.device)
    data = torch.rand(1000, 1, 28, 28, device=a.device)
    model = UNet(C=channels).to(a.device)
    params = sum(q.numel() for q in model.parameters())
    ema = [q.detach().clone() for q in model.parameters()]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    net = torch.compile(model) if a.compile == "on" else model

    for _ in range(3 if a.compile == "on" else 2):
        train_step(net, ema, opt, data, batch, sigmas)

    def train_run():
        for _ in range(train_steps):
            train_step(net, ema, opt, data, batch, sigmas)

    train_rate = best_rate(train_steps * batch, train_run, a.repeats, sync)
    annealed_langevin(net, sigmas, batch, 1, 4e-5)
    sample_rate = best_rate(
        batch * sample_steps * len(sigmas), lambda: annealed_langevin(net, sigmas, batch, sample_steps, 4e-5), a.repeats, sync
    )
    print(
        json.dumps(
            {
                "workload": "w2",
                "impl": "pytorch",
                "torch": torch.__version__,
                "device": torch.cuda.get_device_name() if gpu else "cpu",
                "tf32": a.tf32 == "on" if gpu else None,
                "compile": a.compile == "on",
                "threads": a.threads,
                "channels": channels,
                "params": params,
                "train_batch": batch,
                "train_images_per_s": round(train_rate, 1),
                "sample_batch": batch,
                "sample_image_steps_per_s": round(sample_rate, 1),
                "repeats": a.repeats,
            }
        )
    )


if __name__ == "__main__":
    main()
