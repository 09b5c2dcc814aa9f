"""`gan-probe convert`: another code base's released model -> a gan-probe checkpoint."""
from __future__ import annotations

import argparse

HELP = "convert the DCGAN authors' released models (dcgan_code) into gan-probe checkpoints"
DESCRIPTION = (
    "Read the DCGAN authors' released discriminator (github.com/Newmu/dcgan_code: the folder holding "
    "EPOCH_discrim_params.jl_NN.npy; the .jl pickle is never loaded), recognise the model by its array shapes "
    "(imagenet32 -> preset paper32, svhn -> preset svhn32), flip Theano's convolution kernels for torch and write "
    "a checkpoint every --checkpoint flag reads. Batch norm was released without running statistics: extract "
    "re-estimates them (its default). A partial set converts; the layers it lacks are refused by name.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("format", choices=("dcgan-code",), help="the release format")
    p.add_argument("directory", metavar="DIR", help="the released model's folder")
    p.add_argument("--out", required=True, metavar="FILE.pt", help="checkpoint to write")
    p.add_argument("--download", action="store_true",
                   help="first fetch the discriminator files missing from DIR from the authors' repository at a "
                        "pinned commit (DIR named after the model, e.g. svhn or imagenet32); checked by sha256 "
                        "where known, else by .npy header")
    p.add_argument("--channel-order", choices=("rgb", "bgr"), default="rgb",
                   help="the channel order the released model reads (bgr permutes its first layer's inputs)")
    p.add_argument("--no-progress", action="store_true", help="no download progress bar")


def run(args: argparse.Namespace) -> int:
    from ..convert import save_converted

    out, state = save_converted(args.directory, args.out, channel_order=args.channel_order,
                                download=args.download, progress=not args.no_progress)
    info = state["converted"]
    print(f"wrote {out}: the authors' {info['model']} discriminator (epoch {info['epoch']}) as preset "
          f"{state['config']['model']['preset']}, {len(info['sha256'])} arrays, channel order {info['channel_order']}")
    missing = state.get("missing")
    if missing:
        layers = ", ".join(f"conv{i + 1}" for i in missing["layers"])
        usable = ",".join(str(i) for i in range(min(missing["layers"])))
        print(f"partial: {layers} and the head are missing ({', '.join(missing['files'])}); extract with "
              f"--layers {usable}")
    return 0
