"""Resumable stages: each records what it produced and from which inputs, so a re-run starts at the
first stage whose inputs changed.

A stage's fingerprint hashes its own inputs (settings, file stamps) together with the fingerprint
of the stage before it, so a change anywhere upstream re-runs everything downstream.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salesforecast.offline.files import write_json


def file_stamp(path: Path) -> dict[str, Any]:
    """Cheap identity of an input file: size and modification time (content hashes are slow for data)."""
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def fingerprint(inputs: Any, upstream: str = "") -> str:
    payload = json.dumps({"inputs": inputs, "upstream": upstream}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class Stage:
    name: str
    title: str
    run: Callable[[], dict[str, Any]]  # does the work; returns a summary to record
    inputs: Callable[[], Any] = dict  # what the stage depends on besides the stages before it
    outputs: Callable[[], list[Path]] = list  # files that must still exist to skip the stage


@dataclass
class StageResult:
    name: str
    title: str
    seconds: float
    skipped: bool
    summary: dict[str, Any] = field(default_factory=dict)


class StageRunner:
    """Runs stages in order, skipping those whose record matches their fingerprint."""

    def __init__(self, records_dir: Path, force: bool = False) -> None:
        self.records_dir = records_dir
        self.force = force

    def _record_path(self, stage: Stage) -> Path:
        return self.records_dir / f"{stage.name}.json"

    def _recorded(self, stage: Stage, key: str) -> dict[str, Any] | None:
        path = self._record_path(stage)
        if self.force or not path.is_file():
            return None
        record = json.loads(path.read_text())
        if record.get("fingerprint") != key or not all(p.exists() for p in stage.outputs()):
            return None
        return record

    def run(
        self, stages: list[Stage], on_start: Callable[[Stage, bool], None] | None = None
    ) -> list[StageResult]:
        results: list[StageResult] = []
        upstream = ""
        rerun = False
        for stage in stages:
            key = fingerprint(stage.inputs(), upstream)
            record = None if rerun else self._recorded(stage, key)
            if on_start:
                on_start(stage, record is not None)
            if record is not None:
                results.append(StageResult(stage.name, stage.title, 0.0, True, record.get("summary", {})))
            else:
                rerun = True  # everything after a re-run stage runs again
                started = time.perf_counter()
                summary = stage.run()
                seconds = time.perf_counter() - started
                write_json(
                    self._record_path(stage),
                    {
                        "stage": stage.name,
                        "fingerprint": key,
                        "upstream": upstream,
                        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                        "seconds": round(seconds, 2),
                        "summary": summary,
                    },
                )
                results.append(StageResult(stage.name, stage.title, seconds, False, summary))
            upstream = key
        return results
