"""Decoding image files to uint8 RGB arrays, in parallel chunks, straight into a preallocated array.

Every file is decoded with PIL and converted to RGB (grey, palette, RGBA and CMYK images included). With a
target ``size`` it is resized so its shorter side is ``size`` and center-cropped (:func:`resize_center_crop`);
without one, every image must have the size of the first.

>>> import numpy as np
>>> from PIL import Image
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> Image.fromarray(np.full((4, 6, 3), 7, np.uint8)).save(d / "a.png")
>>> out = np.empty((1, 4, 4, 3), np.uint8)
>>> decode_into(out, [d / "a.png"], size=4, progress=False)
>>> int(out.max())
7
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import sys
from typing import Iterator, Sequence

import numpy as np

from ..errors import DataError
from .resize import resize_center_crop

# Folders with fewer files than this are decoded in the calling process (a pool's start-up is not worth it).
POOL_MIN_FILES = 2048
CHUNK = 256
_PIXEL_BUDGET = 1 << 22  # resize at most this many source pixels per call (bounds float32 scratch memory)


def image_hw(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image, reading only its header."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.height, im.width
    except Exception as exc:  # PIL raises many types for corrupt files
        raise DataError(f"{path}: unreadable image ({_reason(exc, path)})") from None


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode one image file to a uint8 (H, W, 3) RGB array (one-line DataError if it cannot be read)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as exc:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBombError, ...
        raise DataError(f"{path}: unreadable image ({_reason(exc, path)})") from None


def _reason(exc: Exception, path: str | os.PathLike) -> str:
    """The exception's message on one line, without the file name (the caller puts it first)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text.replace(f" {os.fspath(path)!r}", "")


def fit_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize (shorter side to ``size``) and center-crop one (H, W, 3) image to (size, size, 3)."""
    return resize_center_crop(image[None], size)[0]


def decode_chunk(paths: Sequence[str], size: int | None,
                 native: tuple[int, int] | None = None, first: str = "") -> tuple[np.ndarray | None, str | None]:
    """Decode ``paths`` to one (n, H, W, 3) array. Returns (array, None), or (None, error message).

    With ``size=None`` every image must be ``native`` = (H, W), the size of the image named ``first``.
    Consecutive images of equal size are resized together (up to ``_PIXEL_BUDGET`` pixels at a time).
    Errors are returned as text, not raised, so they cross process boundaries unchanged.
    """
    try:
        out: list[np.ndarray] = []
        pending: list[np.ndarray] = []

        def flush() -> None:
            if pending:
                out.append(resize_center_crop(np.stack(pending), size))
                pending.clear()

        for path in paths:
            image = read_rgb(path)
            if size is None:
                if image.shape[:2] != tuple(native):
                    h, w = image.shape[:2]
                    raise DataError(f"{path}: image is {w}x{h} but the first image {first} is {native[1]}x{native[0]}; "
                                    f"the images have different sizes, pass --image-size (image_size=) to resize them")
                out.append(image[None])
                continue
            if pending and (pending[0].shape != image.shape or
                            (len(pending) + 1) * image.shape[0] * image.shape[1] > _PIXEL_BUDGET):
                flush()
            pending.append(image)
        flush()
        return np.concatenate(out), None
    except DataError as exc:
        return None, str(exc)


def default_workers(n_files: int) -> int:
    """Worker processes for decoding ``n_files``: none for small folders, else up to 8 (one per usable core)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return 0 if n_files < POOL_MIN_FILES or cores < 2 else min(8, cores)


def _init_worker() -> None:
    torch = sys.modules.get("torch")  # imported by the parent before the fork when resizing is needed
    if torch is not None:
        torch.set_num_threads(1)


@contextlib.contextmanager
def _single_torch_thread(active: bool) -> Iterator[None]:
    """Resize small images with one torch thread (many threads make per-image calls far slower)."""
    if not active:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _pool_context() -> multiprocessing.context.BaseContext:
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def decode_into(out: np.ndarray, paths: Sequence[str | os.PathLike], size: int | None,
                native: tuple[int, int] | None = None, workers: int | None = None, progress: bool = True,
                desc: str = "decoding images", chunk: int = CHUNK) -> None:
    """Decode ``paths`` in order into ``out`` (shape (len(paths), H, W, 3)), ``chunk`` files per task.

    ``workers=None`` picks :func:`default_workers`; ``0`` decodes in this process. Raises the first
    :class:`DataError` met (in file order).
    """
    from ..progress import bar as progress_bar

    paths = [os.fspath(p) for p in paths]
    if len(out) != len(paths):
        raise ValueError(f"out has {len(out)} rows for {len(paths)} files")
    first = paths[0] if paths else ""
    if size is None and native is None and paths:
        native = image_hw(first)
    starts = list(range(0, len(paths), chunk))
    workers = default_workers(len(paths)) if workers is None else workers
    bar = progress_bar(total=len(paths), desc=desc, unit="img", enabled=progress, leave=False)
    try:
        if workers <= 0:
            with _single_torch_thread(size is not None):
                for start in starts:
                    _store(out, start, decode_chunk(paths[start:start + chunk], size, native, first))
                    bar.update(min(chunk, len(paths) - start))
            return
        if size is not None:
            import torch  # noqa: F401 - imported once here rather than in every forked worker
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(),
                                    initializer=_init_worker) as pool:
            pending: dict[int, cf.Future] = {}
            todo = iter(starts)
            for start in starts:
                while len(pending) < 2 * workers:
                    nxt = next(todo, None)
                    if nxt is None:
                        break
                    pending[nxt] = pool.submit(decode_chunk, paths[nxt:nxt + chunk], size, native, first)
                try:
                    _store(out, start, pending.pop(start).result())
                except BaseException:
                    for future in pending.values():
                        future.cancel()
                    raise
                bar.update(min(chunk, len(paths) - start))
    finally:
        bar.close()


def _store(out: np.ndarray, start: int, result: tuple[np.ndarray | None, str | None]) -> None:
    array, error = result
    if error is not None:
        raise DataError(error)
    out[start:start + len(array)] = array
