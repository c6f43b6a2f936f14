"""Data-parallel search and training on torch.distributed, launched by torchrun.

    torchrun --standalone --nproc_per_node 4 -m dartsviz search --preset paper --device cuda

Every rank holds the whole model and draws the same seeded batch of B; rank r computes on
its contiguous B/W rows (`shard`), and every gradient is averaged over the ranks
(`all_reduce_mean`, one collective per call), so every rank takes the same step: the
single-process step on the whole batch wherever BatchNorm's batch statistics do not depend
on how the batch is split. Only rank 0 writes the run directory and tells subscribers. A
world of one process (or no process group) changes nothing: every helper is then the identity.

Not DistributedDataParallel's wrapper: the architecture step takes gradients with
`torch.autograd.grad` at substituted weights (w', w +- eps v), which DDP's reducer never
sees; the averaging is DDP's arithmetic (sum, then divide by W), done where each gradient is.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import threading
from datetime import timedelta
from typing import Dict, List, Sequence, Tuple

import torch
import torch.distributed as dist

ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")      # what torchrun sets for every process
DEFAULT_TIMEOUT_S = 600.0                       # a rank waits this long for the others, then gives up


class RankLost(RuntimeError):
    """Another rank stopped, timed out, or the launcher stopped this one: the run cannot go on."""


def launched() -> bool:
    """Whether this process was started by torchrun (its RANK, WORLD_SIZE and LOCAL_RANK are set)."""
    return all(k in os.environ for k in ENV)


def initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if initialized() else 1


def local_rank() -> int:
    """This process's index on its machine: torchrun's LOCAL_RANK, else the rank modulo the GPUs."""
    if "LOCAL_RANK" in os.environ:
        return int(os.environ["LOCAL_RANK"])
    n = torch.cuda.device_count() if torch.cuda.is_available() else 1
    return rank() % max(1, n)


def is_main() -> bool:
    """Rank 0: the process that writes the run directory and emits records."""
    return rank() == 0


def init(device=None, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Join torchrun's process group, once: nccl for CUDA tensors and gloo for CPU tensors
    (gloo alone where there is no CUDA or `device` is cpu), each collective given up after
    `timeout_s` seconds, and SIGTERM (how torchrun stops the others when a rank dies) turned
    into RankLost. Returns whether it initialised the group (False: not under torchrun, or done)."""
    if not math.isfinite(timeout_s) or timeout_s <= 0:
        raise ValueError(f"the process group timeout must be a finite number of seconds above 0, got {timeout_s}")
    if not launched() or initialized():
        return False
    if not dist.is_available():
        raise RankLost("this PyTorch build has no torch.distributed; run on one process")
    cuda = torch.cuda.is_available() and not str(device or "auto").startswith("cpu")
    if cuda:
        torch.cuda.set_device(local_rank())
    backend = "cpu:gloo,cuda:nccl" if cuda and dist.is_nccl_available() else "gloo"
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as e:      # rendezvous: an unreachable host, a port in use
        raise RankLost(f"rank {os.environ['RANK']}: could not join the other ranks "
                       f"({(str(e).strip().splitlines() or [type(e).__name__])[0][:160]})") from None
    _install_sigterm()
    return True


def shutdown() -> None:
    """Leave the process group (after the last collective)."""
    if initialized():
        dist.destroy_process_group()


def rank_device(dev: torch.device) -> torch.device:
    """The device of this rank: with several processes, CUDA is cuda:LOCAL_RANK ('cuda:N' for
    another N is refused); anything else as given."""
    if dev.type != "cuda" or world_size() == 1:
        return dev
    mine = local_rank()
    if dev.index is not None and dev.index != mine:
        raise ValueError(f"rank {rank()} runs on cuda:{mine} (its LOCAL_RANK); pass --device cuda, not {dev}")
    return torch.device("cuda", mine)


# -- the batch: one seeded order, a slice per rank ---------------------------------------------
def check_batch_size(n: int, what: str = "batch_size") -> None:
    """Raise ValueError unless a batch of `n` splits evenly over the ranks."""
    w = world_size()
    if w > 1 and n % w:
        raise ValueError(f"{what} {n} does not split over {w} ranks: use a multiple of {w} "
                         f"(the batch is the whole batch; each rank takes batch/{w} rows)")


