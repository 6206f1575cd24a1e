"""The compiled inference path: the optimised network (:mod:`gcnseg.optimize`) compiled by
``torch.compile`` (Inductor), which fuses the elementwise work between convolutions
and generates code for the CPU it finds.

One graph per input shape (static shapes compile to the fastest code, and the
network's output at an image's own size stays exactly the eager one's up to float
rounding); a job with images of many sizes compiles at most :data:`MAX_SHAPES` of them
and runs the others uncompiled, so a folder of mixed sizes never compiles on every
image. Inductor keeps what it compiled on disk (its cache), so a later process
compiles the same network and size in seconds. The first compile of a size is said on
the screen, and its first output is checked against the uncompiled network's (a
compiler bug, or a cached graph built for another instruction set, must not change a
result); a machine where compiling fails or disagrees runs uncompiled, said once.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import time
from collections.abc import Callable

import torch
from torch import nn

from .metrics.agreement import label_agreement
from .runtime import notice

MAX_SHAPES = 4  # input shapes compiled per model; others run the optimised eager network
# argmax agreement with the uncompiled network that a compiled graph must show on its
# first input (near-tied scores of an untrained network may flip a few pixels)
MIN_AGREEMENT = 0.99
# a job compiles when it runs at least this many forward passes of one model (break-even of
# a warm-cache compile against its saving per image: docs/performance.md)
COMPILE_MIN_PASSES = 500


def compiler_available(device: torch.device) -> bool:
    """Whether Inductor can build code here: a C++ compiler for the CPU (``CXX`` or
    ``c++``/``g++``), Triton for CUDA."""
    if device.type == "cuda":
        return importlib.util.find_spec("triton") is not None
    return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "c++", "g++", "clang++") if c)


class CompiledModel(nn.Module):
    """``model`` (eval mode, no gradients) run through ``torch.compile``, one graph per
    input shape up to :data:`MAX_SHAPES`; ``notify`` is told of each first compile."""

    def __init__(self, model: nn.Module, notify: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.model = model
        self.compiled = torch.compile(model, dynamic=False)
        self.num_classes = getattr(model, "num_classes", None)
        self.notify = notify or notice
        self.shapes: set[tuple[int, ...]] = set()
        self.broken = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # one layout for every input (what the optimised network makes of it anyway): views and
        # NCHW tensors of a shape run the same graph, not a silent recompile per stride
        x = x.contiguous(memory_format=torch.channels_last)
        shape = tuple(x.shape)
        if self.broken or (shape not in self.shapes and len(self.shapes) >= MAX_SHAPES):
            return self.model(x)
        if shape in self.shapes:
            return self.compiled(x)
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # its "no CUDA runtime" note
        self.notify(
            f"compiling the network for {shape[-2]}x{shape[-1]} inputs (torch.compile: up to a few minutes "
            "the first time on this machine, seconds once cached)"
        )
        start = time.perf_counter()
        try:
            out = self.compiled(x)
        except Exception as e:  # any compiler failure: the network still runs
            self.broken = True
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            self.notify(f"compiling failed ({type(e).__name__}: {first}); running uncompiled")
            return self.model(x)
        seconds = time.perf_counter() - start
        # checked once per shape: a wrong compile never serves
        agreement = label_agreement([(out.argmax(1), self.model(x).argmax(1))])
        if agreement < MIN_AGREEMENT:
            self.broken = True
            self.notify(
                f"the compiled network's labels agreed with the uncompiled one's on only {100 * agreement:.2f}% "
                "of the pixels; running uncompiled"
            )
            return self.model(x)
        self.shapes.add(shape)
        self.notify(f"compiled in {seconds:.0f} s")
        return out
