"""Per-sample evaluation work split across processes with accelerate, gathered back in sample order.

Large evaluation sets are dominated by per-sample network calls (captioning, CLIP/DINO/Inception/I3D features, VQA,
optical flow), while the set-level numbers (FID, FVD, KL, the faithfulness choices) are cheap once the features
exist. So both entry points run the per-sample part as::

    features = map_in_shards(lambda chunk: embed(chunk), samples)   # every process, its own contiguous shard

under ``accelerate launch -m eval.i2g ...``: each process takes the shard accelerate's ``split_between_processes``
would give it (contiguous, the first ``len % num_processes`` processes one item more), runs ``work`` on it, and the
results are gathered with :func:`accelerate.utils.gather_object` tagged with their global index, so the main process
sees the whole list in the original order whatever order the shards arrive in. The main process alone then computes
the set-level metrics and writes the report (:func:`is_main_process`).

With one process (plain ``python -m``) ``work`` runs once on the whole list and nothing is gathered: results are
exactly those of an undistributed run. ``num_processes`` / ``process_index`` / ``gather`` can be given explicitly,
which is how the tests simulate several processes in one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["is_main_process", "map_in_shards", "process_device", "reorder_gathered", "shard_range"]

T = TypeVar("T")
R = TypeVar("R")


def _state() -> Any:
    """accelerate's process state (a singleton; without ``accelerate launch`` it is one process)."""
    from accelerate import PartialState

    return PartialState()


def shard_range(total: int, num_processes: int, process_index: int) -> range:
    """Indices of ``total`` items that process ``process_index`` of ``num_processes`` handles.

    The split of ``accelerate``'s ``split_between_processes``: contiguous shards, the first ``total % num_processes``
    processes one item more than the others (so the shards in process order are the ordered whole).
    """
    if num_processes < 1 or not 0 <= process_index < num_processes:
        raise ValueError(f"process {process_index} of {num_processes} does not exist")
    per_process, extras = divmod(total, num_processes)
    start = process_index * per_process + min(process_index, extras)
    return range(start, start + per_process + (1 if process_index < extras else 0))


def reorder_gathered(tagged: Sequence[tuple[int, R]], total: int) -> list[R]:
    """The gathered ``(index, result)`` pairs of every process as one list in index order, each index exactly once."""
    ordered: list[Any] = [None] * total
    seen = [False] * total
    for index, result in tagged:
        if not 0 <= index < total or seen[index]:
            raise ValueError(f"the gathered results hold sample {index} twice or out of range (of {total})")
        ordered[index], seen[index] = result, True
    if not all(seen):
        raise ValueError(f"the gathered results miss sample {seen.index(False)} of {total}")
    return ordered


def map_in_shards(
    work: Callable[[list[T]], Sequence[R]],
    items: Sequence[T],
    *,
    num_processes: int | None = None,
    process_index: int | None = None,
    gather: Callable[[list[tuple[int, R]]], list[tuple[int, R]]] | None = None,
) -> list[R]:
    """``work`` on this process's shard of ``items`` (one result per item), gathered into the ordered whole.

    ``work`` receives a list and must return one result per item, in order; it is called once per process (not at
    all on an empty shard), so it can batch its network calls as it likes. Every process must call this with the
    same ``items`` in the same order (the gather is collective). Returns the results of all items on every process.
    """
    if num_processes is None or process_index is None:
        state = _state()
        num_processes, process_index = state.num_processes, state.process_index
    span = shard_range(len(items), num_processes, process_index)
    local = list(work([items[i] for i in span])) if len(span) else []
    if len(local) != len(span):
        raise ValueError(f"the per-sample work returned {len(local)} results for {len(span)} samples")
    if num_processes == 1:
        return local
    if gather is None:
        from accelerate.utils import gather_object

        gather = gather_object
    return reorder_gathered(gather(list(zip(span, local))), len(items))


def is_main_process() -> bool:
    """Whether this process computes the set-level metrics and writes the report (always, without a launcher)."""
    return bool(_state().is_main_process)


def process_device(requested: str | None) -> str | None:
    """The device this process's networks use: ``requested`` if given; under a multi-process launch each process's
    own accelerator (``cuda:<local rank>``), so the processes do not all load onto the first GPU; else ``None``
    (the networks' own default, cuda when present)."""
    if requested is not None:
        return requested
    state = _state()
    return str(state.device) if state.num_processes > 1 else None
