"""StepLoop: the bookkeeping that a search and a training share. A step counter over
epochs of a fixed number of steps, the cosine learning rate, records emitted to
subscribers and kept in `history`, and `run()` with Ctrl-C deferred to a step
boundary, `save()` to a run directory and `load_state_dict()`. Subclasses provide
`step()`, `state_dict()`, `_load_state()`, `genotype` and `_batches_per_pass()`."""
from __future__ import annotations

import contextlib
import math
import resource
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

from . import distributed
from .runs import RunDir, RunDirError

Record = Dict[str, object]
Callback = Callable[[Record], None]


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: max_memory_allocated since the last reset; CPU: the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: KiB


class Records(list):
    """A list of records with a one-line repr: how many, which steps and epochs."""

    def __repr__(self):
        if not self:
            return "<no records>"
        steps = [r["step"] for r in self if r["kind"] == "step"]
        epochs = [r["epoch"] for r in self if r["kind"] == "epoch"]
        parts = [f"{len(steps)} step records" + (f" (steps {steps[0]}..{steps[-1]})" if steps else "")]
        if epochs:
            parts.append(f"{len(epochs)} epoch records (epochs {epochs[0]}..{epochs[-1]})")
        return "<" + ", ".join(parts) + ">"

    _repr_pretty_ = lambda self, p, cycle: p.text(repr(self))   # IPython's display


