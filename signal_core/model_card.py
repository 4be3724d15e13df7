"""The model card (``README.md``) of a Hub-style weights folder: Hub front matter and what a user must know.

The front matter holds the keys the Hugging Face Hub reads (``license``, ``library_name``,
``pipeline_tag``, ``tags``, ``datasets``, ``metrics`` and, when metrics were measured, a ``model-index``
with them); the body says where the weights come from, the training data, the metrics with their
protocol (and, apart, what the paper reports), how to load them, the paper, the licence and the
weights' sha256. Written without huggingface_hub (plain block YAML); the tests read it back with
``huggingface_hub.ModelCard``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .config import SignalConfig

METRIC_NAMES = ("mAP", "mINP", "R1", "R5", "R10")
PAPER = ("Yangyang Liu, Yuhao Wang, Pingping Zhang. *Signal: Selective Interaction and Global-local Alignment for "
         "Multi-Modal Object Re-Identification.* AAAI 2026. Code: https://github.com/010129/Signal")
# name on the card, kind of object, what the paper says of it
DATASETS = {
    "rgbnt201": ("RGBNT201", "person", "RGBNT201 (Zheng et al. 2021): 4,787 RGB / NIR / TIR image triples of 201 "
                 "persons; its train split holds 171 identities (train_171), its test split is both query and gallery"),
    "rgbnt100": ("RGBNT100", "vehicle", "RGBNT100 (Li et al. 2020): 17,250 RGB / NIR / TIR image triples of "
                 "vehicles (one 768 x 128 image per triple, the three modalities side by side)"),
    "msvr310": ("MSVR310", "vehicle", "MSVR310 (Zheng et al. 2022): 2,087 RGB / NIR / TIR image triples of 310 "
                "vehicles in various environments"),
}
# what the paper reports for Signal (Tables 1 and 2), percent
PAPER_RESULTS = {"rgbnt201": {"mAP": 80.3, "R1": 85.2, "R5": 91.4, "R10": 93.7},
                 "rgbnt100": {"mAP": 86.3, "R1": 97.6}, "msvr310": {"mAP": 53.6, "R1": 71.9}}


@dataclass
class CardFacts:
    """What the card says beyond the config.

    Attributes:
        source: where the weights come from, one or two sentences (a conversion names the file and its sha256).
        dataset: the training dataset ("rgbnt201", "rgbnt100", "msvr310", or another name); None if unknown.
        training: how they were trained (default: the dataset's train split, the authors' recipe unstated).
        metrics: measured on these very weights (mAP, mINP, R1, R5, R10 in percent), or None.
        protocol: how ``metrics`` were measured (default: ``train.evaluate`` on the dataset's test split).
        repo_id: "owner/name" the folder is published as (the card's loading lines name it).
        license: the Hub licence id of the weights.
    """

    source: str
    dataset: str | None = None
    training: str | None = None
    metrics: dict[str, float] | None = None
    protocol: str | None = None
    repo_id: str | None = None
    license: str = "mit"


def default_protocol(dataset: str | None) -> str:
    name = DATASETS.get(dataset or "", (dataset or "the dataset",))[0]
    rule = "the same scene" if dataset == "msvr310" else "the same camera"
    return (f"`python -m train.evaluate` on the {name} test split with the authors' protocol: every query ranked "
            f"against the gallery, gallery samples of the query's identity from {rule} left out, no re-ranking, "
            "fp32 features; mAP, mINP and CMC rank-1 / 5 / 10 in percent")


def _yaml(value: Any, indent: int = 0) -> list[str]:
    """Block YAML of dicts, lists and JSON scalars (strings JSON-quoted: valid YAML)."""
    pad = " " * indent
    lines: list[str] = []
    items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
    for key, item in items:
        head = f"{pad}{key}:" if key is not None else f"{pad}-"
        if isinstance(item, (dict, list)) and item:
            if key is None and isinstance(item, dict):  # "- key: value" with the rest indented under it
                sub = _yaml(item, indent + 2)
                lines.append(f"{pad}- {sub[0].lstrip()}")
                lines.extend(sub[1:])
            else:
                lines.append(head)
                lines.extend(_yaml(item, indent + 2))
        else:
            lines.append(f"{head} {json.dumps(item)}")
    return lines


def front_matter(cfg: SignalConfig, facts: CardFacts) -> dict[str, Any]:
    name, kind, _ = DATASETS.get(facts.dataset or "", (facts.dataset, None, None))
    meta: dict[str, Any] = {
        "license": facts.license, "library_name": "signal-reid", "pipeline_tag": "image-feature-extraction",
        "tags": ["re-identification", "multi-modal", "rgb-nir-tir", *([f"{kind}-reid"] if kind else []),
                 "signal", "safetensors"],
    }
    if name:
        meta["datasets"] = [name]
    meta["metrics"] = ["mAP", "mINP", "CMC"]
    if facts.metrics:
        meta["model-index"] = [{"name": f"Signal {name or ''}".strip(), "results": [{
            "task": {"type": "image-feature-extraction", "name": "Multi-modal object re-identification"},
            "dataset": {"type": name or "unknown", "name": name or "unknown", "split": "test"},
            "metrics": [{"type": k, "name": k, "value": round(float(facts.metrics[k]), 2)}
                        for k in METRIC_NAMES if k in facts.metrics]}]}]
    return meta


def _table(metrics: dict[str, float], digits: int = 2) -> list[str]:
    names = [k for k in METRIC_NAMES if k in metrics]
    return ["| " + " | ".join(names) + " |", "|" + "---|" * len(names),
            "| " + " | ".join(f"{float(metrics[k]):.{digits}f}" for k in names) + " |"]


def _metrics_section(facts: CardFacts) -> list[str]:
    lines = ["## Metrics", ""]
    if facts.metrics:
        lines += [f"Measured on these weights: {facts.protocol or default_protocol(facts.dataset)}.", "",
                  *_table(facts.metrics), ""]
    else:
        lines += ["Not measured on this file here. Measure them with `python -m train.evaluate --config "
                  "train/configs/DATASET.yaml --data-root DIR --weights THIS_FOLDER --out metrics.json`.", ""]
    paper = PAPER_RESULTS.get(facts.dataset or "")
    if paper:
        lines += [f"What the paper reports for Signal on {DATASETS[facts.dataset][0]} (its Tables 1 and 2; the "
                  "authors' weights and protocol, not re-measured here):", "", *_table(paper, 1), ""]
    return lines


def render_card(cfg: SignalConfig, facts: CardFacts, weights_sha256: str, weights_file: str) -> str:
    """The whole ``README.md``: front matter, then the body."""
    name, _, about = DATASETS.get(facts.dataset or "", (facts.dataset, None, None))
    repo = f"hf-hub:{facts.repo_id}" if facts.repo_id else "hf-hub:OWNER/NAME"
    training = facts.training or (f"Trained on {about}." if about else f"Trained on {name}." if name else
                                  "The training data are not stated.")
    arch = (f"{cfg.layers}-layer ViT (width {cfg.width}, {cfg.patch_size}-px patches), {cfg.image_size[0]} x "
            f"{cfg.image_size[1]} input, SIM {'on' if cfg.use_sim else 'off'}, GAM {'on' if cfg.use_gam else 'off'}, "
            f"LAM {'on' if cfg.use_lam else 'off'}; {cfg.feature_dim}-d retrieval features")
    body = [
        f"# Signal{' on ' + name if name else ''}: multi-modal (RGB / NIR / TIR) object re-identification", "",
        f"Weights of Signal (AAAI 2026) for the `signal-reid` package (`signal_core`): {arch}.", "",
        "## Where these weights come from", "", facts.source, "",
        "## Training data", "", training, "",
        *_metrics_section(facts),
        "## Use", "", "```python", "from signal_core import load_weights", "",
        f'model = load_weights("{repo}")  # or the path of this folder', "```", "", "```bash",
        f"python -m train.extract --weights {repo} --triples my_gallery --out feats/gallery", "```", "",
        f"Offline, a name already in the Hugging Face cache loads as it is; fetch it once with "
        f"`hf download {facts.repo_id or 'OWNER/NAME'}`.", "",
        "## Files", "", "| file | what |", "|---|---|",
        f"| `{weights_file}` | the weights (safetensors; the config and a checksum of the tensors in its header), "
        f"sha256 `{weights_sha256}` |",
        "| `config.json` | the model config (`signal_core.SignalConfig`), enough to rebuild the model |",
        "| `README.md` | this card |", "",
        "## Paper", "", PAPER, "",
        "## Licence", "",
        f"`{facts.license}` (the authors' code is MIT). The datasets' own terms of use apply to the data the "
        "weights were trained on.", "",
    ]
    return "\n".join(["---", *_yaml(front_matter(cfg, facts)), "---", "", *body])
