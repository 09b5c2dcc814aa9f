"""One writer per output: an exclusive lock on a run directory, feature store, result file or pipeline directory.

A lock is ``fcntl.flock`` on a lock file, ``OUT/.gan-probe.lock`` for a directory and ``FILE.lock`` beside a
file, taken before anything is written and released (the lock file removed) on any exit. The file holds a JSON
record of its holder: pid, host, start time and command. A second writer gets one line naming the holder and
exits with status 2 (:class:`OutputLocked`). The kernel releases a flock when its process ends, however it ends,
so a lock never outlives its holder: a record left behind by a killed process is taken over, and the take-over
said on stderr. Directories the lock had to create are removed again if nothing else was written into them.

Under ``torchrun`` only rank 0 writes, so only rank 0 locks (pass the :class:`~gan_probe.distributed.DistContext`).

>>> with output_lock("runs/x", "--out"):             # doctest: +SKIP
...     ...                                           # write into runs/x
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import shlex
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .errors import ConfigError, GanProbeError

LOCK_NAME = ".gan-probe.lock"


class OutputLocked(GanProbeError):
    """Another process holds the lock of the output."""


@dataclass
class _Held:
    fd: int
    path: Path
    created: list[Path] = field(default_factory=list)
    count: int = 1


_HELD: dict[str, _Held] = {}  # lock files this process holds (re-entrant within the process)


def lock_file(target: str | os.PathLike, directory: bool) -> Path:
    """The lock file of ``target``: ``TARGET/.gan-probe.lock`` for a directory, ``TARGET.lock`` for a file."""
    target = Path(target)
    return target / LOCK_NAME if directory else target.with_name(target.name + ".lock")


def holder_record() -> dict[str, Any]:
    """What a lock file records about its holder: this process."""
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "command": _command()}


def _command() -> str:
    argv = list(sys.argv)
    if argv and (argv[0].endswith("gan-probe") or argv[0].endswith(os.path.join("gan_probe", "__main__.py"))):
        argv[0] = "gan-probe"
    return " ".join(shlex.quote(a) for a in argv)


class OutputLock:
    """The exclusive lock of one output (see the module docstring); a context manager.

    ``flag`` names the option in messages (``--out``, ``--json``); ``directory`` says whether ``target`` is a
    directory (locked from inside) or a file (locked beside it).
    """

    def __init__(self, target: str | os.PathLike, flag: str = "--out", directory: bool = True):
        self.target, self.flag, self.directory = Path(target), flag, directory
        self.path = lock_file(self.target, directory)
        self._key: str | None = None

    def acquire(self) -> None:
        target, flag = self.target, self.flag
        if self.directory and target.exists() and not target.is_dir():
            raise ConfigError(f"{flag} {target}: exists and is not a directory")
        if not self.directory and target.is_dir():
            raise ConfigError(f"{flag} {target}: is a directory; expected a file name")
        key = os.path.join(os.path.realpath(self.path.parent), self.path.name)
        held = _HELD.get(key)
        if held is not None:
            held.count += 1
            self._key = key
            return
        created: list[Path] = []
        for _ in range(50):  # retries only when another process removed the file or directory meanwhile
            created += _make_dirs(self.path.parent, flag, target)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:
                continue
            except OSError as exc:
                _remove_empty(created)
                raise ConfigError(f"{flag} {target}: cannot write there ({exc.strerror or exc})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                record = _read_record(fd, wait=1.0)
                os.close(fd)
                _remove_empty(created)
                raise OutputLocked(f"{flag} {target}: in use by another gan-probe process ({_describe(record)}); "
                                   f"wait for it to finish or choose another {flag}") from None
            except OSError as exc:  # a file system without locks
                os.close(fd)
                _remove_empty(created)
                raise ConfigError(f"{flag} {target}: cannot lock {self.path} ({exc.strerror or exc})") from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder we waited for removed this file when it finished: lock the new one
                os.close(fd)
                continue
            left = _read_record(fd)
            if left:
                print(f"gan-probe: note: {self.path}: took over the lock left by {_describe(left)}",
                      file=sys.stderr, flush=True)
            data = json.dumps(holder_record()).encode() + b"\n"
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            _HELD[key] = _Held(fd, self.path, created)
            self._key = key
            return
        _remove_empty(created)
        raise OutputLocked(f"{flag} {target}: could not take its lock {self.path} (it keeps being replaced)")

    def release(self) -> None:
        key, self._key = self._key, None
        held = _HELD.get(key) if key is not None else None
        if held is None:
            return
        held.count -= 1
        if held.count:
            return
        del _HELD[key]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(held.path)  # while still locked: a process waiting on this file sees it go and retries
        os.close(held.fd)
        _remove_empty(held.created)

    def __enter__(self) -> "OutputLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


@contextlib.contextmanager
def output_lock(target: str | os.PathLike, flag: str = "--out", directory: bool = True,
                ctx: Any = None) -> Iterator[OutputLock]:
    """Hold the lock of ``target`` for the ``with`` block; under torchrun (``ctx`` with several ranks) rank 0
    takes it and every rank raises its error."""
    lock = OutputLock(target, flag, directory)
    if ctx is None or not ctx.enabled:
        with lock:
            yield lock
        return
    from .distributed import main_only

    main_only(lock.acquire, ctx)
    try:
        yield lock
    finally:
        if ctx.is_main:
            lock.release()


def _make_dirs(directory: Path, flag: str, target: Path) -> list[Path]:
    """Create ``directory`` and its missing parents; returns those created, outermost first."""
    missing = []
    d = directory
    while not d.exists():
        missing.append(d)
        if d.parent == d:
            break
        d = d.parent
    created = []
    for d in reversed(missing):
        try:
            d.mkdir()
            created.append(d)
        except FileExistsError:
            if not d.is_dir():
                _remove_empty(created)
                raise ConfigError(f"{flag} {target}: cannot write there ({d} is not a directory)") from None
        except OSError as exc:
            _remove_empty(created)
            raise ConfigError(f"{flag} {target}: cannot write there ({exc.strerror or exc})") from None
    return created


def _remove_empty(created: list[Path]) -> None:
    """Remove the directories a lock created (innermost first) that nothing else was written into."""
    for d in reversed(created):
        try:
            d.rmdir()
        except OSError:
            break


def _read_record(fd: int, wait: float = 0.0) -> dict[str, Any] | None:
    """The holder's record (``None``: empty or unreadable); ``wait``: seconds to wait for a holder that has just
    taken the lock to write it."""
    deadline = time.monotonic() + wait
    while True:
        try:
            data = os.pread(fd, 65536, 0)
            record = json.loads(data) if data.strip() else None
        except (OSError, ValueError):
            record = None
        if isinstance(record, dict) or time.monotonic() >= deadline:
            return record if isinstance(record, dict) else None
        time.sleep(0.02)


def _describe(record: dict[str, Any] | None) -> str:
    if not record:
        return "a process that has not recorded itself yet"
    pid, host = record.get("pid"), record.get("host")
    text = f"pid {pid} on {host}, started {record.get('started')}"
    if host == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
        text += ", no longer running"
    command = str(record.get("command") or "")
    if command:
        text += f": {command[:100]}{'...' if len(command) > 100 else ''}"
    return text


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
