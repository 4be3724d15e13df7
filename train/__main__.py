"""Train Signal: ``python -m train --config train/configs/rgbnt201.yaml --data-root DIR [key=value ...]``.

Several GPUs (or CPU processes): ``torchrun --nproc_per_node=N -m train ...`` (DDP; the batch
size in the config is the global one). At the end the last epoch's model is tested on the
query / gallery splits and the metrics are printed and written to ``<output_dir>/metrics.json``.
With ``train.val_ids=N`` N training identities are held out as a validation split (val_split.json),
evaluated beside the test split every ``train.eval_every`` epochs.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from signal_core import SignalConfig, SignalModel, build_model
from signal_core.data import (
    IdentitySampler,
    ReIDDataset,
    TripleDataset,
    build_transforms,
    hold_out_identities,
    load_dataset,
)
from signal_core.utils.atomic import write_json

from .checkpoints import TrainingCheckpoint, load_optimizer_state, read_training_checkpoint, save_training_checkpoint
from .cli import command_main, command_parser
from .config import TrainConfig, check_identities_per_rank, config_differences, load_config, resolved_config
from .flags import check_output_folder, device_flag, input_path
from .loop import AmpPolicy, train_one_epoch, unwrap
from .monitor import RunMonitor, evaluate_this_epoch
from .optim import build_optimizer
from .output_paths import PathArgument, output_problem, resolved
from .protocol import evaluate_model, format_metrics
from .run_folder import METRICS_FILE, check_fresh_output_dir, record_val_split, repair_for_resume, write_run_config
from .seeding import seed_epoch

log = logging.getLogger("train")  # not __name__: that is "__main__" under python -m train


def parse_args(argv=None) -> argparse.Namespace:
    p = command_parser("python -m train", __doc__.split("\n")[0])
    p.add_argument("--config", required=True, type=input_path, help="YAML preset, e.g. train/configs/rgbnt201.yaml")
    p.add_argument("--data-root", required=True, type=input_path, help="the dataset folder itself")
    p.add_argument("--resume", type=input_path, help="a run folder or epoch_NNN.safetensors to continue from")
    p.add_argument("--device", type=device_flag, default=None, help="cuda, cuda:1, cpu (default: cuda if available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", help="train.KEY=VALUE or model.KEY=VALUE")
    return p.parse_args(argv)


def setup_distributed(device_arg: str | None) -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and (device_arg is None or device_arg.startswith("cuda"))
    device = torch.device(f"cuda:{local}" if cuda and world > 1 else device_arg or ("cuda" if cuda else "cpu"))
    if cuda:
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return rank, world, device


def train_loader(dataset, model_cfg, cfg: TrainConfig, rank: int, world: int) -> tuple[DataLoader, IdentitySampler]:
    transform = build_transforms(model_cfg.image_size, train=True, paired=cfg.paired_transforms,
                                 rig_shift=cfg.rig_shift_augment)
    sampler = IdentitySampler(dataset.train, cfg.batch_size, cfg.num_instances, cfg.seed, rank, world)
    loader = DataLoader(TripleDataset(dataset.train, transform), batch_size=sampler.local_batch_size,
                        sampler=sampler, num_workers=cfg.num_workers, drop_last=True,
                        persistent_workers=False, generator=torch.Generator())
    return loader, sampler


def warn_config_changes(ckpt: TrainingCheckpoint, model_cfg: SignalConfig, cfg: TrainConfig) -> None:
    """Log a warning naming every setting that differs from the ones the checkpoint was trained with."""
    if ckpt.train_config is None:
        log.info("%s stores no training config (an older checkpoint): settings not compared", ckpt.path)
    else:
        changed = config_differences(ckpt.train_config, dataclasses.asdict(cfg))
        if changed:
            log.warning("resuming %s with training settings that differ from the ones it was trained with: %s",
                        ckpt.path, "; ".join(changed))
    saved = ckpt.model.cfg
    wanted = model_cfg.replace(num_classes=saved.num_classes, num_cameras=saved.num_cameras, pretrained=None)
    changed = config_differences(saved.to_dict(), wanted.to_dict())
    if changed:
        log.warning("the model settings of the config differ from %s's; its own are used: %s", ckpt.path,
                    "; ".join(changed))


def build_or_resume(args: argparse.Namespace, model_cfg: SignalConfig, cfg: TrainConfig, dataset,
                    device: torch.device, amp: AmpPolicy, main: bool) -> tuple[SignalModel, torch.optim.Optimizer, int]:
    """(model, optimizer, first epoch): a fresh model, or the state of ``--resume``."""
    out_dir = Path(cfg.output_dir)
    if not args.resume:
        check_fresh_output_dir(out_dir)
        torch.manual_seed(cfg.seed)
        model_cfg = model_cfg.replace(num_classes=dataset.num_train_pids, num_cameras=dataset.num_train_cams)
        model = build_model(model_cfg).to(device)
        return model, build_optimizer(model, cfg), 1
    ckpt = read_training_checkpoint(args.resume, device)
    optimizer = build_optimizer(ckpt.model, cfg)
    load_optimizer_state(optimizer, ckpt)
    if amp.scaler is not None and ckpt.scaler:
        amp.scaler.load_state_dict(ckpt.scaler)
    if main:
        warn_config_changes(ckpt, model_cfg, cfg)
        repair_for_resume(out_dir, ckpt.epoch)
        print(f"resuming after epoch {ckpt.epoch} from {ckpt.path}")
    return ckpt.model, optimizer, ckpt.epoch + 1


def hold_out(cfg: TrainConfig, dataset: ReIDDataset) -> tuple[ReIDDataset, ReIDDataset | None, dict | None]:
    """(the dataset to train on, the validation split, its record for the run folder) under ``train.val_ids``."""
    if not cfg.val_ids:
        return dataset, None, None
    try:
        split = hold_out_identities(dataset, cfg.val_ids, cfg.seed)
    except ValueError as exc:
        raise ValueError(f"train.val_ids={cfg.val_ids}: {exc}") from None
    return split.train, split.validation, split.record()


def check_run_folder_place(output_dir: str, data_root: str) -> None:
    """``ValueError`` when the run folder would lie in the data root, or in a feature or triples folder
    (``--resume`` names the run folder itself: not checked against it)."""
    paths = [PathArgument("--data-root", resolved(data_root, "--data-root")),
             PathArgument("train.output_dir", resolved(output_dir, "train.output_dir"), "folder")]
    problem = output_problem(paths)
    if problem is not None:
        raise ValueError(f"train.output_dir {problem[1]}")


def run(args: argparse.Namespace) -> dict | None:
    model_cfg, cfg = load_config(args.config, args.overrides)
    check_output_folder(cfg.output_dir, "train.output_dir")
    check_run_folder_place(cfg.output_dir, args.data_root)
    check_identities_per_rank(cfg, int(os.environ.get("WORLD_SIZE", "1")))
    rank, world, device = setup_distributed(args.device)
    main = rank == 0
    if not main:
        log.setLevel(logging.ERROR)  # one rank reports
    dataset, validation, val_record = hold_out(cfg, load_dataset(cfg.dataset, args.data_root))
    if main:
        print(dataset.summary())
        if validation is not None:
            print(f"validation: {cfg.val_ids} training identities held out ({len(validation.query)} images)")
    out_dir = Path(cfg.output_dir)
    amp = AmpPolicy.resolve(cfg.precision, device)
    model, optimizer, start = build_or_resume(args, model_cfg, cfg, dataset, device, amp, main)
    train_config = dataclasses.asdict(cfg)
    if main:
        record_val_split(out_dir, val_record, resuming=bool(args.resume))
        write_run_config(out_dir, resolved_config(model.cfg, cfg))
        print(f"training precision: {amp.name}" + (" with a grad scaler" if amp.scaler else ""))
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model

    loader, sampler = train_loader(dataset, model.cfg, cfg, rank, world)
    monitor = RunMonitor(out_dir, cfg.tensorboard, start) if main else None
    test = None
    for epoch in range(start, cfg.epochs + 1):
        sampler.set_epoch(epoch)
        seed_epoch(loader, cfg.seed, epoch, rank)
        stats = train_one_epoch(net, loader, optimizer, amp, device, epoch, cfg,
                                show_progress=main and not args.no_progress)
        if main:
            print(f"epoch {epoch}: " + ", ".join(f"{k} {v:.4g}" for k, v in stats.items() if k != "lrs"), flush=True)
            test = val = None
            if evaluate_this_epoch(cfg, epoch):
                test = test_metrics(net, dataset, device, cfg, args)
                val = test_metrics(net, validation, device, cfg, args, "validation") if validation else None
            monitor.record(epoch, stats, test, val)
            if epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs:
                save_training_checkpoint(unwrap(net), optimizer, amp.scaler, epoch, out_dir, train_config)
        if world > 1 and cfg.eval_every > 0:
            dist.barrier()  # the other ranks wait while rank 0 tests
    if world > 1:
        dist.barrier()
    metrics = None
    if main:
        monitor.close()
        # the last epoch's model, always; its test was run in the loop when eval_every is on
        metrics = {"epoch": cfg.epochs, **(test or test_metrics(net, dataset, device, cfg, args))}
        print(f"test metrics after the last epoch ({cfg.epochs}):\n{format_metrics(metrics)}")
        write_json(out_dir / METRICS_FILE, metrics)
    if world > 1:
        dist.destroy_process_group()
    return metrics


def test_metrics(net, dataset, device: torch.device, cfg: TrainConfig, args: argparse.Namespace,
                 split: str = "test") -> dict[str, float]:
    """mAP, mINP, R1, R5, R10 (percent) of the model as it is now on ``dataset``'s query / gallery."""
    result = evaluate_model(unwrap(net), dataset, device, cfg.eval_batch_size, cfg.num_workers,
                            progress=not args.no_progress)
    metrics = result.as_percent_dict()
    print(f"{split} metrics: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()), flush=True)
    return metrics


def main(argv=None) -> int:
    return command_main(parse_args, run, argv, interrupted="the checkpoints written so far are kept; continue "
                                                           "with --resume")


if __name__ == "__main__":
    sys.exit(main())
