"""A finished or running search as the views see it: label, config, records, genotype.

Run directories are read through `dartsviz.runs` (`RunDir.read_records()`, so files of
every schema load); a live search is followed through the records it pushes
(duck-typed, so this module never imports the search).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from ..records import EpochRecord, StepRecord
from ..runs import RunDir, RunDirError
from ..spaces import SearchSpace
from .records import step_records
from .spaceof import space_of


@dataclass
class RunData:
    label: str
    config: dict
    records: List                                       # StepRecord / EpochRecord, oldest first
    path: Optional[Path] = None
    search: object = field(default=None, repr=False)   # the live Search, when there is one

    @property
    def steps(self) -> List[StepRecord]:
        return step_records(self.records)

    @property
    def space(self) -> SearchSpace:
        if self.records:
            return space_of(self.records)
        return space_of(self.search)

    @property
    def genotype(self):
        """The genotype of the last step record (a live search before its first step: of its
        snapshot; a saved run without steps: its genotype file)."""
        if self.search is not None or self.steps:
            return self.latest().genotype
        if self.path is not None:
            return RunDir(self.path).read_genotype()
        raise RunDirError(f"run {self.label} has no steps and no genotype")

    def latest(self) -> StepRecord:
        """The last step record; for a live search with no steps yet, its snapshot."""
        steps = self.steps
        if steps:
            return steps[-1]
        if self.search is not None:
            return self.search.snapshot()
        raise RunDirError(f"run {self.label} has no step records")


def load_run(src, label: Optional[str] = None, follow: bool = True) -> RunData:
    """A RunData from a run directory (path or RunDir), a live Search, or a RunData.

    A live search's records are those it emitted so far, then (with `follow`) each one it
    pushes."""
    if isinstance(src, RunData):
        if label:
            src.label = label
        return src
    if hasattr(src, "subscribe") and hasattr(src, "snapshot"):
        cfg = src.config.to_dict()
        name = label or f"order {cfg.get('order')}, seed {cfg.get('seed')}"
        path = src.run_dir.path if getattr(src, "run_dir", None) is not None else None
        src.flush()
        run = RunData(name, cfg, list(src.history), path, search=src)
        if follow:
            src.subscribe(run.records.append)
        return run
    run_dir = src if isinstance(src, RunDir) else RunDir(src)
    run_dir.require()
    records = _read_records(run_dir)
    try:
        config = run_dir.read_config()
    except RunDirError:
        config = {}
    return RunData(label or run_dir.path.name, config, records, run_dir.path)


def _read_records(run_dir: RunDir) -> list:
    """The run's records; RunDirError when there are no step records, or a step line lacks
    its weights or genotype (e.g. a training's run directory)."""
    where = f"{run_dir.path}/history.jsonl"
    try:
        records = run_dir.read_records()
    except RunDirError:
        raise                                    # already one clear line
    except (ValueError, KeyError, TypeError) as e:
        raise RunDirError(f"{where}: a record does not load: {e}") from None
    steps = [r for r in records if (getattr(r, "kind", None) or r.get("kind")) == "step"]
    if not steps:
        raise RunDirError(f"{run_dir.path} holds no step records to show")
    bad = [i for i, r in enumerate(steps) if not isinstance(r, StepRecord) or r.genotype is None]
    if bad:
        raise RunDirError(f"{where}: step record {bad[0] + 1} lacks probs or genotype")
    return [r for r in records if isinstance(r, (StepRecord, EpochRecord))]
