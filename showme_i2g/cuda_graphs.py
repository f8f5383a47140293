"""Fixed-shape denoising steps replayed from CUDA graphs: the launch overhead of thousands of small kernels, gone.

A denoising loop calls the same network with tensors of the same shapes at every step, so one capture of that
call (``torch.cuda.CUDAGraph`` over static input buffers) serves a whole sampling run: each step copies its inputs
into the static buffers and replays the recorded kernels, with no Python in between. This needs no
``torch.compile`` (which ZeroGPU Spaces lack) and changes no arithmetic: the replayed kernels are the eager ones.

:class:`StepGraphs` caches one capture per *key* (the caller's mode, e.g. "image" or "video", plus every input's
shape and dtype), so a pipeline that alternates edits and videos captures each once. Where graphs cannot run (no
CUDA, or turned off) it calls the function eagerly through the same interface, which is what the CPU tests
exercise. Captured graphs hold their own memory pool; the cache keeps the ``max_graphs`` most recently used (2:
an edit and a video). A capture that runs out of memory (:func:`ran_out_of_memory`) frees every pool, and that
key's steps run eagerly for the rest of the run (a pipeline's public call: :meth:`StepGraphs.begin_run` lets the
next call try again). A capture that fails otherwise while the step itself runs eagerly (an operation that cannot
be captured) turns graphs off for good, with one warning; a step that fails eagerly too raises, graphs untouched.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

import torch

logger = logging.getLogger(__name__)

StepFunction = Callable[..., torch.Tensor]


_OUT_OF_MEMORY_SIGNS = (
    "out of memory",  # the CUDA runtime's own words
    "ALLOC_FAILED",  # CUBLAS_STATUS_ALLOC_FAILED, CUDNN_STATUS_ALLOC_FAILED
    "unable to find an engine",  # cuDNN's frontend, when no algorithm fits the memory a cap leaves
)


def ran_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` means the GPU ran out of memory: PyTorch's ``OutOfMemoryError``, or a library saying so in
    its own words. Its causes count too: an error inside a capture can surface as a later one (ending the capture
    raises about the "previous error"), with the out-of-memory error as its context."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, torch.OutOfMemoryError) or (
                isinstance(exc, RuntimeError) and any(sign in str(exc) for sign in _OUT_OF_MEMORY_SIGNS)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class GraphedCall:
    """One captured call of ``function`` on static copies of ``example_inputs`` (all CUDA tensors).

    ``__call__(*inputs)`` copies the inputs into the static buffers, replays the graph and returns the static
    output. That tensor is overwritten by the next replay, so callers use it (or clone it) before calling again.
    """

    def __init__(self, function: StepFunction, example_inputs: Sequence[torch.Tensor], warmup: int = 2) -> None:
        self.static_inputs = [tensor.detach().clone() for tensor in example_inputs]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up off the default stream, as capture requires (cuBLAS workspaces…)
            for _ in range(warmup):
                function(*self.static_inputs)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_output = function(*self.static_inputs)

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        for static, tensor in zip(self.static_inputs, inputs, strict=True):
            if static.data_ptr() != tensor.data_ptr():
                static.copy_(tensor)
        self.graph.replay()
        return self.static_output


class StepGraphs:
    """A cache of :class:`GraphedCall` per key; eager calls where CUDA graphs are off or unavailable.

    ``run(key, function, *inputs)`` calls ``function(*inputs)``: on CUDA with graphs enabled, from the graph
    captured for ``(key, shapes, dtypes, device)`` (captured on first use). ``function`` must be the same
    computation for the same key: the key names everything that changes it besides the inputs (the adapter mode,
    the number of steps of a recipe, a weight, :meth:`weights_key` and :meth:`adapters_key` of the network).

    :param enabled: the caller's switch (``cuda_graphs=False`` in the pipelines); :meth:`begin_run` sets it,
        and so may a caller between runs.
    :param max_graphs: captures kept; each holds a memory pool as large as one step's activations.
    """

    graphed_call: Callable[[StepFunction, Sequence[torch.Tensor]], Callable[..., torch.Tensor]] = staticmethod(
        GraphedCall)
    """What captures a call (tests put a recording stand-in here)."""

    def __init__(self, enabled: bool = True, max_graphs: int = 2) -> None:
        self.enabled = enabled
        self.max_graphs = max_graphs
        self.failure: str | None = None  # why capture cannot work for this network: eager for good
        self._graphs: OrderedDict[Hashable, Callable[..., torch.Tensor]] = OrderedDict()
        self._no_room: set[Hashable] = set()  # keys whose capture ran out of memory in this run
        self.captures = 0  # how many graphs were captured so far (benchmarks report it)
        self.replays = 0  # how many steps were replayed from a graph (run metadata says whether a run did)

    def begin_run(self, enabled: bool) -> StepGraphs:
        """Start a run (a pipeline's public call) with graphs ``enabled`` or not. Keys that ran out of memory in an
        earlier run may be captured again (memory may have been freed since); a capture failure other than memory
        stays final."""
        self.enabled = enabled
        self._no_room.clear()
        return self

    @property
    def replaying(self) -> bool:
        """Whether steps on CUDA tensors replay graphs (enabled, and no capture has failed for good)."""
        return self.enabled and self.failure is None

    def active_for(self, inputs: Sequence[torch.Tensor]) -> bool:
        """Whether ``run`` replays a graph for these inputs (enabled, all on a CUDA device, no autograd)."""
        return self.replaying and not torch.is_grad_enabled() and self._on_cuda(inputs)

    @staticmethod
    def _on_cuda(inputs: Sequence[torch.Tensor]) -> bool:
        """Every input on a CUDA device, outside another capture (captures do not nest)."""
        return all(t.device.type == "cuda" for t in inputs) and not torch.cuda.is_current_stream_capturing()

    def run(self, key: Hashable, function: StepFunction, *inputs: torch.Tensor) -> torch.Tensor:
        """``function(*inputs)``, replayed from this key's graph where graphs are active. The result is the
        caller's own tensor (a copy of the graph's output buffer, which the next replay overwrites: schedulers
        such as PNDM or multistep DPM-Solver keep past predictions)."""
        if not self.active_for(inputs):
            return function(*inputs)
        full_key = (key, tuple((tuple(t.shape), t.dtype, t.device) for t in inputs))
        if full_key in self._no_room:
            return function(*inputs)
        graph = self._graphs.get(full_key)
        if graph is None:
            while len(self._graphs) >= self.max_graphs:
                self._graphs.popitem(last=False)
            try:
                graph = self.graphed_call(function, inputs)
            except RuntimeError as exc:
                # only noted here: inside the except block the traceback keeps the failed attempt's activations
                # and graph pool alive, and the eager step must not run on top of them
                no_room, failure = ran_out_of_memory(exc), str(exc)
            if graph is None:
                return self._eager_after_failed_capture(full_key, function, inputs, no_room, failure)
            self._graphs[full_key] = graph
            self.captures += 1
        self._graphs.move_to_end(full_key)
        self.replays += 1
        return graph(*inputs).clone()

    def _eager_after_failed_capture(self, full_key: Hashable, function: StepFunction,
                                    inputs: Sequence[torch.Tensor], no_room: bool, failure: str) -> torch.Tensor:
        if no_room:  # free every pool (a capture holds a second set of activations), and stay eager for the run
            self.clear()
            self._no_room.add(full_key)
            return function(*inputs)
        output = function(*inputs)  # a step that fails by itself (bad inputs) raises here: graphs stay as they are
        logger.warning("CUDA graph capture failed (%s); denoising steps run eagerly from now on.", failure)
        self.failure = failure  # the step runs, but not under capture: graphs are off, and their pools freed
        self.clear()
        return output

    @staticmethod
    def weights_key(module: torch.nn.Module) -> tuple:
        """A cheap fingerprint of where ``module``'s weights live: their count, dtype and the addresses of the first
        and last. A graph replays fixed addresses, so moving the model (``.to``), casting it or adding layers (a
        newly loaded LoRA) must lead to a new capture; callers put this in their key."""
        params = list(module.parameters())
        if not params:
            return ()
        return len(params), params[0].dtype, params[0].data_ptr(), params[-1].data_ptr()

    @staticmethod
    def adapters_key(module: torch.nn.Module) -> tuple:
        """What the peft adapters of ``module`` do now: per adapted layer, the active adapters, their scales, and
        whether adapters are disabled or merged. A capture bakes these Python values in, so changing any of them
        (diffusers' ``set_adapters(weights=...)``, ``disable_lora``, ``fuse_lora``; ShowMe's modes) must lead to a
        new capture; callers put this in their key."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        state = []
        for name, layer in module.named_modules():
            if isinstance(layer, BaseTunerLayer):
                scaling = getattr(layer, "scaling", {})
                active = tuple(layer.active_adapters)
                state.append((name, active, tuple(scaling.get(a) for a in active), layer.disable_adapters,
                              tuple(layer.merged_adapters)))
        return tuple(state)

    def clear(self) -> None:
        """Drop every captured graph (and with it the memory its pool holds)."""
        self._graphs.clear()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def __len__(self) -> int:
        return len(self._graphs)
