"""A finished or running search as the views see it: label, config, records, genotype.

Run directories are read through `dartsviz.runs` only; a live search is read through its
`history`, `config` and `genotype` (duck-typed, so this module never imports the search).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from ..genotype import Genotype
from ..runs import RunDir, RunDirError
from .records import genotype_of, step_records


@dataclass
class RunData:
    label: str
    config: dict
    history: List[dict]
    path: Optional[Path] = None
    search: object = field(default=None, repr=False)   # the live Search, when there is one

    @property
    def steps(self) -> List[dict]:
        return step_records(self.history)

    @property
    def genotype(self) -> Genotype:
        if self.search is not None:
            return self.search.genotype
        steps = self.steps
        if steps:
            return genotype_of(steps[-1])
        if self.path is not None:
            return RunDir(self.path).read_genotype()
        raise RunDirError(f"run {self.label} has no steps and no genotype")

    def latest(self) -> dict:
        """The last step record; for a live search with no steps yet, one made from its weights."""
        steps = self.steps
        if steps:
            return steps[-1]
        if self.search is not None:
            s = self.search
            return {"kind": "step", "step": s.step_count, "epoch": s.epoch, "order": s.config.order,
                    "probs": {k: v.tolist() for k, v in s.model.probs().items()},
                    "genotype": s.genotype.to_text()}
        raise RunDirError(f"run {self.label} has no step records")

    def refresh(self) -> "RunData":
        """Re-read a live search's history (a list that grows in place, so usually a no-op)."""
        if self.search is not None:
            self.history = self.search.history
            self.config = self.search.config.to_dict()
        return self


def load_run(src, label: Optional[str] = None) -> RunData:
    """A RunData from a run directory (path or RunDir), a live Search, or a RunData."""
    if isinstance(src, RunData):
        if label:
            src.label = label
        return src
    if hasattr(src, "history") and hasattr(src, "config") and hasattr(src, "step"):
        cfg = src.config.to_dict()
        name = label or f"order {cfg.get('order')}, seed {cfg.get('seed')}"
        path = src.run_dir.path if getattr(src, "run_dir", None) is not None else None
        return RunData(name, cfg, src.history, path, search=src)
    run_dir = src if isinstance(src, RunDir) else RunDir(src)
    run_dir.require()
    history = run_dir.read_history()
    try:
        config = run_dir.read_config()
    except RunDirError:
        config = {}
    if not step_records(history):
        raise RunDirError(f"{run_dir.path} holds no step records to show")
    bad = [i for i, r in enumerate(step_records(history)) if "probs" not in r or "genotype" not in r]
    if bad:
        raise RunDirError(f"{run_dir.path}/history.jsonl: step record {bad[0] + 1} lacks probs or genotype")
    return RunData(label or run_dir.path.name, config, history, run_dir.path)