def shard(batch: Sequence, dim: int = 0) -> tuple:
    """This rank's contiguous rows of a batch that every rank drew alike: each tensor split
    along `dim` into world_size equal parts (other items pass through). One rank: the batch."""
    w = world_size()
    if w == 1:
        return batch
    r, out = rank(), []
    for t in batch:
        if isinstance(t, torch.Tensor) and t.dim() > dim:
            n = t.shape[dim]
            check_batch_size(n, "a batch of")
            t = t.narrow(dim, r * (n // w), n // w)          # (n/W, ...) along dim, a view
        out.append(t)
    return tuple(out)


def seed_rank(seed: int, step: int) -> None:
    """Ranks above 0 draw their per-sample randomness (drop-path, dropout) from a stream of
    their own, seeded by (seed, step, rank); rank 0 keeps the checkpointed one. One rank: nothing."""
    if world_size() > 1 and rank() > 0:
        torch.manual_seed((int(seed) * 1_000_003 + int(step) * 7_919 + rank()) % (2 ** 63))


# -- averaging -------------------------------------------------------------------------------
def all_reduce_mean(tensors: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """The mean over the ranks of each tensor, as new tensors (views of one flat buffer per
    dtype and device: one collective for the usual one-dtype list). One rank: the tensors."""
    tensors = list(tensors)
    w = world_size()
    if w == 1 or not tensors:
        return tensors
    out: List[torch.Tensor] = [None] * len(tensors)       # type: ignore[list-item]
    groups: Dict[Tuple[torch.dtype, torch.device], List[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault((t.dtype, t.device), []).append(i)
    for idx in groups.values():
        flat = torch.cat([tensors[i].detach().reshape(-1) for i in idx])       # (sum of numels,)
        _collective(dist.all_reduce, flat)
        flat.div_(w)
        for i, part in zip(idx, flat.split([tensors[i].numel() for i in idx])):
            out[i] = part.view_as(tensors[i])
    return out


def all_reduce_grads(params) -> None:
    """Average the `.grad` of `params` over the ranks, in one collective (those without one skipped)."""
    ps = [p for p in params if p.grad is not None]
    if world_size() > 1 and ps:
        for p, g in zip(ps, all_reduce_mean([p.grad for p in ps])):
            p.grad = g


def barrier() -> None:
    """Wait for every rank (a one-number all-reduce on the CPU: gloo, whatever the GPU backend)."""
    if world_size() > 1:
        _collective(dist.all_reduce, torch.zeros(1))


@contextlib.contextmanager
def main_first(enabled: bool = True):
    """Rank 0 runs the block first, the others after it (e.g. a download into a shared folder)."""
    first = enabled and world_size() > 1
    if first and not is_main():
        barrier()
    yield
    if first and is_main():
        barrier()


def sync_batchnorm(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model with SyncBatchNorm for every BatchNorm: batch statistics over all ranks (CUDA only)."""
    check_sync_bn(device)
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)


def check_sync_bn(device: torch.device) -> None:
    if torch.device(device).type != "cuda":
        raise ValueError("sync_bn needs CUDA (SyncBatchNorm has no CPU kernels); drop --sync-bn on the CPU")


# -- failures ------------------------------------------------------------------------------------
_lost = ""                  # why the group is unusable, once a collective failed
_shield = 0                 # > 0: SIGTERM is not raised (a checkpoint being written)


def _collective(fn, *args) -> None:
    """Run a collective; any failure (a rank died, a timeout) is RankLost, and so is every later one."""
    global _lost
    if _lost:
        raise RankLost(_lost)
    try:
        fn(*args)
    except RankLost:                     # the launcher's SIGTERM, raised inside the wait
        raise
    except RuntimeError as e:            # DistBackendError, gloo's "Connection closed by peer", timeouts
        text = re.sub(r"^\[[^\]]*\]\s*", "", (str(e).strip().splitlines() or [type(e).__name__])[0])
        text = text.split(". ")[0][:160]           # gloo: "Connection closed by peer [host]:port"
        _lost = f"rank {rank()} of {world_size()}: another rank stopped or timed out ({text})"
        raise RankLost(_lost) from None


def _on_sigterm(signum, frame) -> None:
    """torchrun's SIGTERM: RankLost, once (not while a checkpoint is written, nor after a loss
    was already raised: this rank is then on its way out)."""
    global _lost
    if not _shield and not _lost:
        _lost = f"rank {rank()} of {world_size()}: stopped by the launcher (another rank failed)"
        raise RankLost(_lost)


def _install_sigterm() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


@contextlib.contextmanager
def shielded():
    """Inside, a SIGTERM from the launcher waits (torchrun allows 30 s before SIGKILL): the
    last step's checkpoint gets written."""
    global _shield
    _shield += 1
    try:
        yield
    finally:
        _shield -= 1


def resolve_device(name: str) -> torch.device:
    """The device `name` means here; under torchrun with several processes CUDA is cuda:LOCAL_RANK."""
    if name == "auto":
        return rank_device(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for but CUDA is not available (try --device cpu)")
    return rank_device(dev)