def current_rss_mb() -> float:
    """The process's resident memory now (Linux /proc; 0.0 where it cannot be read)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2 ** 20
    except (OSError, ValueError, IndexError):
        return 0.0


@dataclass
class _Pending:
    """A step whose numbers are still on the device."""
    base: Record                       # host-side fields: kind, step, epoch, lr, ...
    values: Dict[str, torch.Tensor]    # device tensors, read at flush()
    host_seconds: float


class StepLoop:
    config = None                      # has epochs, steps_per_epoch, lr, lr_min, sync_every
    run_dir: Optional[RunDir] = None

    def _init_loop(self, callbacks, out) -> None:
        self.step_count = 0
        self.history: List[Record] = []
        self._subscribers: List[Callback] = list(callbacks)
        # data parallel (dartsviz.distributed): only rank 0 writes the run directory and tells
        # subscribers; it keeps a copy of each step boundary's state to save should a rank fail
        self._main = distributed.is_main()
        self.run_dir = RunDir(out) if out is not None and self._main else None
        self._keeps_boundary = distributed.world_size() > 1 and self.run_dir is not None
        self._last_good: Optional[dict] = None
        self.interrupted = False
        self._stop_requested = False
        self._pending: List[_Pending] = []

    def _batches_per_pass(self) -> int:
        raise NotImplementedError

    # -- bookkeeping -----------------------------------------------------------
    @property
    def steps_per_epoch(self) -> int:
        n = self._batches_per_pass()
        return min(n, self.config.steps_per_epoch) if self.config.steps_per_epoch else n

    @property
    def total_steps(self) -> int:
        return self.config.epochs * self.steps_per_epoch

    @property
    def epoch(self) -> int:
        """The epoch the next step belongs to (0-based)."""
        return self.step_count // self.steps_per_epoch

    @property
    def done(self) -> bool:
        return self.step_count >= self.total_steps

    def lr_at(self, epoch: int) -> float:
        """Cosine annealing from lr to lr_min over the configured epochs, per epoch."""
        return cosine_lr(self.config, epoch, self.config.epochs)

    # -- records -----------------------------------------------------------------
    def subscribe(self, fn: Callback) -> Callback:
        """Call fn(record) for every record from now on; returns fn (usable as a decorator)."""
        self._subscribers.append(fn)
        return fn

    def unsubscribe(self, fn: Callback) -> None:
        if fn in self._subscribers:
            self._subscribers.remove(fn)

    def _emit(self, record: Record) -> None:
        self.history.append(record)
        if not getattr(self, "_main", True):      # data parallel: ranks above 0 keep their history only
            return
        for fn in list(self._subscribers):
            fn(record)

    def _epoch_steps(self, epoch: int) -> List[Record]:
        return [r for r in self.history if r["kind"] == "step" and r["epoch"] == epoch]

    def _epoch_record(self, epoch: int, steps: List[Record]) -> Record:
        """The record that closes `epoch`, given its step records (evaluates the test split)."""
        raise NotImplementedError

    def _end_epoch(self, epoch: int) -> None:
        """Emit the epoch record, save the run directory."""
        self._emit(self._epoch_record(epoch, self._epoch_steps(epoch)))
        if self.run_dir is not None:
            self.save()

    # -- deferred records: a step's numbers stay on the device until flush() -----------
    def _defer(self, base: Record, values: Dict[str, torch.Tensor], host_seconds: float) -> Optional[Record]:
        """Queue the step just taken: `base` holds its host-side fields, `values` its device
        tensors. Flushes every `config.sync_every` steps and at the end of an epoch; returns
        the step's record when it was flushed, else None."""
        self._pending.append(_Pending(base, values, host_seconds))
        end_of_epoch = self.step_count % self.steps_per_epoch == 0
        record = None
        if end_of_epoch or len(self._pending) >= self.config.sync_every:
            record = self.flush()[-1]
        if end_of_epoch:
            self._end_epoch(base["epoch"])
        return record

    def _record(self, base: Record, values: Dict[str, torch.Tensor], seconds: float, peak_mem_mb: float) -> Record:
        """A step's record from its host-side fields and its values, now on the CPU (float64)."""
        raise NotImplementedError

    def flush(self) -> List[Record]:
        """Read the pending steps' numbers from the device in one transfer, emit their records."""
        pending, self._pending = self._pending, []
        if not pending:
            return []
        t = time.perf_counter()
        names = list(pending[0].values)
        shapes = [pending[0].values[n].shape for n in names]
        sizes = [s.numel() for s in shapes]
        packed = torch.cat([torch.cat([p.values[n].detach().double().flatten() for n in names])
                            for p in pending]).cpu()                  # the one host sync
        seconds = (sum(p.host_seconds for p in pending) + time.perf_counter() - t) / len(pending)
        peak = round(peak_memory_mb(self.device), 2)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        records = []
        for p, row in zip(pending, packed.split(sum(sizes))):
            values = {n: v.view(s) for n, v, s in zip(names, row.split(sizes), shapes)}
            record = self._record(p.base, values, seconds, peak)
            records.append(record)
            self._emit(record)
        self._append_history()
        return records

    HISTORY_EVERY_S = 2.0              # a run directory's history.jsonl grows at least this often

    def _append_history(self) -> None:
        """Append the new records to the run directory's history (at most every
        HISTORY_EVERY_S seconds; `save()` writes it in any case), so that `Replay(...,
        follow=True)` and `dartsviz plot --follow` see a running search between epochs."""
        if self.run_dir is None or not getattr(self, "_writes_history", True):
            return
        now, last = time.monotonic(), getattr(self, "_history_written_at", None)
        if last is not None and now - last < self.HISTORY_EVERY_S:
            return
        self._history_written_at = now
        self.run_dir.write_history(self.history)

    # -- many steps ----------------------------------------------------------------
    def pause(self) -> None:
        """Ask a running `run()` to stop after the current step."""
        self._stop_requested = True

    def run(self, epochs: Optional[int] = None, steps: Optional[int] = None) -> "Records":
        """Run `epochs` more epochs or `steps` more steps (default: to the configured end);
        returns the records it emitted (a list whose repr is one line, so a notebook cell
        ending in `search.run()` does not print the whole history).

        Ctrl-C (Kernel > Interrupt) stops at the next step boundary and leaves a state
        that `run()` continues; `self.interrupted` tells whether that happened.
        """
        if epochs is not None and steps is not None:
            raise ValueError("give epochs or steps, not both")
        if steps is None:
            if epochs is None:
                steps = max(0, self.total_steps - self.step_count)
            else:
                # to the end of the epoch `epochs` from now
                steps = (self.epoch + epochs) * self.steps_per_epoch - self.step_count
        start = len(self.history)
        self.interrupted = False
        self._stop_requested = False
        with self._deferred_interrupt():
            try:
                for _ in range(steps):
                    if self._stop_requested:
                        self.interrupted = True
                        break
                    if self._keeps_boundary:          # data parallel, rank 0: what a failed step goes back to
                        self._last_good = _clone_state(self.state_dict())
                    self.step()
                if self._stop_requested and not self.interrupted:
                    self.interrupted = True
            except (distributed.RankLost, KeyboardInterrupt) as e:
                if self._last_good is None:
                    raise
                self._save_last_good(e)
            finally:
                self._last_good = None
                self.flush()
        if self.run_dir is not None:
            self.save()
        return Records(self.history[start:])

    def _save_last_good(self, error: BaseException) -> None:
        """Data parallel, rank 0: a rank failed (or Ctrl-C came) inside a step. Go back to the
        last step boundary, save it, and raise again (RankLost saying where it was saved)."""
        state, self._last_good = self._last_good, None
        with distributed.shielded():                  # torchrun's SIGTERM waits for the checkpoint
            self._pending = [p for p in self._pending if p.base["step"] <= state["step"]]
            self.load_state_dict(state)
            self._restore_history(self.history)
            self.save()
        if isinstance(error, KeyboardInterrupt):
            raise error
        raise distributed.RankLost(f"{error}; the checkpoint of step {self.step_count} is saved in "
                                   f"{self.run_dir.path}") from None

    # -- state and run directory ---------------------------------------------------
    CHECKPOINT_KIND = ""               # "search" | "train": checked when a checkpoint loads
    NOUN = ""                          # for messages: "search" | "training"

    def _load_state(self, state: dict) -> None:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict()` saved; a checkpoint of another run raises RunDirError."""
        try:
            self._load_state(state)
            self.step_count = int(state["step"])
            set_rng_state(state["rng"])
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise RunDirError(f"checkpoint does not fit this {self.NOUN}: {str(e).splitlines()[0]}") from None

    def _write_extra(self, run_dir: RunDir) -> None:
        """Files beyond config, history, genotype and checkpoint (none here)."""

    def save(self, out=None) -> Path:
        """Write config, history, genotype and checkpoint to the run directory."""
        run_dir = RunDir(out) if out is not None else self.run_dir
        if run_dir is None:
            raise ValueError(f"no run directory: pass out= to {type(self).__name__} or to save()")
        self.flush()
        run_dir.write_config(self.config.to_dict())
        run_dir.write_history(self.history)
        run_dir.write_genotype(self.genotype)
        self._write_extra(run_dir)
        run_dir.save_checkpoint(self.state_dict(), kind=self.CHECKPOINT_KIND)
        return run_dir.path

    @staticmethod
    def _saved_history(run_dir: RunDir) -> List[Record]:
        """The records of a run directory being resumed: none when it has no history file;
        a damaged line (other than a last line cut short by a crash) raises RunDirError, so
        a resume never starts from an empty history and overwrites the saved one."""
        if not (run_dir.path / "history.jsonl").is_file():
            return []
        return run_dir.read_records()

    def _restore_history(self, history: List[Record]) -> None:
        """The saved records up to the checkpoint's step (a later, unsaved tail is dropped)."""
        self.history = [r for r in history if int(r.get("step", 0)) <= self.step_count]

    @contextlib.contextmanager
    def _deferred_interrupt(self):
        """Turn the first SIGINT into a stop request honoured at the next step boundary."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)

        def handler(signum, frame):
            if self._stop_requested:           # second Ctrl-C: stop now
                signal.signal(signal.SIGINT, previous or signal.default_int_handler)
                raise KeyboardInterrupt
            self._stop_requested = True

        signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def _clone_state(obj):
    """A copy of a state dict whose tensors are cloned (the live ones change in the next step)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone_state(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_clone_state(v) for v in obj)
    return obj


class TrainingLoop(StepLoop):
    """What a training from scratch adds to the loop (`train.Train`): the summary file and
    `resume`. Subclasses provide `_config_from_dict` and `_genotype_from_text`."""

    CHECKPOINT_KIND, NOUN = "train", "training"

    @classmethod
    def _config_from_dict(cls, d: dict):
        raise NotImplementedError

    @classmethod
    def _genotype_from_text(cls, text: str, config=None):
        raise NotImplementedError

    def summary(self) -> dict:
        raise NotImplementedError

    def _write_extra(self, run_dir: RunDir) -> None:
        import json
        from .runs import atomic_write_text
        atomic_write_text(run_dir.path / "summary.json", json.dumps(self.summary(), indent=1) + "\n")

    @classmethod
    def resume(cls, path, callbacks: tuple = (), data=None, **overrides):
        """Continue a training from its run directory (or a checkpoint file inside one)."""
        from .runs import load_checkpoint
        path = Path(path)
        if not path.exists():
            raise RunDirError(f"run directory {path} does not exist")
        run_dir = RunDir(path if path.is_dir() else path.parent)
        state = load_checkpoint(path, map_location="cpu", kind="train")
        history = cls._saved_history(run_dir)     # checked before anything is written
        try:
            config = cls._config_from_dict({**state["config"], **overrides})
            genotype = cls._genotype_from_text(state["genotype"], config)
        except (KeyError, TypeError) as e:
            raise RunDirError(f"checkpoint {path} holds no usable config: {e}") from None
        train = cls(genotype, config, out=run_dir.path, callbacks=callbacks, data=data)
        train.load_state_dict(state)
        train._restore_history(history)
        return train


def cosine_lr(config, epoch: int, epochs: int) -> float:
    """config.lr annealed to config.lr_min by a cosine over `epochs` epochs, at `epoch`."""
    e = min(epoch, epochs)
    return config.lr_min + 0.5 * (config.lr - config.lr_min) * (1 + math.cos(math.pi * e / epochs))


def rng_state() -> dict:
    """The global torch (and CUDA) random states, for a checkpoint."""
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def set_rng_state(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
