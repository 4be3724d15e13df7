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

import functools
import time

import torch
from torch import nn
from torch.func import functional_call

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

    The weights (and biases) of every ``nn.Linear`` and ``nn.MultiheadAttention`` get a ``dtype``
    copy; their inputs are cast to ``dtype`` on the way in. Everything else keeps its fp32
    parameters: the patch convolution, embeddings, LayerNorms and the output projection, so the
    residual stream of a transformer stays fp32 (a bf16 block output is added to an fp32 stream).
    The module is called through ``torch.func.functional_call``; its own parameters never change.
    The copy is rebuilt when any parameter's version counter (bumped by every in-place update),
    identity or device changes.
    """

    def __init__(self, module: nn.Module, dtype: torch.dtype):
        self.module, self.dtype = module, dtype
        self._matmul_modules = [m for m in module.modules() if isinstance(m, (nn.Linear, nn.MultiheadAttention))]
        owned = {id(p) for m in self._matmul_modules for p in m.parameters(recurse=False)}
        self._cast = {name for name, p in module.named_parameters() if id(p) in owned}
        self._key: tuple | None = None
        self._weights: dict[str, torch.Tensor] = {}

    def _current_key(self) -> tuple:
        return tuple((id(p), p._version, p.device) for p in self.module.parameters())

    def weights(self) -> dict[str, torch.Tensor]:
        """The parameters by name (``dtype`` copies of the matmul weights), rebuilt if they changed."""
        key = self._current_key()
        if key != self._key:
            with torch.no_grad():
                self._weights = {name: p.detach().to(self.dtype) if name in self._cast else p.detach()
                                 for name, p in self.module.named_parameters()}
            self._key = key
        return self._weights

    def _cast_inputs(self, _module: nn.Module, args: tuple) -> tuple:
        # One cast per distinct tensor: self-attention gets query is key is value, which keeps
        # nn.MultiheadAttention on its packed (one-matmul) input projection.
        cast: dict[int, torch.Tensor] = {}
        for a in args:
            if torch.is_tensor(a) and a.is_floating_point() and id(a) not in cast:
                cast[id(a)] = a.to(self.dtype)
        return tuple(cast.get(id(a), a) for a in args)

    def __call__(self, *args, **kwargs):
        hooks = [m.register_forward_pre_hook(self._cast_inputs) for m in self._matmul_modules]
        try:
            return functional_call(self.module, self.weights(), args, kwargs)
        finally:
            for hook in hooks:
                hook.remove()
