"""What a training run records per epoch: ``history.jsonl`` (always), test metrics every
``train.eval_every`` epochs, and TensorBoard scalars when ``train.tensorboard`` is on.

A history line is ``{"epoch": e, "<loss name>": mean, "loss": total, "lr": highest, "lrs":
{group: lr}, "skipped_steps": n}`` plus ``"test": {"mAP", "mINP", "R1", "R5", "R10"}`` (percent)
in the epochs evaluated, and ``"val": {...}`` (the same metrics on the held-out validation
identities) when ``train.val_ids`` is on. The metrics are only recorded: the model a run ends with is always
the last epoch's, never the one with the best test score (the authors' code picks by test mAP;
see the README).
"""
from __future__ import annotations

from pathlib import Path

from .config import TrainConfig
from .run_folder import append_history

TENSORBOARD_DIR = "tensorboard"  # under train.output_dir


def evaluate_this_epoch(cfg: TrainConfig, epoch: int) -> bool:
    """Whether ``epoch`` (1-based) is tested: every ``eval_every`` epochs and the last one, when on."""
    return cfg.eval_every > 0 and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs)


class RunMonitor:
    """Writes one epoch's record to the history (and TensorBoard); on the main rank only.

    Args:
        out_dir: the run folder.
        tensorboard: also write TensorBoard event files to ``out_dir/tensorboard``.
        first_epoch: the epoch this process starts at; TensorBoard drops events of this epoch and
            later that an interrupted run had written, so a resumed run's curves do not double back.
    """

    def __init__(self, out_dir: Path, tensorboard: bool = False, first_epoch: int = 1):
        self.out_dir = Path(out_dir)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ValueError("train.tensorboard=true needs the tensorboard package: pip install tensorboard "
                                 "(or leave train.tensorboard off).") from None
            self.writer = SummaryWriter(str(self.out_dir / TENSORBOARD_DIR), purge_step=first_epoch)

    def record(self, epoch: int, stats: dict, test: dict[str, float] | None = None,
               val: dict[str, float] | None = None) -> dict:
        """Append ``{"epoch": epoch, **stats, "test": test, "val": val}`` to the history; returns the record."""
        record = {"epoch": epoch, **stats, **({"test": test} if test else {}), **({"val": val} if val else {})}
        append_history(self.out_dir, record)
        if self.writer is not None:
            self._scalars(record, epoch)
        return record

    def _scalars(self, record: dict, epoch: int) -> None:
        for name, value in record.items():
            if name in ("epoch", "lr"):
                continue
            if isinstance(value, dict):  # "lrs" -> lr/<group>, "test" -> test/<metric>, "val" -> val/<metric>
                prefix = "lr" if name == "lrs" else name
                for key, v in value.items():
                    self.writer.add_scalar(f"{prefix}/{key}", v, epoch)
            else:
                self.writer.add_scalar(name if name == "skipped_steps" else f"loss/{name}", value, epoch)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
