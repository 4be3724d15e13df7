"""Inference precision: run the ViT encoder with bf16 weights, keep everything numerically delicate
in fp32.

The fp32 parameters stay the model's own (training, checkpoints and ``state_dict`` never see bf16);
a bf16 shadow copy of the encoder's weights is made on demand and rebuilt whenever a parameter
changes (an optimizer step, ``load_state_dict``) or moves to another device. LayerNorm parameters
stay fp32 (open_clip's ``LayerNormFp32`` normalises in fp32), and the model casts the encoder's
tokens back to fp32 before the selection scores, softmaxes and top-k of SIM.

"auto" picks bf16 only where it is actually fast: on CUDA when the GPU supports bf16, on the CPU
when a short matmul probe shows bf16 at least 1.3x faster than fp32 (CPUs with AMX; with AVX512-BF16
alone bf16 matmuls can be slower than fp32, as on the 2-core machine this project is developed on).
"""
from __future__ import annotations

import functools
import time

import torch
from torch import nn
from torch.func import functional_call

PRECISIONS = ("fp32", "bf16", "auto")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
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


@functools.lru_cache(maxsize=None)
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
    """A reduced-precision copy of a module's parameters, used through ``torch.func.functional_call``.

    LayerNorm parameters are kept in fp32. The copy is rebuilt when any parameter's version counter
    (bumped by every in-place update), identity or device changes.
    """

    def __init__(self, module: nn.Module, dtype: torch.dtype):
        self.module, self.dtype = module, dtype
        self._keep = {f"{prefix}.{name}" if prefix else name
                      for prefix, sub in module.named_modules() if isinstance(sub, nn.LayerNorm)
                      for name, _ in sub.named_parameters(recurse=False)}
        self._key: tuple | None = None
        self._weights: dict[str, torch.Tensor] = {}

    def _current_key(self) -> tuple:
        return tuple((id(p), p._version, p.device) for p in self.module.parameters())

    def weights(self) -> dict[str, torch.Tensor]:
        """The shadow parameters by name, rebuilt if the module's parameters changed."""
        key = self._current_key()
        if key != self._key:
            with torch.no_grad():
                self._weights = {name: p.detach() if name in self._keep else p.detach().to(self.dtype)
                                 for name, p in self.module.named_parameters()}
            self._key = key
        return self._weights

    def __call__(self, *args, **kwargs):
        return functional_call(self.module, self.weights(), args, kwargs)
