"""Run statistics from a search's records, the one definition that the views (viz/) and the
experiments (dartsviz.experiments) share: median seconds per step with the warm-up
steps left out, peak memory, totals, and the collapse diagnostics of the last step."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from .bilevel import ORDERS
from .records import EpochRecord, StepRecord


def _steps(records: Sequence) -> list:
    return [r for r in records if isinstance(r, StepRecord)]


def arch_steps(steps: Sequence, order: Optional[int] = None) -> list:
    """The step records that update the architecture (warm-up steps, `arch_updated` False,
    left out), only those of `order` when given."""
    return [r for r in _steps(steps) if r.arch_updated and (order is None or r.order == order)]


def median_seconds(steps: Sequence, order: Optional[int] = None) -> Optional[float]:
    """Median seconds per step over `arch_steps(steps, order)`: the one definition of every
    view and report; None when there is no such step."""
    secs = [r.seconds for r in arch_steps(steps, order)]
    return float(np.median(secs)) if secs else None


def peak_memory(steps: Sequence) -> Tuple[Optional[float], str]:
    """(MB, what they measure) of a run, from its step records: on CUDA the peak allocated
    over the steps; elsewhere the growth of the process's peak RSS over its resident memory
    before the search was built (or, for runs saved without it, over the first step's), never
    below 0: the kernel's peak-RSS and current-RSS counters can disagree by a fraction of a MB,
    so a run that grew nothing could read slightly negative. (None, "no steps") without steps."""
    steps = _steps(steps)
    if not steps:
        return None, "no steps"
    peaks = [float(r.peak_mem_mb or 0.0) for r in steps]
    if steps[-1].device == "cuda":
        return max(peaks), "CUDA peak allocated"
    base = float(getattr(steps[0], "mem_baseline_mb", 0.0) or 0.0)
    if base > 0:
        return max(0.0, max(peaks) - base), "peak RSS growth over the idle process"
    return max(peaks) - peaks[0], "peak RSS growth after step 1"


def record_series(steps: Sequence, field: str) -> Tuple[list, list]:
    """(steps, values) of the step records whose `field` is not None."""
    pairs = [(r.step, getattr(r, field, None)) for r in steps]
    pairs = [(s, v) for s, v in pairs if v is not None]
    return [s for s, _ in pairs], [float(v) for _, v in pairs]


def cost_summary(steps: Sequence) -> dict:
    """Median seconds per step (overall and per order; warm-up steps left out), total seconds,
    memory (`peak_memory`), device."""
    steps = _steps(steps)
    memory_mb, memory_what = peak_memory(steps)
    out = {"steps": len(steps), "warmup_steps": len(steps) - len(arch_steps(steps)),
           "seconds_total": float(sum(r.seconds for r in steps)),
           "peak_mem_mb": float(max(r.peak_mem_mb or 0 for r in steps)) if steps else 0.0,
           "memory_mb": memory_mb, "memory_what": memory_what,
           "device": steps[-1].device if steps else "?"}
    for o in ORDERS:
        out[f"median_s_order{o}"] = median_seconds(steps, o)
    out["median_s"] = median_seconds(steps)
    return out


def collapse_summary(records: Sequence) -> dict:
    """The collapse diagnostics of a run's last step: parameter-free ops kept in the derived
    normal cell, the largest none and skip weights, and the last measured lambda_max (with
    its step); None where the records carry none. `early_stop`: (stopped after epoch, kept
    epoch) of a DARTS-ES stop, else None."""
    steps = _steps(records)
    last = steps[-1] if steps else None
    x, lam = record_series(steps, "lambda_max")
    stops = [r for r in records if isinstance(r, EpochRecord) and r.early_stop_epoch is not None]
    return {"param_free_ops": getattr(last, "param_free_ops", None), "max_none": getattr(last, "max_none", None),
            "max_skip": getattr(last, "max_skip", None), "lambda_max": lam[-1] if lam else None,
            "lambda_step": x[-1] if x else None,
            "early_stop": (stops[0].epoch, stops[0].early_stop_epoch) if stops else None}


def collapse_heading(space) -> str:
    """What a run's `param_free_ops` counts, in the words of its space: "parameter-free ops (normal
    cell)", or "identity edges (recurrent cell)" where every op has weights and only the skip op marks
    collapse."""
    what = f"{space.skip_op} edges" if space.skip_op and not space.parameter_free else "parameter-free ops"
    return f"{what} ({space.cell_title(space.cell_types[0])})"
