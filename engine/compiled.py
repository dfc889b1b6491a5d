"""`--compile`: the trained model's transformer layers through torch.compile while a request trains, and its
failures said in one line (they surface at the first call, after pages of logged traceback)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from engine.errors import RunFailed
from engine.parallel import repeated_blocks


def check_compiler(device: torch.device) -> None:
    """What Inductor builds its kernels with, there before anything compiles (its own failure comes at the first
    step, after pages of logged traceback): Triton on CUDA, a C++ compiler on the CPU."""
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            raise RunFailed("--compile on CUDA needs Triton (pip install triton); run without --compile")
        return
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
    except ImportError:  # an older torch: its first compile says what is missing
        return
    try:
        get_cpp_compiler()
    except Exception as error:
        reason = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise RunFailed(f"--compile needs a C++ compiler for torch.compile on the CPU ({reason[:160]}); install "
                        "g++ (or set $CXX), or run without --compile") from None


def compile_blocks(model: torch.nn.Module, device: torch.device) -> list[torch.nn.Module]:
    """``--compile``: torch.compile the forward of each repeated block (transformer layer), or of each part of
    a model without any; the module hooks (FSDP's among them) stay outside the compiled code. Returns what
    was compiled, for ``uncompile``."""
    check_compiler(device)
    blocks = repeated_blocks(model) or [part for part in model.children() if next(part.parameters(), None) is not None]
    for block in blocks:
        block.forward = torch.compile(block.forward)
    return blocks


def uncompile(blocks: list[torch.nn.Module]) -> None:
    """The blocks' own forwards back: a compiled one is bound to its module, so a later deep copy (the frozen
    original of the next request) would call the live module's."""
    for block in blocks:
        block.__dict__.pop("forward", None)


@contextmanager
def compile_failures_explained(compiling: bool) -> Iterator[None]:
    """A torch.compile error (Dynamo, the Inductor backend or its C++ compiler failing: it surfaces at the first
    call, not at ``torch.compile``) ends the run in one line that says what failed and what to do."""
    try:
        yield
    except Exception as error:
        import torch._dynamo.exc

        if not compiling or not isinstance(error, torch._dynamo.exc.TorchDynamoException):
            raise
        reason = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise RunFailed(f"--compile failed on this platform ({type(error).__name__}: {reason[:200]}); "
                        "run without --compile") from None
