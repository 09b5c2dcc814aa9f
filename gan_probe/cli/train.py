"""`gan-probe train`: train a DCGAN with the paper's hyperparameters."""
from __future__ import annotations

import argparse

from ..data import DATASETS
from ..models import LATENTS, PRESETS
from ..models.losses import LOSSES

HELP = "train a DCGAN (paper hyperparameters by default)"
DESCRIPTION = ("Train a DCGAN generator/discriminator pair. RUN_DIR receives checkpoint.pt (atomic, resumable), "
               "log.csv (step, losses, images/s), samples/step_*.png and config.json. Defaults are the paper's: "
               "Adam lr 2e-4, beta1 0.5, batch 128, N(0, 0.02) init, inputs scaled to [-1, 1].")


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = p.add_argument_group("data")
    d.add_argument("--dataset", default="digits", choices=DATASETS, help="dataset reader")
    d.add_argument("--data-root", help="dataset directory (not needed for digits)")
    d.add_argument("--split", default="train", help="split to train on")
    d.add_argument("--download", action="store_true", help="fetch cifar10/svhn's official files if missing")
    m = p.add_argument_group("model")
    m.add_argument("--preset", default="small32", choices=sorted(PRESETS), help="architecture preset")
    m.add_argument("--image-size", type=int, help="override the preset's resolution (32, 64 or 128)")
    m.add_argument("--nz", type=int, help="override the latent size")
    m.add_argument("--ngf", type=int, help="override the generator base width")
    m.add_argument("--ndf", type=int, help="override the discriminator base width")
    m.add_argument("--latent", choices=LATENTS, help="override the latent prior")
    m.add_argument("--mog-components", type=int, help="mixture components for --latent mog")
    m.add_argument("--mog-sigma-reg", type=float, default=1.0,
                   help="weight of DeLiGAN's sigma regulariser sum_k ||1 - sigma_k||^2 / N (--latent mog)")
    m.add_argument("--loss", default="bce", choices=LOSSES, help="GAN objective")
    o = p.add_argument_group("optimisation")
    o.add_argument("--batch-size", type=int, default=128)
    o.add_argument("--lr", type=float, default=2e-4)
    o.add_argument("--beta1", type=float, default=0.5)
    o.add_argument("--epochs", type=int, help="epochs to train (default 25 when --max-steps is not given)")
    o.add_argument("--max-steps", type=int, help="stop after this many steps in total")
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    o.add_argument("--no-amp", action="store_true", help="disable bf16 autocast on CUDA")
    r = p.add_argument_group("run directory")
    r.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory")
    r.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    r.add_argument("--log-every", type=int, default=10, help="steps between log.csv rows")
    r.add_argument("--sample-every", type=int, default=500, help="steps between sample grids")
    r.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..train import TrainConfig, train

    overrides = {"image_size": args.image_size, "nz": args.nz, "ngf": args.ngf, "ndf": args.ndf,
                 "latent": args.latent, "mog_components": args.mog_components}
    config = TrainConfig(
        dataset=args.dataset, data_root=args.data_root, split=args.split, download=args.download,
        preset=args.preset, model={k: v for k, v in overrides.items() if v is not None}, loss=args.loss,
        mog_sigma_reg=args.mog_sigma_reg,
        batch_size=args.batch_size, lr=args.lr, beta1=args.beta1, epochs=args.epochs, max_steps=args.max_steps,
        seed=args.seed, device=args.device, log_every=args.log_every, sample_every=args.sample_every,
        checkpoint_every=args.checkpoint_every, amp=not args.no_amp)
    config.model_config()  # validate overrides before touching any data
    result = train(config, args.out, resume=args.resume, progress=not args.no_progress)
    resumed = f" (resumed at step {result.resumed_from})" if result.resumed_from else ""
    losses = "" if result.loss_d is None else f"; loss_d {result.loss_d:.4f}, loss_g {result.loss_g:.4f}"
    print(f"trained to step {result.step}/{result.total_steps}{resumed} in {result.seconds:.1f}s{losses}")
    print(f"checkpoint: {result.out_dir / 'checkpoint.pt'}")
    return 0
