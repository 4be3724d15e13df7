"""Model complexity measured from the model: learnable parameters and forward FLOPs per module.

The modules are the children of :class:`~signal_core.model.signal_model.SignalModel` (``backbone``,
``sim``, ``gam``, ``lam``, ``heads``); a module a config switches off counts 0.

* Parameters: ``named_parameters()`` grouped by their first name component, the learnable ones
  (``requires_grad``; ``mib_fp32`` = count x 4 bytes / 2^20) and all of them. The paper's Table 3
  "Params (M)" is all parameters in millions: its "4.76 MB" added by the modules is 4.76 M parameters,
  SIM's frozen W_q / W_k and unused W_v and SIM's identity head included (docs/paper-tables.md).
* FLOPs: :class:`torch.utils.flop_counter.FlopCounterMode` on one forward of one (RGB, NIR, TIR)
  triple at the config's image size, with GAM and LAM run (``align=True``, as in training) and every
  identity head run on its feature. It counts matrix products, convolutions and attention (a
  multiply-add is 2 FLOPs); element-wise work, norms, softmax, top-k and LAM's ``grid_sample`` are not
  counted. Attention runs on the math kernel and ``nn.MultiheadAttention`` off its fused fast path,
  whose kernels the counter does not know. GAM has no ``forward`` (the model calls its ``volumes``), so
  its FLOPs are what the pass spends outside the other modules (0 when ``use_gam`` is off); at batch 1
  they are its two [1, D] x [D, 1] products (the [B, B] volumes grow with the batch squared).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from ..config import SignalConfig
from .signal_model import build_model

MODULES = ("backbone", "sim", "gam", "lam", "heads")
ADDED = ("sim", "gam", "lam")  # the paper's modules ("4.76 MB of learnable parameters", Table 3)
_ROOT = "SignalModel"


@dataclass
class ModuleCost:
    """One module's learnable parameters, all its parameters and its forward FLOPs (one triple)."""

    params: int  # requires_grad
    params_all: int  # learnable or not
    flops: int

    @property
    def params_m(self) -> float:
        return self.params / 1e6

    @property
    def mib_fp32(self) -> float:
        return self.params * 4 / 2 ** 20


def parameter_counts(model: torch.nn.Module, learnable: bool = True) -> dict[str, int]:
    """Parameters per module of :data:`MODULES` (0 for an absent one): those with ``requires_grad``, or all
    of them (``learnable=False``: also SIM's frozen W_q / W_k, its unused W_v and the BN biases)."""
    counts = dict.fromkeys(MODULES, 0)
    for name, param in model.named_parameters():
        if param.requires_grad or not learnable:
            top = name.split(".", 1)[0]
            if top not in counts:
                raise ValueError(f"parameter {name} belongs to no module of {MODULES}.")
            counts[top] += param.numel()
    return counts


def forward_flops(model: torch.nn.Module, cam_id: int = 0) -> dict[str, int]:
    """FLOPs of one forward of one triple per module of :data:`MODULES` (see the module docstring)."""
    cfg = model.cfg
    device = next(model.parameters()).device
    image = torch.zeros(1, 3, *cfg.image_size, device=device)
    cams = torch.tensor([cam_id], device=device) if model.num_cameras else None
    was_training, fast_path = model.training, torch.backends.mha.get_fastpath_enabled()
    model.eval()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False, depth=None) as counter:
            out = model(image, image, image, cam_ids=cams, align=True)
            for name, head in (model.heads or {}).items():
                head(model._head_input(name, out))
    finally:
        torch.backends.mha.set_fastpath_enabled(fast_path)
        model.train(was_training)
    totals = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    flops = {m: _module_total(totals, f"{_ROOT}.{m}") for m in MODULES if m != "gam"}
    flops["gam"] = totals.get("Global", 0) - sum(flops.values())  # the pass outside the other modules
    return {m: flops[m] for m in MODULES}


def _module_total(totals: dict[str, int], name: str) -> int:
    """A module's FLOPs: its own entry, or the sum of its children's for a container that is never called
    itself (``heads``, a ModuleDict whose heads the pass calls one by one)."""
    if name in totals:
        return totals[name]
    return sum(v for k, v in totals.items() if k.startswith(name + ".") and "." not in k[len(name) + 1:])


def complexity(model: torch.nn.Module) -> dict[str, ModuleCost]:
    """:class:`ModuleCost` per module of :data:`MODULES`, then ``"added"`` (SIM + GAM + LAM) and ``"total"``."""
    params, every, flops = parameter_counts(model), parameter_counts(model, learnable=False), forward_flops(model)
    out = {m: ModuleCost(params[m], every[m], flops[m]) for m in MODULES}
    out["added"] = ModuleCost(*(sum(d[m] for m in ADDED) for d in (params, every, flops)))
    out["total"] = ModuleCost(*(sum(d.values()) for d in (params, every, flops)))
    return out


def complexity_dict(model: torch.nn.Module) -> dict[str, dict]:
    """:func:`complexity` as JSON-ready numbers: params, params_m, mib_fp32, flops, gflops per entry."""
    return {name: {**asdict(c), "params_m": round(c.params_m, 4), "mib_fp32": round(c.mib_fp32, 4),
                   "gflops": round(c.flops / 1e9, 6)} for name, c in complexity(model).items()}


def config_complexity(cfg: SignalConfig, num_classes: int, num_cameras: int) -> dict[str, dict]:
    """:func:`complexity_dict` of a randomly initialised model of ``cfg`` (no weights are loaded; counts do
    not depend on them) with ``num_classes`` identities and ``num_cameras`` cameras where ``cfg`` leaves
    them unset."""
    cfg = cfg.replace(pretrained=None, num_classes=cfg.num_classes or num_classes,
                      num_cameras=cfg.num_cameras if cfg.num_cameras is not None else num_cameras)
    return complexity_dict(build_model(cfg))


def markdown_table(table: dict[str, dict]) -> str:
    """A Markdown table of :func:`complexity_dict`'s numbers."""
    lines = ["| module | learnable parameters | M | MiB (fp32) | all parameters (M) | GFLOPs (one triple) |",
             "|---|---|---|---|---|---|"]
    for name, c in table.items():
        label = {"added": "SIM + GAM + LAM", "total": "total"}.get(name, name)
        lines.append(f"| {label} | {c['params']:,} | {c['params_m']:.2f} | {c['mib_fp32']:.2f} | "
                     f"{c['params_all'] / 1e6:.2f} | {c['gflops']:.4f} |")
    return "\n".join(lines) + "\n"


def summary_line(table: dict[str, dict]) -> str:
    """One line of :func:`complexity_dict`'s totals (a report's header)."""
    total, added = table["total"], table["added"]
    return (f"{total['params_m']:.2f} M learnable parameters ({total['mib_fp32']:.1f} MiB fp32; SIM + GAM + LAM "
            f"{added['params_m']:.2f} M, {added['params_all'] / 1e6:.2f} M counting frozen ones), "
            f"{total['gflops']:.2f} GFLOPs per triple (SIM + GAM + LAM {added['gflops']:.3f})")
