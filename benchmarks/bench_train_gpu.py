"""Training throughput (images/s) of gan-probe's loop against a plain fp32 reference loop of the same model,
measured in the same run, and how closely the two loss curves agree over the first steps.

Anchor ("PyTorch examples" style): a DataLoader (workers, pinned memory) over the decoded images, each item
converted to a float CHW tensor in [-1, 1]; fp32; ``torch.optim.Adam`` with its defaults; no channels-last, no
compile; D's real and fake halves backpropagated separately as in the examples.
Ours: :func:`gan_probe.training.train` -- uint8 images resident on the GPU, bf16 autocast, channels-last, fused
Adam, and the whole step replayed from a CUDA graph (the default; "eager" is the same loop with
``cuda_graphs=False``); with ``--compile`` also ``torch.compile`` of G and D (in the default memory format, no
graph).

Both loops start from the same weights and draw the same batches (``epoch_order``) and latent codes (the
per-step seeded z), so their loss curves differ only by arithmetic (bf16 vs fp32, kernel choices). GAN training
amplifies any rounding difference, so a third curve -- our loop in fp32 (``amp=False``) -- shows how far pure
rounding carries; "match" means the bf16 curve is no further from the anchor than that, or close to it.

On CUDA it also times the bare step (fixed inputs, no data, no logging) eagerly and replayed from its graph: the
replay's time is the GPU's own time per step, the ceiling of any loop around it.

    python benchmarks/bench_train_gpu.py                                  # CUDA: paper32 and dcgan64
    python benchmarks/bench_train_gpu.py --compile --steps 500
    python benchmarks/bench_train_gpu.py --cudnn-benchmark                # cuDNN picks algorithms by timing
    python benchmarks/bench_train_gpu.py --device cpu --steps 6 --warmup 2 --batch-size 8   # CPU smoke check
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from gan_probe.data import load_split
from gan_probe.models import Discriminator, Generator, preset_config
from gan_probe.training import TrainConfig, read_log, train
from gan_probe.training.schedule import epoch_order, stream_rng
from gan_probe.training.step import GanStep, GraphedStep


class DecodedImages(Dataset):
    """uint8 (N, H, W, 3) images -> one float (3, H, W) tensor in [-1, 1] per item (ToTensor + Normalize)."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.images[i])).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


class SameBatches(Sampler):
    """The batches gan-probe's loop draws: step s takes rows [pos*B, (pos+1)*B) of its epoch's permutation."""

    def __init__(self, n: int, batch_size: int, seed: int, steps: int):
        self.n, self.batch_size, self.seed, self.steps = n, batch_size, seed, steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        per_epoch = self.n // self.batch_size
        order, current = None, -1
        for step in range(self.steps):
            epoch, pos = divmod(step, per_epoch)
            if epoch != current:
                order, current = epoch_order(self.n, self.seed, epoch), epoch
            yield order[pos * self.batch_size:(pos + 1) * self.batch_size].tolist()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference_loop(images: np.ndarray, preset: str, batch_size: int, steps: int, warmup: int, seed: int,
                   device: torch.device, workers: int) -> tuple[float, np.ndarray]:
    """The anchor: returns (images/s after ``warmup`` steps, per-step (loss_d, loss_g))."""
    cfg = preset_config(preset)
    torch.manual_seed(seed)
    gen, disc = Generator(cfg).to(device), Discriminator(cfg).to(device)
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    loader = DataLoader(DecodedImages(images), batch_sampler=SameBatches(len(images), batch_size, seed, steps),
                        num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=False)
    losses = []
    t_start = None
    for step, real in enumerate(loader):
        if step == warmup:
            sync(device)
            t_start = time.perf_counter()
        real = real.to(device, non_blocking=True)
        z = gen.prior.sample(batch_size, generator=stream_rng(seed, 2, step, "cpu"), device="cpu").to(device)
        disc.zero_grad(set_to_none=True)
        out_real = disc(real)
        err_real = F.binary_cross_entropy_with_logits(out_real, torch.ones_like(out_real))
        err_real.backward()
        fake = gen(z)
        out_fake = disc(fake.detach())
        err_fake = F.binary_cross_entropy_with_logits(out_fake, torch.zeros_like(out_fake))
        err_fake.backward()
        opt_d.step()
        gen.zero_grad(set_to_none=True)
        out = disc(fake)
        err_g = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
        err_g.backward()
        opt_g.step()
        losses.append(torch.stack((err_real + err_fake, err_g)).detach())
    sync(device)
    rate = batch_size * (steps - warmup) / (time.perf_counter() - t_start)
    return rate, torch.stack(losses).cpu().numpy()


def our_loop(dataset: str, data_root: str | None, preset: str, batch_size: int, steps: int, warmup: int,
             seed: int, device: torch.device, amp: bool, compile: bool, curve: bool,
             cuda_graphs: bool = True) -> tuple[float, np.ndarray]:
    """gan_probe.training.train: (images/s from step ``warmup`` to the end, per-step losses if ``curve``)."""
    with tempfile.TemporaryDirectory() as tmp:
        every = 1 if curve else warmup
        config = TrainConfig(dataset=dataset, data_root=data_root, preset=preset, batch_size=batch_size,
                             max_steps=steps, seed=seed, device=str(device), amp=amp, compile=compile,
                             log_every=every, sample_every=10 ** 9, checkpoint_every=10 ** 9)
        train(config, Path(tmp) / "run")
        rows = read_log(Path(tmp) / "run")
    by_step = {int(r["step"]): r for r in rows}
    rate = batch_size * (steps - warmup) / (by_step[steps]["seconds"] - by_step[warmup]["seconds"])
    losses = np.array([[r["loss_d"], r["loss_g"]] for r in rows]) if curve else np.zeros((0, 2))
    return rate, losses


