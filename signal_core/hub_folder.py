"""Save a model as a Hub-style folder, the layout of huggingface_hub's ``PyTorchModelHubMixin``:

    model.safetensors   the weights: our checkpoint (signal_core.checkpoint.save_checkpoint), with the config
                        and a SHA-256 of the tensors in its header
    config.json         the model config (SignalConfig), enough to rebuild the model with no other file
    README.md           the model card (signal_core.model_card): Hub front matter, training data, metrics
                        and their protocol, the paper, the licence, the weights' sha256

Loading takes the same path as every other weights: ``load_weights(folder)``, or, once the folder is on
the Hub (``hf upload owner/name FOLDER``), ``load_weights("hf-hub:owner/name")``
(signal_core.weights_source). ``python -m train.convert`` writes such a folder from the authors' ``.pth``.
"""
from __future__ import annotations

import os
from pathlib import Path

from .checkpoint import save_checkpoint
from .config import SignalConfig
from .model.signal_model import SignalModel
from .model_card import CardFacts, render_card
from .utils.atomic import atomic_write
from .utils.hashing import sha256_file
from .weights_source import HUB_CARD, HUB_CONFIG, HUB_WEIGHTS


def save_pretrained(model: SignalModel, folder: str | os.PathLike, facts: CardFacts | None = None,
                    metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` into ``folder`` (created if needed; these three files replaced, each atomically).

    Args:
        facts: what the card says of the weights (where they come from, data, metrics); None: a card
            that says only that they were saved from Python.
        metadata: more string entries for the safetensors header.

    Returns:
        The folder.

    Raises:
        ValueError: ``folder`` is an existing file.
    """
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"'{folder}' is a file: give a folder to write the weights, config and card into.")
    weights = folder / HUB_WEIGHTS
    save_checkpoint(model, weights, metadata)
    model.cfg.save_json(folder / HUB_CONFIG)
    write_card(folder, model.cfg, facts or CardFacts(source="Saved with `signal_core.save_pretrained`."))
    return folder


def write_card(folder: str | os.PathLike, cfg: SignalConfig, facts: CardFacts) -> Path:
    """(Re)write the folder's model card for the ``model.safetensors`` it holds (its sha256 is read here)."""
    folder = Path(folder).expanduser()
    card = render_card(cfg, facts, sha256_file(folder / HUB_WEIGHTS), HUB_WEIGHTS)
    return atomic_write(folder / HUB_CARD, lambda tmp: Path(tmp).write_text(card, encoding="utf-8"))
