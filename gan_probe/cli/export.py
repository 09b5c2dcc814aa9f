"""`gan-probe export`: a compact, inference-only copy of a training checkpoint, recorded in an index."""
from __future__ import annotations

import argparse

HELP = "write a small inference-only checkpoint (half precision) and record it in an index"
DESCRIPTION = (
    "Copy CKPT's generator and discriminator to OUT without optimizer states, floating-point weights cast to "
    "--dtype (every command reads the result with --checkpoint; weights are cast back to float32 on load). "
    "With --index, OUT's sha256, size, architecture, training data and training command are added to that "
    "JSON index (replacing an entry of the same file name). OUT never replaces CKPT or another training "
    "checkpoint.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CKPT", help="a gan-probe training checkpoint")
    p.add_argument("--out", required=True, metavar="OUT", help="output checkpoint file (.pt)")
    p.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), default="float16",
                   help="storage precision of the weights")
    p.add_argument("--no-generator", action="store_true", help="keep only the discriminator")
    p.add_argument("--index", metavar="INDEX.json", help="add the file to this index (created if missing)")
    p.add_argument("--notes", help="free text stored with the index entry")
    p.add_argument("--force", action="store_true",
                   help="replace an existing OUT that is not a gan-probe checkpoint (an earlier inference-only copy "
                        "is always replaced; the source and training checkpoints never are)")


def run(args: argparse.Namespace) -> int:
    from ..models.pretrained import export_checkpoint, read_index, update_index

    if args.index:
        read_index(args.index)  # a bad index is reported before anything is written
    entry = export_checkpoint(args.checkpoint, args.out, dtype=args.dtype, keep_generator=not args.no_generator,
                              force=args.force)
    print(f"wrote {args.out} ({entry['bytes'] / 1e6:.2f} MB, {entry['dtype']}, sha256 {entry['sha256'][:16]}...)")
    if args.index:
        update_index(args.index, entry, notes=args.notes)
        print(f"index: {args.index}")
    return 0