def step_only(preset: str, batch_size: int, device: torch.device, graphs: bool, steps: int = 100) -> float:
    """images/s of the bare training step (fixed random inputs, no data loading or logging): with a graph this
    is the GPU's own time per step, the ceiling of the loop; eager, it includes the launch work on the CPU."""
    cfg = preset_config(preset)
    torch.manual_seed(0)
    gen = Generator(cfg).to(device).to(memory_format=torch.channels_last)
    disc = Discriminator(cfg).to(device).to(memory_format=torch.channels_last)
    adam = {"lr": 2e-4, "betas": (0.5, 0.999), "fused": True, "capturable": graphs}
    step = GanStep(gen, disc, torch.optim.Adam(gen.parameters(), **adam), torch.optim.Adam(disc.parameters(), **adam),
                   loss="bce", amp=True)
    if graphs:
        step = GraphedStep(step)
    real = torch.rand(batch_size, 3, cfg.image_size, cfg.image_size, device=device).mul_(2).sub_(1)
    real = real.contiguous(memory_format=torch.channels_last)
    noise = (gen.prior.sample(batch_size, device=device),)
    for _ in range(10):
        step(real, noise)
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step(real, noise)
    sync(device)
    return batch_size * steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["paper32", "dcgan64"])
    ap.add_argument("--dataset", default="digits", help="gan-probe dataset name (default: the embedded digits)")
    ap.add_argument("--data-root")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=300, help="training steps per loop (also the curve length)")
    ap.add_argument("--warmup", type=int, default=50, help="steps excluded from the timing (must divide --steps)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--workers", type=int, help="reference DataLoader workers (default 4 on CUDA, 0 on CPU)")
    ap.add_argument("--compile", action="store_true", help="also time our loop with torch.compile")
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument("--cudnn-benchmark", action="store_true",
                    help="let cuDNN time its convolution algorithms (torch.backends.cudnn.benchmark) in every loop, "
                         "the anchor's included")
    args = ap.parse_args()
    if args.steps % args.warmup:
        ap.error("--warmup must divide --steps (our loop is timed from its log rows)")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    device = torch.device(args.device)
    workers = args.workers if args.workers is not None else (4 if device.type == "cuda" else 0)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, torch {torch.__version__}, dataset {args.dataset}, batch {args.batch_size}, "
          f"{args.steps} steps (timed after {args.warmup}), cudnn.benchmark {args.cudnn_benchmark}")
    header = (f"{'preset':8} {'anchor img/s':>12} {'eager img/s':>11} {'x anchor':>8} {'graph img/s':>11} "
              f"{'x anchor':>8} "
              + (f"{'compiled':>9} {'x anchor':>8} " if args.compile else "")
              + f"{'|dD| ours':>10} {'|dG| ours':>10} {'|dD| fp32':>10} {'|dG| fp32':>10}")
    print(header)
    for preset in args.presets:
        size = preset_config(preset).image_size
        images = np.asarray(load_split(args.dataset, args.data_root, "train", image_size=size).images)
        common = dict(dataset=args.dataset, data_root=args.data_root, preset=preset, batch_size=args.batch_size,
                      steps=args.steps, warmup=args.warmup, seed=args.seed, device=device)
        ref_rate, ref_curve = reference_loop(images, preset, args.batch_size, args.steps, args.warmup, args.seed,
                                             device, workers)
        eager_rate, _ = our_loop(**common, amp=True, compile=False, curve=False, cuda_graphs=False)
        our_rate, _ = our_loop(**common, amp=True, compile=False, curve=False)
        _, our_curve = our_loop(**common, amp=True, compile=False, curve=True)
        _, fp32_curve = our_loop(**common, amp=False, compile=False, curve=True)
        d_ours = np.abs(our_curve - ref_curve).mean(axis=0)
        d_fp32 = np.abs(fp32_curve - ref_curve).mean(axis=0)
        line = (f"{preset:8} {ref_rate:12.1f} {eager_rate:11.1f} {eager_rate / ref_rate:8.2f} {our_rate:11.1f} "
                f"{our_rate / ref_rate:8.2f} ")
        if args.compile:
            comp_rate, _ = our_loop(**common, amp=True, compile=True, curve=False)
            line += f"{comp_rate:9.1f} {comp_rate / ref_rate:8.2f} "
        line += f"{d_ours[0]:10.4f} {d_ours[1]:10.4f} {d_fp32[0]:10.4f} {d_fp32[1]:10.4f}"
        print(line)
        print(f"{'':8} mean loss_d / loss_g over the curve: anchor {ref_curve[:, 0].mean():.4f} / "
              f"{ref_curve[:, 1].mean():.4f}, ours {our_curve[:, 0].mean():.4f} / {our_curve[:, 1].mean():.4f}, "
              f"ours fp32 {fp32_curve[:, 0].mean():.4f} / {fp32_curve[:, 1].mean():.4f}")
    if device.type == "cuda":
        for preset in args.presets:
            eager, graphed = (step_only(preset, args.batch_size, device, graphs) for graphs in (False, True))
            print(f"{preset:8} bare step (no data, no logging): eager {eager:.1f} img/s, graph replay "
                  f"{graphed:.1f} img/s ({1e3 * args.batch_size / graphed:.2f} ms of GPU time per step)")
    print("|dD|, |dG|: mean absolute difference per step between a curve and the anchor's (loss_d, loss_g); "
          "'ours' is the graph-replayed bf16 loop, 'fp32' the same without autocast (rounding-only differences)")


if __name__ == "__main__":
    main()
