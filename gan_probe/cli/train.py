"""`gan-probe train`: train a DCGAN (paper hyperparameters) or a VAE (--model vae), in one process or under torchrun."""
from __future__ import annotations

import argparse
from typing import Any

from ..data import DATASETS
from ..models import LATENTS, PRESETS
from ..models.losses import LOSSES
from ..training.family import FAMILIES
from ..training.probe import DEFAULT_C as PROBE_C

HELP = "train a DCGAN (paper hyperparameters by default) or, with --model vae, a VAE"
DESCRIPTION = ("Train a DCGAN generator/discriminator pair (--model dcgan) or a convolutional VAE whose encoder "
               "has D's layout and decoder G's (--model vae; log.csv records loss, recon, kl and elbo). RUN_DIR "
               "receives checkpoint.pt (atomic, resumable), "
               "log.csv (step, losses, images/s), samples/step_*.png and config.json. Defaults are the paper's: "
               "Adam lr 2e-4, beta1 0.5, batch 128, N(0, 0.02) init, inputs scaled to [-1, 1]. Distributed: "
               "torchrun --nproc_per_node N -m gan_probe train ... (DistributedDataParallel; --batch-size is the "
               "global batch, split evenly over the N ranks; only rank 0 writes RUN_DIR).")

# option -> default; options are parsed with default=SUPPRESS so that run() knows which ones were given
DEFAULTS: dict[str, Any] = {}
# model-architecture overrides (ModelConfig fields)
MODEL_OPTIONS = ("image_size", "nz", "ngf", "ndf", "latent", "mog_components")


def _opt(group: argparse._ArgumentGroup, flag: str, default: Any = None, help: str = "", **kw: Any) -> None:
    dest = flag.lstrip("-").replace("-", "_")
    DEFAULTS[dest] = default
    if default is not None and kw.get("action") not in ("store_true",):
        help = f"{help} (default: {default})" if help else f"default: {default}"
    group.add_argument(flag, default=argparse.SUPPRESS, help=help, **kw)


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = p.add_argument_group("data")
    _opt(d, "--dataset", "digits", f"dataset reader: {', '.join(DATASETS)}", metavar="NAME")
    _opt(d, "--data-root", None, "dataset directory (not needed for digits)")
    _opt(d, "--split", "train", "split to train on")
    _opt(d, "--download", False, "fetch cifar10/svhn's official files if missing", action="store_true")
    _opt(d, "--holdout", None, "leave out the N images that extract/kmeans/svm --holdout N hold out as the test "
                               "set (same --holdout-seed), so the GAN never sees them", type=int, metavar="N")
    _opt(d, "--holdout-seed", 0, "seed of --holdout", type=int)
    m = p.add_argument_group("model")
    _opt(m, "--model", "dcgan", "model family: dcgan (G and D) or vae (encoder with D's layout + 4x4 conv to mu "
                                "and log sigma^2, G as decoder; ELBO with a Gaussian likelihood of learned "
                                "per-channel scale; --loss and --probe-* do not apply)", choices=FAMILIES)
    _opt(m, "--preset", "small32", "architecture preset", choices=sorted(PRESETS))
    _opt(m, "--image-size", None, "override the preset's resolution (32, 64 or 128)", type=int)
    _opt(m, "--nz", None, "override the latent size", type=int)
    _opt(m, "--ngf", None, "override the generator base width", type=int)
    _opt(m, "--ndf", None, "override the discriminator base width", type=int)
    _opt(m, "--latent", None, "override the latent prior", choices=LATENTS)
    _opt(m, "--mog-components", None, "mixture components for --latent mog", type=int)
    _opt(m, "--mog-sigma-reg", 0.01, "weight of DeLiGAN's sigma regulariser sum_k ||1 - sigma_k||^2 / N "
                                    "(--latent mog)", type=float)
    _opt(m, "--loss", "bce", "GAN objective", choices=LOSSES)
    o = p.add_argument_group("optimisation")
    _opt(o, "--batch-size", 128, "global batch size (under torchrun: split evenly over the ranks)", type=int)
    _opt(o, "--lr", 2e-4, "Adam learning rate", type=float)
    _opt(o, "--beta1", 0.5, "Adam beta1", type=float)
    _opt(o, "--epochs", None, "epochs to train (default 25 when --max-steps is not given)", type=int)
    _opt(o, "--max-steps", None, "stop after this many steps in total", type=int)
    _opt(o, "--max-minutes", None, "wall-clock budget of this call: stop at the first log step past it, with a "
                                   "checkpoint and a sample grid (resume continues from there)", type=float)
    _opt(o, "--seed", 0, type=int)
    _opt(o, "--device", "auto", "auto, cpu, cuda or cuda:N (under torchrun: auto or cuda -> cuda:LOCAL_RANK)")
    _opt(o, "--no-amp", False, "disable bf16 autocast on CUDA", action="store_true")
    _opt(o, "--compile", False, "torch.compile the generator and discriminator", action="store_true")
    _opt(o, "--no-cuda-graphs", False, "run every step eagerly instead of replaying it from a CUDA graph (graphs "
                                       "are used on one CUDA process without --compile)", action="store_true")
    _opt(o, "--sync-bn", False, "under torchrun: batch-norm statistics over the global batch of all ranks "
                                "(SyncBatchNorm), so N processes match one process", action="store_true")
    q = p.add_argument_group("online probe (a linear probe of D during training)")
    _opt(q, "--probe-every", None, "every N steps and at the last step, score D's pooled features with a linear "
                                   "L2-SVM on --probe-dataset: log.csv gets probe_acc (validation accuracy), "
                                   "RUN_DIR/best_probe.pt (+ .json) keeps the best checkpoint", type=int, metavar="N")
    _opt(q, "--probe-dataset", None, f"labelled dataset of the probe, its train split only: "
                                     f"{', '.join(d for d in DATASETS if d != 'folder')}", metavar="NAME")
    _opt(q, "--probe-data-root", None, "directory of --probe-dataset (not needed for digits)", metavar="DIR")
    _opt(q, "--probe-images", 2000, "images drawn from the train split (stratified, seeded); a quarter of them "
                                    "(stratified) score the SVM, the rest fit it", type=int, metavar="N")
    _opt(q, "--probe-layers", None, "comma-separated 0-based conv layers to pool (default: all)", metavar="LIST")
    _opt(q, "--probe-C", PROBE_C, "the probe SVM's C (fixed; features are standardised)", type=float, metavar="C")
    _opt(q, "--probe-seed", 0, "seed of the probe's image draw and validation split", type=int, metavar="SEED")
    r = p.add_argument_group("run directory")
    r.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory")
    r.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt (options that "
                                                         "disagree with the checkpoint's are an error)")
    _opt(r, "--log-every", 10, "steps between log.csv rows", type=int)
    _opt(r, "--sample-every", 500, "steps between sample grids", type=int)
    _opt(r, "--checkpoint-every", 500, "steps between checkpoints", type=int)
    r.add_argument("--no-progress", action="store_true", help="no progress bar")


