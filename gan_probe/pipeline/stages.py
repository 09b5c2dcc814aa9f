"""Cached, resumable stages.

A stage has a name, a JSON-serialisable description of its inputs (config values and the keys of the stages it
depends on) and a function that produces its outputs. Its record ``OUT/stages/<name>.json`` holds the input key,
the outputs and the wall time. Re-running skips a stage whose record matches its inputs and whose outputs still
exist; anything else is recomputed (and everything downstream, since their inputs include this stage's key).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..atomic import write_json
from ..provenance import sha256_json


@dataclass
class StageResult:
    name: str
    key: str
    outputs: dict[str, Any]
    seconds: float
    cached: bool
    skipped: str | None = None  # the reason when the stage could not run (e.g. weights unavailable)


@dataclass
class StageRunner:
    """Runs stages under ``root``; ``results`` keeps them in order for the report's provenance block."""

    root: Path
    log: Callable[[str], None] = print
    results: list[StageResult] = field(default_factory=list)

    def run(self, name: str, inputs: dict[str, Any], fn: Callable[[], dict[str, Any]]) -> StageResult:
        key = sha256_json(inputs)
        record_path = self.root / "stages" / f"{name}.json"
        record = _read(record_path)
        if record and record.get("key") == key and record.get("status") in ("done", "skipped") \
                and _outputs_exist(record.get("outputs", {})):
            result = StageResult(name, key, record["outputs"], record["seconds"], True, record.get("skipped"))
            self.log(f"[{name}] up to date ({record['seconds']:.1f}s when computed)")
        else:
            self.log(f"[{name}] running")
            t0 = time.perf_counter()
            outputs = fn()
            skipped = outputs.pop("_skipped", None)
            seconds = time.perf_counter() - t0
            write_json(record_path, {"name": name, "key": key, "status": "skipped" if skipped else "done",
                                     "skipped": skipped, "inputs": inputs, "outputs": outputs,
                                     "seconds": round(seconds, 3)})
            result = StageResult(name, key, outputs, seconds, False, skipped)
            self.log(f"[{name}] " + (f"skipped: {skipped}" if skipped else f"done in {seconds:.1f}s"))
        self.results.append(result)
        return result


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _outputs_exist(outputs: dict[str, Any]) -> bool:
    paths = [v for k, v in outputs.items() if k.endswith(("_path", "_dir")) and v]
    return all(Path(p).exists() for p in paths)
