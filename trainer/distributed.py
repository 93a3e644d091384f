"""The population split across ``torch.distributed`` ranks; only fitness values travel.

Every rank holds the same centre weights and regenerates the same noise from (seed, generation),
so a rank needs nothing from the others but the fitness of the members it did not roll out. Rank
k rolls out and scores a contiguous block of members; one ``all_gather`` of a small float tensor
gives every rank the whole (P, G) fitness matrix, and every rank applies the identical update.
Launch with ``torchrun --nproc_per_node=N ...``: gloo on CPU, nccl on GPU.
"""

from __future__ import annotations

import gc
import os
import sys
import warnings
import weakref
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistributedContext", "PeerFailure", "init_distributed", "member_block"]


class PeerFailure(RuntimeError):
    """Another rank failed while this one waited for its fitness values."""


def member_block(population_size: int, rank: int, world_size: int) -> list[int]:
    """The members rank ``rank`` rolls out: a contiguous block, sizes differing by at most one."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank={rank} must be in [0, world_size={world_size})")
    if population_size < world_size:
        raise ValueError(f"population_size={population_size} is smaller than the {world_size} ranks: "
                         "use at least one member per rank (raise population_size or use fewer processes)")
    start = rank * population_size // world_size
    stop = (rank + 1) * population_size // world_size
    return list(range(start, stop))


@dataclass
class DistributedContext:
    """This process's place in the run. ``world_size == 1`` is the plain single-process run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def members(self, population_size: int) -> list[int]:
        """This rank's members (every member in a single process)."""
        return member_block(population_size, self.rank, self.world_size)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def _device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")

    def gather_fitness(self, local: torch.Tensor | None, population_size: int) -> torch.Tensor:
        """The (P, C) fitness matrix of the whole population from each rank's (m_k, C) block.

        ``local`` None says this rank failed: every rank then raises :class:`PeerFailure` instead
        of waiting forever in the collective (the failing rank raises its own error first).
        Values keep float64 and NaN (a missing fitness) exactly.
        """
        mine = self.members(population_size)
        if not self.enabled:
            if local is None:
                raise PeerFailure("fitness is missing (local scoring failed)")
            return local.to(torch.float64).cpu()
        blocks = [member_block(population_size, r, self.world_size) for r in range(self.world_size)]
        width = self._agree_width(None if local is None else local.shape[1])
        rows = max(len(b) for b in blocks)
        # (rows + 1, width): one status row first (1 ok, 0 failed), then the members, NaN-padded
        send = torch.full((rows + 1, width), float("nan"), dtype=torch.float64)
        send[0] = 0.0 if local is None else 1.0
        if local is not None:
            if local.shape[0] != len(mine):
                raise ValueError(f"rank {self.rank} scored {local.shape[0]} members but owns {len(mine)}")
            send[1 : 1 + len(mine)] = local.to(torch.float64).cpu()
        device = self._device()
        received = [torch.empty_like(send, device=device) for _ in range(self.world_size)]
        dist.all_gather(received, send.to(device))
        received = [t.cpu() for t in received]
        failed = [r for r, t in enumerate(received) if t[0, 0] != 1.0]
        if failed:
            raise PeerFailure(f"rank(s) {failed} failed during this generation; see their error above")
        return torch.cat([t[1 : 1 + len(b)] for t, b in zip(received, blocks)])

    def _agree_width(self, width: int | None) -> int:
        """The column count every rank uses (a failed rank may not know it)."""
        t = torch.tensor([width or 0], dtype=torch.int64, device=self._device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return max(1, int(t.item()))

    def broadcast_object(self, obj):
        """``obj`` of rank 0 on every rank (small Python values only, e.g. a resume path)."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self._device())
        return box[0]

    def shutdown(self) -> None:
        """Leave the process group and tear its backend down before this function returns.

        Tearing down means the C++ process group is freed, which (for gloo) joins its worker
        threads. That must happen here, while the interpreter is fully alive: a gloo worker drops
        its last reference to a finished collective a little *after* ``wait()`` has returned, and
        freeing that work's tensors decrefs their Python objects, which needs the GIL. If the group
        survives until interpreter finalisation, such a worker asks for the GIL while Python is
        finalising; CPython then ends the thread with ``pthread_exit``, whose unwinding hits the
        work's ``noexcept`` destructor, and the process dies with "terminate called without an
        active exception" (SIGABRT) after all its work was done.
        """
        if not (self.enabled and dist.is_initialized()):
            return
        # On a clean exit every rank waits for the others before tearing down, so that no rank
        # closes its connections while a peer still talks to it. While an exception propagates
        # (called from a `finally`), a peer may be dead, and a barrier would wait for it.
        if sys.exc_info()[0] is None:
            dist.barrier()
        group = weakref.ref(dist.group.WORLD)
        # destroy_process_group drops torch's own references; the C++ group (and its threads) goes
        # when the last Python reference does. Its binding releases the GIL before the C++
        # destructor runs, so a worker still finishing a collective can take the GIL and end.
        dist.destroy_process_group()
        if group() is not None:
            gc.collect()  # a reference cycle may still hold it
        if group() is not None:
            warnings.warn(
                "the default process group is still referenced after destroy_process_group, so its "
                "backend threads outlive shutdown; the process may abort at exit ('terminate called "
                "without an active exception'). Something captured `dist.group.WORLD` (e.g. a module "
                "default argument evaluated after init_process_group) and keeps it alive.",
                RuntimeWarning, stacklevel=2)


def init_distributed(device: str | None = None) -> DistributedContext:
    """Join the process group that ``torchrun`` (or any launcher setting ``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``) describes; a single-process context
    when ``WORLD_SIZE`` is unset or 1.

    ``device`` picks the backend: nccl for a CUDA device (each rank on ``cuda:LOCAL_RANK``), gloo
    otherwise. Returns the context; the device string to use is ``cuda:<local_rank>`` under nccl.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistributedContext()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    use_cuda = device is not None and device.startswith("cuda") and torch.cuda.is_available()
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        # torch.distributed.nn.functional binds `group=group.WORLD` as default arguments when it
        # is imported. Imported after init_process_group (transformers' model modules pull it in
        # through torch.distributed.fsdp), its ten functions capture the default group and keep
        # it alive after destroy_process_group, and with it the gloo worker threads (see
        # DistributedContext.shutdown for why those must not reach interpreter exit). Imported
        # now, before there is a group, the defaults are None, which means the default group.
        import torch.distributed.nn.functional as _  # noqa: F401
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistributedContext(rank=rank, world_size=world, local_rank=local_rank, backend=backend)
