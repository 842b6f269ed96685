"""A step of any agent captured once as a CUDA graph and replayed: every kernel in one launch,
no host sync.

    step = CapturedStep(gradient_step, device="cuda", warmup=3, generators=lambda: [buffer.generator])
    stats = step()   # warm-up: eager, on a side stream; then captured; then one replay per call
    step.reset()     # after a load (new tensors): warm up and capture again

What ``fn`` may do to be captured: read and write only tensors that stay where they are from one
call to the next (new data goes into static input tensors that the caller fills before each
call), never sync with the host, and draw random numbers only from the default CUDA generator or
from ``generators`` (registered with the graph, so every replay draws fresh numbers). Where
capture fails anyway, the step warns once (a RuntimeWarning naming the error) and runs ``fn``
eagerly from then on.

``fn`` returns a tensor or a dict of 0-dim tensors (logged values). A replay returns the graph's
own output tensor (overwritten by the next replay: copy what you keep), or the dict's values as
new tensors (they survive later replays).
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Iterable

import torch


class CapturedStep:
    """``fn`` as a CUDA graph on ``device``.

    warmup: the first ``warmup`` calls run ``fn`` eagerly on a side stream (each a real step,
    its result returned) so that the allocator and lazily built state (Adam's moments) settle
    before the capture. dry_runs: at the capture, ``fn`` first runs this many more times on a
    side stream with its results thrown away (for a step whose first call must already replay).
    generators: the non-default torch generators ``fn`` draws from, or a function giving them at
    capture time (e.g. a replay buffer's, which a load replaces). name: what the warning calls
    the step.
    """

    def __init__(self, fn: Callable[[], Any], *, device: torch.device | str, warmup: int = 3, dry_runs: int = 0,
                 generators: Iterable[torch.Generator] | Callable[[], Iterable[torch.Generator]] = (),
                 name: str = "the step"):
        self.fn = fn
        self.device = torch.device(device)
        self.warmup = warmup
        self.dry_runs = dry_runs
        self.generators = generators
        self.name = name
        self.reset()

    def reset(self) -> None:
        """Forget the capture (the tensors it reads are new, e.g. after a load): the next calls
        warm up and capture again."""
        self.graph: Any = None  # None: not captured yet; False: capture failed, eager; else the CUDAGraph
        self._warmed = 0
        self._out: Any = None  # the graph's output tensor (a dict's values stacked into one)
        self._keys: list[str] | None = None  # the dict's keys, or None for a tensor output

    @property
    def failed(self) -> bool:
        """Whether capture failed (the step runs eagerly)."""
        return self.graph is False

    def __call__(self) -> Any:
        if self.graph is False:
            return self.fn()
        if self.graph is None:
            if self._warmed < self.warmup:
                self._warmed += 1
                return self._on_side_stream(1)
            try:
                self._capture()
            except Exception as exc:  # noqa: BLE001 - an op that cannot be captured: run on eagerly, and say so
                warnings.warn(f"cuda_graph: capturing {self.name} failed ({exc!r}); running it eagerly",
                              RuntimeWarning, stacklevel=2)
                self.graph = False
                return self.fn()
        self.graph.replay()
        if self._keys is None:
            return self._out
        return dict(zip(self._keys, self._out.clone().unbind()))

    def _on_side_stream(self, runs: int) -> Any:
        """``fn`` run ``runs`` times on a side stream that waits for, and is waited for by, the
        current one; the last result."""
        cur = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(cur)
        with torch.cuda.stream(side):
            for _ in range(runs):
                out = self.fn()
        cur.wait_stream(side)
        return out

    def _capture(self) -> None:
        if self.dry_runs:
            self._on_side_stream(self.dry_runs)
        graph = torch.cuda.CUDAGraph()
        for gen in self.generators() if callable(self.generators) else self.generators:
            graph.register_generator_state(gen)
        with torch.cuda.graph(graph):
            out = self.fn()
            if isinstance(out, dict):  # one output tensor: a replay copies the values out in one kernel
                self._keys = list(out)
                self._out = torch.stack([out[k].float() for k in self._keys])
            else:
                self._out = out
        self.graph = graph
