"""Atomic file writes: write to a temporary file in the target directory, fsync, then rename.

A reader therefore sees either the previous complete file or the new complete file, never a partial one,
even if the process is killed mid-write.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import ConfigError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    >>> with atomic_path("out.txt") as tmp:          # doctest: +SKIP
    ...     tmp.write_text("hello")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        replace_durably(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def replace_durably(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Flush ``tmp`` to disk, then rename it onto ``path`` (the last step of an atomic write)."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def remove_stale_temporaries(directory: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Delete the temporaries an interrupted :func:`atomic_path` left in ``directory`` (and, with ``recursive``,
    in its subdirectories); returns what went.

    A process killed between creating its temporary and renaming it leaves a ``.NAME.XXXX.tmp`` file behind.
    Call this only where no other process is writing into ``directory`` (e.g. when a run resumes).
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = [p for p in (directory.rglob if recursive else directory.glob)(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


# the kinds of output check_overwrite knows: format -> what it is called in messages
KINDS = {
    "gan-probe-svm": "gan-probe svm result",
    "gan-probe-fid": "gan-probe fid result",
    "gan-probe-inception-score": "gan-probe inception-score result",
    "gan-probe-fid-stats": "gan-probe FID statistics file",
    "gan-probe-checkpoint": "gan-probe checkpoint",
    "gan-probe-figure": "gan-probe figure",
    "gan-probe-report": "gan-probe report directory",
}
FIGURE_MARK = "gan-probe"  # save_figure's PNG "Software" / PDF "Creator" entry, how a figure is recognised
_METRICS = {"fid": "gan-probe-fid", "inception_score": "gan-probe-inception-score"}


def check_overwrite(path: str | os.PathLike, expected_format: str, force: bool = False, flag: str = "--out",
                    force_flag: str | None = "--force") -> None:
    """The overwrite rule of every command that writes a result: an existing ``path`` of the same kind
    (``expected_format``, one of :data:`KINDS`: a JSON result's ``format``, a checkpoint, a statistics file, a
    figure, a report directory) is replaced, atomically, by the writer; anything else is refused with one line
    unless ``force``. Call it before any work. A directory is never the target of a file; an earlier report
    directory is replaced without ``force`` only when it holds nothing but what its report wrote (``report.json``'s
    ``files``; :func:`gan_probe.report.build_report` refuses any other non-empty directory). ``force_flag``: how
    the caller's user passes ``force`` (None: there is no such flag, and the message says what to do instead).

    >>> check_overwrite("notes.txt", "gan-probe-svm", flag="--json")      # doctest: +SKIP
    ConfigError: --json notes.txt: exists and is not a gan-probe svm result (...); pass --force to replace it
    """
    path = Path(path)
    kind = KINDS[expected_format]
    directory = expected_format == "gan-probe-report"
    if not directory and path.is_dir():
        raise ConfigError(f"{flag} {path}: is a directory; expected a file name")
    if not os.path.lexists(path) or (directory and path.is_dir() and not any(path.iterdir())):
        return
    if directory and not path.is_dir():
        raise ConfigError(f"{flag} {path}: exists and is not a directory")
    found = file_format(path, expected_format)
    if directory and found != expected_format:
        return  # a directory that is not a report: build_report refuses it itself, --force or not
    if found == expected_format:
        extra = _unlisted_files(path) if directory else []
        if extra and not force:
            shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
            remedy = f"move them out or pass {force_flag}" if force_flag else "move them out and rerun"
            raise ConfigError(f"{flag} {path}: the earlier report there also holds {shown}, which it did not "
                                f"write and rebuilding would delete; {remedy}")
        return
    if force:
        return
    what = f"a {KINDS[found]}" if found in KINDS else "unrecognised content"
    remedy = f"choose another {flag} or pass {force_flag} to replace it" if force_flag else "move it away"
    raise ConfigError(f"{flag} {path}: exists and is not a {kind} (it holds {what}); {remedy}")


def file_format(path: str | os.PathLike, expected_format: str | None = None) -> str | None:
    """The kind (a key of :data:`KINDS`) of the existing file or directory ``path``; ``None``: none of them.
    ``expected_format`` only saves trying the other kinds first."""
    path = Path(path)
    if path.is_dir():
        try:
            report = json.loads((path / "report.json").read_text())
        except (OSError, ValueError):
            return None
        return "gan-probe-report" if isinstance(report, dict) and report.get("format") == "gan-probe-report" \
            else None
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    if head.startswith(b"\x89PNG") or head.startswith(b"%PDF-"):
        return "gan-probe-figure" if _is_figure(path, head) else None
    if head.startswith(b"PK"):  # a zip: a torch checkpoint or an .npz
        order = ("gan-probe-fid-stats", "gan-probe-checkpoint")
        if expected_format == "gan-probe-checkpoint":
            order = order[::-1]
        for kind in order:
            if (_is_stats if kind == "gan-probe-fid-stats" else _is_checkpoint)(path):
                return kind
        return None
    if path.stat().st_size > 256 * 2 ** 20:  # no result JSON is this large
        return None
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(obj, dict):
        return None
    if obj.get("format") in KINDS:
        return obj["format"]
    if "protocol" in obj and ("accuracy" in obj or "error" in obj):  # an svm result from before the format key
        return "gan-probe-svm"
    return _METRICS.get(obj.get("metric"))


def _is_figure(path: Path, head: bytes) -> bool:
    data = path.read_bytes()
    if head.startswith(b"\x89PNG"):
        return b"tEXtSoftware\x00" + FIGURE_MARK.encode() in data[:4096]
    return b"/Creator (" + FIGURE_MARK.encode() + b")" in data


def _is_stats(path: Path) -> bool:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            return {"mu", "sigma", "info"} <= set(data.files)
    except Exception:  # noqa: BLE001 - not an .npz of ours
        return False


def _is_checkpoint(path: Path) -> bool:
    return checkpoint_state(path) is not None


def checkpoint_state(path: str | os.PathLike) -> dict | None:
    """The contents of the gan-probe checkpoint ``path`` (tensors memory-mapped), ``None`` when it is not one."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - not a loadable checkpoint
        return None
    return state if isinstance(state, dict) and state.get("format") == "gan-probe-checkpoint" else None


def _unlisted_files(directory: Path) -> list[str]:
    """Files under a report directory that its report.json does not list (added by someone else)."""
    try:
        listed = set(json.loads((directory / "report.json").read_text()).get("files") or [])
    except (OSError, ValueError, AttributeError):
        listed = set()
    listed.add("report.json")
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")
                  if not p.is_dir() and str(p.relative_to(directory)) not in listed)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], Any]) -> Path:
    """Call ``writer(tmp_path)`` and atomically move the result to ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (keys kept in insertion order)."""
    text = json.dumps(obj, indent=2, default=_json_default) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")
