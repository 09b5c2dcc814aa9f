"""The learned dictionary (patch statistics, whitening, centroids) of the single-layer baseline.

>>> from gan_probe.data import load_split
>>> train = load_split("digits", split="train")
>>> d = learn_dictionary(train.images, KMeansConfig(centroids=8, patches=2000, iterations=5))
>>> d.encode(train.images[:3]).shape
(3, 32)
"""
from __future__ import annotations

import json
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..atomic import atomic_path
from ..errors import ConfigError, FeatureStoreError, brief
from .clustering import lloyd_kmeans
from .config import KMeansConfig
from .encode import PatchEncoder
from .parallel import WorkerPool, default_workers
from .patches import normalise_patches_, sample_patches
from .whitening import fit_zca

FORMAT = "gan-probe-kmeans-dictionary"
PIECE_IMAGES = 16  # images per unit of work for the CPU worker threads


@dataclass
class KMeansDictionary:
    """Everything needed to encode new images: constants, patch mean + ZCA matrix (or none), centroids.

    ``centroids`` (K, D) live in the whitened patch space (normalised space with ``whiten=False``); patch vectors
    are ``(C, patch, patch)`` flattened, on the 0..255 pixel scale before normalisation.
    """

    config: KMeansConfig
    centroids: np.ndarray
    mean: np.ndarray | None = None
    whitening: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return 4 * len(self.centroids)

    def encoder(self, device: str | torch.device = "cpu", block_elements: int | None = None,
                gemm: str = "auto") -> PatchEncoder:
        """A :class:`PatchEncoder` holding this dictionary on ``device``."""
        c = self.config
        return PatchEncoder(self.centroids, self.mean, self.whitening, c.patch, c.stride, c.encoder, c.norm_eps,
                            device=device, block_elements=block_elements, gemm=gemm)

    def iter_encode(self, images: np.ndarray, batch_size: int = 256, device: str | torch.device = "cpu",
                    progress: bool = False, desc: str = "encode", workers: int | None = None,
                    gemm: str = "auto") -> Iterator[np.ndarray]:
        """Yield float32 (b, 4 K) feature blocks for consecutive batches of uint8 (N, H, W, C) ``images``.

        On CPU each batch is cut into pieces of at most ``PIECE_IMAGES`` images that ``workers`` threads
        (default: torch's thread count) encode with single-threaded kernels (:mod:`.parallel`); kernels run
        single-threaded until the generator is exhausted or closed.
        """
        dev = torch.device(device)
        workers = default_workers(dev) if workers is None else max(1, int(workers))
        piece = batch_size if workers == 1 else max(1, min(PIECE_IMAGES, -(-batch_size // workers)))
        starts = range(0, len(images), batch_size)
        if progress:
            from ..progress import bar

            starts = bar(starts, desc=desc, unit="batch", dynamic_ncols=True)
        with WorkerPool(workers) as pool:
            def run(chunk: np.ndarray) -> np.ndarray:
                encoder = getattr(pool.local, "encoder", None)
                if encoder is None:
                    encoder = pool.local.encoder = self.encoder(dev, gemm=gemm)
                with torch.inference_mode():
                    return encoder(torch.from_numpy(chunk)).cpu().numpy()

            for start in starts:
                batch = np.ascontiguousarray(images[start:start + batch_size])
                if not batch.flags.writeable:       # read-only memory maps: torch wants writable memory
                    batch = batch.copy()
                yield np.concatenate(pool.map(run, [batch[i:i + piece] for i in range(0, len(batch), piece)]))

    def encode(self, images: np.ndarray, batch_size: int = 256, device: str | torch.device = "cpu",
               progress: bool = False, workers: int | None = None) -> np.ndarray:
        """Features of uint8 (N, H, W, C) images as a float32 (N, 4 K) array (any image size >= the patch)."""
        blocks = list(self.iter_encode(images, batch_size, device, progress, workers=workers))
        return np.concatenate(blocks) if blocks else np.zeros((0, self.n_features), np.float32)

    def save(self, path: str | os.PathLike) -> Path:
        """Write an ``.npz`` file atomically (no pickles: constants and info are stored as JSON text)."""
        path = Path(path)
        arrays = {"centroids": np.asarray(self.centroids, np.float32),
                  "header": np.array(json.dumps({"format": FORMAT, "format_version": 1,
                                                 "config": self.config.to_dict(), "info": self.info}))}
        if self.whitening is not None:
            arrays["mean"] = np.asarray(self.mean, np.float64)
            arrays["whitening"] = np.asarray(self.whitening, np.float64)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "KMeansDictionary":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                arrays = {k: data[k] for k in data.files if k != "header"}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # e.g. a truncated copy
            raise FeatureStoreError(f"{path}: not a readable k-means dictionary ({brief(exc)})") from None
        if header.get("format") != FORMAT:
            raise FeatureStoreError(f"{path}: not a k-means dictionary (format {header.get('format')!r})")
        if "centroids" not in arrays:
            raise FeatureStoreError(f"{path}: k-means dictionary without centroids")
        try:
            config = KMeansConfig.from_dict(header.get("config", {}))
        except ConfigError as exc:
            raise FeatureStoreError(f"{path}: {exc}") from None
        return cls(config, arrays["centroids"], arrays.get("mean"), arrays.get("whitening"), header.get("info", {}))


def learn_dictionary(images: np.ndarray, config: KMeansConfig = KMeansConfig(), device: str | torch.device = "cpu",
                     progress: bool = False) -> KMeansDictionary:
    """Learn the dictionary from uint8 (N, H, W, C) training images.

    Samples ``config.patches`` random patches (seeded), normalises each, fits ZCA whitening (unless
    ``config.whiten`` is false) and runs ``config.iterations`` Lloyd k-means iterations with
    ``config.centroids`` centroids initialised at random patches.
    """
    t0 = time.perf_counter()
    patches = sample_patches(images, config.patches, config.patch, config.seed)
    x = torch.from_numpy(patches)  # shares memory: normalised and whitened in place
    for start in range(0, len(x), 65_536):
        normalise_patches_(x[start:start + 65_536], config.norm_eps)
    mean = whitening = None
    info: dict = {"n_images": int(len(images)), "image_shape": list(images.shape[1:]),
                  "n_patches": int(len(patches))}
    if config.whiten:
        zca = fit_zca(patches, config.zca_eps)
        mean, whitening = zca.mean, zca.matrix
        proj = torch.from_numpy(whitening.astype(np.float32))
        bias = torch.from_numpy((-mean @ whitening).astype(np.float32))
        for start in range(0, len(x), 65_536):
            x[start:start + 65_536] = torch.addmm(bias, x[start:start + 65_536], proj)
        info["eigenvalues"] = [float(v) for v in zca.eigenvalues]
    t1 = time.perf_counter()
    km = lloyd_kmeans(patches, config.centroids, config.iterations, seed=config.seed, device=device,
                      progress=progress)
    info.update({"kmeans_iterations_run": km.n_iter, "kmeans_converged": km.converged,
                 "kmeans_empty_relocated": km.relocated, "kmeans_inertia": km.inertia,
                 "seconds_patches": round(t1 - t0, 3), "seconds_kmeans": round(time.perf_counter() - t1, 3)})
    return KMeansDictionary(config, km.centroids, mean, whitening, info)
