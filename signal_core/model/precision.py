"""Inference precision: the ViT encoder's matrix multiplications in bf16, everything numerically
delicate in fp32.

The fp32 parameters stay the model's own (training, checkpoints and ``state_dict`` never see bf16);
a bf16 copy of the encoder's Linear / attention weights is made on demand and rebuilt whenever a
parameter changes (an optimizer step, ``load_state_dict``) or moves to another device. The residual
stream, LayerNorms, embeddings and output projection stay fp32, and so do SIM's selection scores,
softmaxes and top-k (the encoder's tokens come out in fp32).

"auto" picks bf16 only where it is actually fast: on CUDA when the GPU supports bf16, on the CPU
when a short matmul probe shows bf16 at least 1.3x faster than fp32 (CPUs with AMX; with AVX512-BF16
alone bf16 matmuls can be slower than fp32, as on the 2-core machine this project is developed on).
"""
from __future__ import annotations

import copy
import functools
import threading
import time

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16", "auto")
PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
CPU_BF16_MIN_SPEEDUP = 1.3  # auto picks bf16 on the CPU only above this measured matmul speed-up


def _matmul_seconds(dtype: torch.dtype, n: int = 1024, repeats: int = 3) -> float:
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    a @ b  # warm-up (oneDNN primitive creation)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return best


@functools.cache
def cpu_bf16_speedup() -> float:
    """fp32 / bf16 time of a 1024^3 matmul on this CPU (measured once per process, ~0.1 s)."""
    with torch.no_grad():
        return _matmul_seconds(torch.float32) / _matmul_seconds(torch.bfloat16)


def bf16_is_fast(device: torch.device | str) -> bool:
    """True where bf16 inference is worth it: a bf16-capable GPU, or a CPU with fast bf16 matmuls."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_bf16_speedup() >= CPU_BF16_MIN_SPEEDUP
    return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """"fp32" | "bf16" | "auto" -> "fp32" or "bf16" for ``device``.

    Raises:
        ValueError: unknown precision name.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"inference precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    if precision == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    return precision


class ShadowWeights:
    """Run a module with its matrix multiplications in ``dtype`` and everything else in fp32.

    A second module is built once from the first: every ``nn.Linear`` and ``nn.MultiheadAttention``
    gets ``dtype`` copies of its weights (and biases) and casts its inputs to ``dtype`` on the way
    in; every other parameter and buffer (the patch convolution, embeddings, LayerNorms, the output
    projection) is the original tensor itself, shared, so the residual stream of a transformer stays
    fp32 (a bf16 block output is added to an fp32 stream). The original module is never touched.

    Thread safety: a call only reads the copy, so any number of threads may run it at once. The copy
    is rebuilt when a parameter's version counter (bumped by every in-place update, as an optimizer
    step), identity or device changes; the new copy replaces the old one in one assignment, so a call
    already running finishes on the copy it started with. Only a rebuild takes a lock.
    """

    def __init__(self, module: nn.Module, dtype: torch.dtype):
        self.module, self.dtype = module, dtype
        self._copy: tuple[tuple, nn.Module] | None = None  # (parameters' key, the reduced-precision module)
        self._rebuild = threading.Lock()

    def _current_key(self) -> tuple:
        return tuple((id(p), p._version, p.device) for p in self.module.parameters())

    def copy(self) -> nn.Module:
        """The reduced-precision module for the current parameters (built on first use, rebuilt if they changed)."""
        key = self._current_key()
        current = self._copy
        if current is None or current[0] != key:
            with self._rebuild:
                current = self._copy
                if current is None or current[0] != key:
                    current = (key, reduced_copy(self.module, self.dtype))
                    self._copy = current
        return current[1]

    def __call__(self, *args, **kwargs):
        return self.copy()(*args, **kwargs)


def reduced_copy(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """An eval-mode copy of ``module`` whose Linear / MultiheadAttention weights are ``dtype`` and whose
    other parameters and buffers are the original tensors (shared, not copied)."""
    matmul = [m for m in module.modules() if isinstance(m, (nn.Linear, nn.MultiheadAttention))]
    cast = {id(p) for m in matmul for p in m.parameters(recurse=False)}
    memo: dict[int, object] = {}
    with torch.no_grad():
        for p in module.parameters():
            memo[id(p)] = (nn.Parameter(p.detach().to(dtype), requires_grad=False) if id(p) in cast else p)
        for b in module.buffers():
            memo[id(b)] = b
        clone = copy.deepcopy(module, memo)
    clone.eval()
    for m in clone.modules():
        if isinstance(m, (nn.Linear, nn.MultiheadAttention)):
            m.register_forward_pre_hook(functools.partial(_cast_inputs, dtype=dtype))
    return clone


def _cast_inputs(_module: nn.Module, args: tuple, dtype: torch.dtype) -> tuple:
    # One cast per distinct tensor: self-attention gets query is key is value, which keeps
    # nn.MultiheadAttention on its packed (one-matmul) input projection.
    cast: dict[int, torch.Tensor] = {}
    for a in args:
        if torch.is_tensor(a) and a.is_floating_point() and id(a) not in cast:
            cast[id(a)] = a.to(dtype)
    return tuple(cast.get(id(a), a) for a in args)
