"""Anchors in the neighbour chain, and recipes drawn in overlapping windows (one plan for every caller).

An *anchor* is an image of the chain whose clean latent x0 is known: the user's kitchen photo placed before step 1
(the *reference*), a step the user keeps from an earlier run, or a step that an earlier window already drew. At
every denoising step its latent is set to x0 noised to the current timestep with one fixed noise draw, and the
UNet's prediction for it is thrown away: it is in the batch only so that its neighbours can attend to its keys and
values. Sampling never changes it.

The chain is the reference (if any) followed by the steps. A *global anchor* (the reference or the first step) is
one more image that every image attends to, as a fourth slice of keys, against the drift a neighbour-only chain
allows over a long recipe.

When the chain has more images than one batch may hold (``max_batch``), it is drawn in windows of consecutive
images that overlap by two: each window *decides* every image but its last (the last one lacks its next
neighbour, so the next window draws it again), and the next window starts at the last image decided, carried as
an anchor. So step k is always decided in a batch that holds steps k-1 and k+1, and the cost of a window never
depends on the recipe's length.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from ..errors import InvalidInputError
from .attention import ChainLayout
from .inputs import ANCHOR_CHOICES, check_anchor_options

__all__ = ["ANCHOR_CHOICES", "REFERENCE", "ChainPlan", "Window", "check_anchor_options", "plan_chain"]

REFERENCE = -1  # the chain index of the reference photo, as opposed to step indices 0..n-1


@dataclass(frozen=True)
class Window:
    """One batch of the plan: which chain items it holds, how they attend, and which of them it decides.

    ``items`` are step indices (0-based) or :data:`REFERENCE`, in batch order. ``anchored[j]`` says whether
    item j's latent is set from a known x0 every step. ``decides`` are the step indices whose final latents
    this window produces.
    """

    items: tuple[int, ...]
    anchored: tuple[bool, ...]
    layout: ChainLayout
    decides: tuple[int, ...]


@dataclass(frozen=True)
class ChainPlan:
    """Everything a run with anchors needs: the windows in the order they are drawn."""

    windows: tuple[Window, ...]
    num_steps: int
    kept: tuple[int, ...]
    has_reference: bool
    anchor: str | None

    @property
    def drawn(self) -> tuple[int, ...]:
        """The steps the run draws (every step that is not kept), in order."""
        return tuple(sorted({step for window in self.windows for step in window.decides}))

    def describe(self) -> list[dict]:
        """The windows as plain data, for run metadata: items as step numbers counted from 1 ("reference")."""
        def name(item: int) -> int | str:
            return "reference" if item == REFERENCE else item + 1

        return [
            {
                "images": [name(item) for item in window.items],
                "anchored": [name(item) for item, a in zip(window.items, window.anchored) if a],
                "decides": [step + 1 for step in window.decides],
            }
            for window in self.windows
        ]


def plan_chain(
    num_steps: int,
    *,
    kept: Collection[int] = (),
    has_reference: bool = False,
    anchor: str | None = None,
    neighbour_weight: float = 1.0,
    reference_weight: float | None = None,
    anchor_weight: float = 1.0,
    max_batch: int | None = None,
) -> ChainPlan:
    """Plan a run over ``num_steps`` steps (``kept``: 0-based indices of steps given as images).

    ``reference_weight`` is the weight of the link between the reference photo and step 1 (default: the
    neighbour weight). With nothing kept, no reference, no anchor and the whole chain in one batch, the plan is
    one window whose layout is I2G's plain chain, so the run is exactly today's. A global anchor of weight 0 and a
    reference of link weight 0 (not the anchor) are left out of the chain: they would change nothing but the
    windows. ``ChainPlan.has_reference`` says whether the reference is drawn with.
    """
    kept = tuple(sorted(set(kept)))
    if any(not 0 <= k < num_steps for k in kept):
        raise InvalidInputError(f"Kept steps must be numbered 1 to {num_steps}, got {[k + 1 for k in kept]}.")
    if len(kept) == num_steps:
        raise InvalidInputError("Every step is kept, so there is nothing to draw; leave at least one step out.")
    check_anchor_options(anchor, has_reference, max_batch)
    # An image nothing attends to must not take a batch slot either: with max_batch it would move the windows.
    if anchor_weight == 0:
        anchor, anchor_weight = None, 1.0
    if has_reference and anchor != "reference" and (neighbour_weight if reference_weight is None
                                                    else reference_weight) == 0:
        has_reference = False
    chain = ([REFERENCE] if has_reference else []) + list(range(num_steps))
    fixed = {REFERENCE, *kept}  # anchored whatever the window
    link_weight = [
        (neighbour_weight if reference_weight is None else reference_weight)
        if chain[p] == REFERENCE else neighbour_weight
        for p in range(len(chain) - 1)
    ]
    anchor_position = None if anchor is None else chain.index(REFERENCE if anchor == "reference" else 0)

    windows: list[Window] = []
    decided: set[int] = set()
    start = 0
    while True:
        island = anchor_position is not None and anchor_position < start
        capacity = len(chain) if max_batch is None else max_batch - (1 if island else 0)
        end = min(len(chain), start + capacity)
        last_decided = end if end == len(chain) else end - 1
        decides = tuple(chain[p] for p in range(start, last_decided) if chain[p] not in fixed | decided)
        if decides:
            positions = ([anchor_position] if island else []) + list(range(start, end))
            items = tuple(chain[p] for p in positions)
            links = tuple(
                link_weight[a] if b == a + 1 else 0.0 for a, b in zip(positions, positions[1:])
            )
            layout = ChainLayout(
                links=links,
                anchor=None if anchor_position is None else positions.index(anchor_position),
                anchor_weight=float(anchor_weight),
            )
            anchored = tuple(item in fixed or item in decided for item in items)
            windows.append(Window(items=items, anchored=anchored, layout=layout, decides=decides))
            decided.update(decides)
        if end == len(chain):
            break
        start = end - 2
    return ChainPlan(windows=tuple(windows), num_steps=num_steps, kept=kept, has_reference=has_reference,
                     anchor=anchor)