def _config_field(option: str) -> str:
    if option in MODEL_OPTIONS:
        return "model"
    return {"no_amp": "amp", "no_cuda_graphs": "cuda_graphs", "model": "family"}.get(option, option)


def _layers(layers: tuple[int, ...] | None) -> list[int] | None:
    return None if layers is None else list(layers)


def interrupted(args: argparse.Namespace) -> str:
    """What a rerun of an interrupted command reuses (printed after "interrupted")."""
    return f"`gan-probe train --resume --out {args.out}` continues from its last checkpoint"


def run(args: argparse.Namespace) -> int:
    from ..distributed import run_command
    from ..training import TrainConfig, train
    from ..training.probe import parse_layers

    def value(name: str) -> Any:
        return getattr(args, name, DEFAULTS[name])

    given = {_config_field(name) for name in DEFAULTS if hasattr(args, name)}
    config = TrainConfig(
        family=value("model"), dataset=value("dataset"), data_root=value("data_root"), split=value("split"),
        download=value("download"),
        holdout=value("holdout"), holdout_seed=value("holdout_seed"),
        preset=value("preset"), model={k: value(k) for k in MODEL_OPTIONS if value(k) is not None},
        loss=value("loss"), mog_sigma_reg=value("mog_sigma_reg"),
        batch_size=value("batch_size"), lr=value("lr"), beta1=value("beta1"), epochs=value("epochs"),
        max_steps=value("max_steps"), max_minutes=value("max_minutes"), seed=value("seed"), device=value("device"),
        log_every=value("log_every"), sample_every=value("sample_every"), checkpoint_every=value("checkpoint_every"),
        amp=not value("no_amp"), sync_bn=value("sync_bn"), compile=value("compile"),
        cuda_graphs=not value("no_cuda_graphs"), probe_every=value("probe_every"),
        probe_dataset=value("probe_dataset"), probe_data_root=value("probe_data_root"),
        probe_images=value("probe_images"), probe_layers=_layers(parse_layers(value("probe_layers"))),
        probe_C=value("probe_C"), probe_seed=value("probe_seed"))
    config.model_config()  # validate overrides before touching any data

    def body(ctx) -> int:
        result = train(config, args.out, resume=args.resume, progress=not args.no_progress, given=given)
        if ctx.is_main:
            resumed = f" (resumed at step {result.resumed_from})" if result.resumed_from else ""
            losses = ("; " + ", ".join(f"{name} {value:.4f}" for name, value in result.losses.items())
                      if result.losses else "")
            ranks = f" on {result.world_size} ranks" if result.world_size > 1 else ""
            print(f"trained to step {result.step}/{result.total_steps}{resumed}{ranks} in {result.seconds:.1f}s"
                  f"{losses}")
            print(f"checkpoint: {result.out_dir / 'checkpoint.pt'}")
        return 0

    return run_command(config.device, body)
