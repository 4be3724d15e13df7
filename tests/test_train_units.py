"""Training pieces without a full run: typed overrides, config checks, AMP policy, skipped
non-finite steps, per-rank seeds, run-folder repair."""
import dataclasses
import json
import logging
import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from signal_core import build_model
from tests.helpers import make_batch
from train.__main__ import main as train_main
from train.config import TrainConfig, check_identities_per_rank, load_config
from train.loop import AmpPolicy, train_one_epoch
from train.optim import build_optimizer
from train.run_folder import append_history, read_history, repair_for_resume
from train.seeding import epoch_seed, seed_epoch

REPO = Path(__file__).resolve().parents[1]
SYNTHETIC = REPO / "train" / "configs" / "synthetic.yaml"


def test_overrides_take_their_field_types():
    model, cfg = load_config(SYNTHETIC, [
        "train.base_lr=5e-6", "model.alpha=1e-1", "train.epochs=3", "train.milestones=20,40",
        "model.k2=null", "model.image_size=[128, 64]", "train.paired_transforms=yes", "model.use_lam=false",
        "train.output_dir=runs/x", "train.gamma=1"])
    assert cfg.base_lr == 5e-6 and isinstance(cfg.base_lr, float)
    assert model.alpha == 0.1 and isinstance(model.alpha, float)
    assert cfg.epochs == 3 and cfg.milestones == [20, 40] and cfg.gamma == 1.0 and isinstance(cfg.gamma, float)
    assert model.k2 is None and model.image_size == (128, 64) and model.use_lam is False
    assert cfg.paired_transforms is True and cfg.output_dir == "runs/x"
    _, cfg = load_config(SYNTHETIC, ["train.milestones=[5, 9]", "model.k2=20"])
    assert cfg.milestones == [5, 9]


@pytest.mark.parametrize("override, message", [
    ("train.epochs=abc", "train.epochs='abc': expected a whole number"),
    ("train.epochs=0", "train.epochs must be at least 1, got 0"),
    ("train.epochs=2.5", "train.epochs='2.5': expected a whole number"),
    ("train.base_lr=fast", "train.base_lr='fast': expected a finite number"),
    ("train.base_lr=0", "train.base_lr must be greater than 0.0"),
    ("train.base_lr=nan", "expected a finite number"),
    ("train.paired_transforms=maybe", "expected true or false"),
    ("train.milestones=[a]", "train.milestones='[a]': expected values such as [20, 40]"),
    ("train.precision=fp8", "train.precision must be one of auto, fp32, fp16, bf16"),
    ("train.schedule=linear", "train.schedule must be one of cosine, multistep"),
    ("train.dataset=market", "train.dataset must be one of rgbnt201, rgbnt100, msvr310"),
    ("train.batch_size=30", "must be a multiple of train.num_instances 4"),
    ("train.epochz=3", "unknown train setting 'epochz'"),
    ("model.kk=3", "unknown model setting 'kk'"),
    ("model.image_size=[128]", "model.image_size='[128]': expected 2 values"),
    ("model.layers=0", "model.layers must be positive, got 0"),
    ("model.alpha=-1", "model.alpha must be >= 0"),
    ("model.image_size=[0,-64]", "model.image_size (0, -64) must be two sides (height, width) of at least"),
    ("model.image_size=[64,36]", "model.image_size (64, 36) must be two sides divisible by patch_size 16"),
    ("model.gam_tau=0", "model.gam_tau must be positive, got 0.0"),
    ("model.k2=-3", "model.k2 must be positive, got -3"),
    ("epochs=3", "must look like train.epochs=2"),
])
def test_bad_overrides_are_one_line_errors(override, message, tmp_path, capsys):
    with pytest.raises(ValueError) as info:
        load_config(SYNTHETIC, [override])
    assert message in str(info.value)
    code = train_main(["--config", str(SYNTHETIC), "--data-root", str(tmp_path), override])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1


def test_bad_values_in_the_yaml_file_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: {preset: tiny}\ntrain: {epochs: ten}\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: train\.epochs='ten': expected a whole number"):
        load_config(path)
    path.write_text("model: {preset: tiny}\ntrain: {base_lr: 5e-6}\n")  # YAML reads 5e-6 as a string
    assert load_config(path)[1].base_lr == 5e-6


def test_fewer_than_two_identities_per_rank_is_rejected(tmp_path, capsys, monkeypatch):
    cfg = TrainConfig(batch_size=8, num_instances=4)
    check_identities_per_rank(cfg, 1)  # 2 identities: fine
    with pytest.raises(ValueError, match="gives 1 identities per process; triplet mining needs a whole number >= 2"):
        check_identities_per_rank(cfg, 2)
    with pytest.raises(ValueError, match="use batch_size 16 or more"):
        check_identities_per_rank(cfg, 2)
    monkeypatch.setenv("WORLD_SIZE", "8")  # as under torchrun: refused before any process group starts
    code = train_main(["--config", str(SYNTHETIC), "--data-root", str(tmp_path)])  # batch 32 = 8 ids x 4
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: train.batch_size 32 over 8 process(es) x num_instances 4 gives "
                                        "1 identities per process")


def test_amp_policy_follows_the_authors_on_cuda():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    auto_cpu = AmpPolicy.resolve("auto", cpu)
    assert (auto_cpu.name, auto_cpu.dtype, auto_cpu.scaler) == ("fp32", None, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # without CUDA, GradScaler warns and disables itself
        auto_cuda = AmpPolicy.resolve("auto", cuda)
    assert auto_cuda.name == "fp16" and auto_cuda.dtype == torch.float16 and auto_cuda.scaler is not None
    bf16 = AmpPolicy.resolve("bf16", cuda)
    assert bf16.dtype == torch.bfloat16 and bf16.scaler is None
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        AmpPolicy.resolve("fp16", cpu)
    for name in ("rgbnt201", "rgbnt100", "msvr310"):
        assert load_config(REPO / "train" / "configs" / f"{name}.yaml")[1].precision == "auto"


class _Poisoned(torch.nn.Module):
    """The model, with the loss replaced by NaN on some steps and the gradients by inf on others."""

    def __init__(self, model, nan_steps=(), inf_grad_steps=()):
        super().__init__()
        self.model, self.nan_steps, self.inf_grad_steps, self.step = model, set(nan_steps), set(inf_grad_steps), 0

    def forward(self, *args, **kwargs):
        self.step += 1
        out = self.model(*args, **kwargs)
        if self.step in self.nan_steps:
            return dataclasses.replace(out, loss=out.loss * float("nan"))
        if self.step in self.inf_grad_steps:
            param = self.model.heads.concat.bn.weight  # finite loss, infinite gradient
            return dataclasses.replace(out, loss=out.loss + _InfGrad.apply(param).sum() * 0)
        return out


class _InfGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, float("inf"))


def _batches(cfg, n):
    images, cams, targets = make_batch(cfg)
    return [{"rgb": images[0], "nir": images[1], "tir": images[2], "pid": targets, "camid": cams}] * n


def _run_epoch(tiny_cfg, wrapper_kwargs, steps):
    """(epoch stats, final weights) of one epoch of ``steps`` identical batches."""
    torch.manual_seed(0)
    model = build_model(tiny_cfg)
    cfg = TrainConfig(epochs=1, warmup_epochs=0, lr_noise_pct=0)
    optimizer = build_optimizer(model, cfg)
    stats = train_one_epoch(_Poisoned(model, **wrapper_kwargs), _batches(tiny_cfg, steps), optimizer,
                            AmpPolicy.resolve("fp32", torch.device("cpu")), torch.device("cpu"), 1, cfg,
                            show_progress=False)
    return stats, dict(model.named_parameters())


@pytest.mark.parametrize("kind", ["nan_steps", "inf_grad_steps"])
def test_a_non_finite_step_is_skipped_and_logged(tiny_cfg, caplog, kind):
    clean, clean_weights = _run_epoch(tiny_cfg, {}, steps=1)
    with caplog.at_level(logging.WARNING, logger="train"):
        stats, weights = _run_epoch(tiny_cfg, {kind: [1]}, steps=2)  # skip, step
    reason = "loss nan" if kind == "nan_steps" else "gradients not finite"
    assert any(f"epoch 1 step 1: {reason}, optimizer step skipped" in r.getMessage() for r in caplog.records)
    assert "epoch 1: skipped 1 of 2 optimizer steps" in caplog.text
    assert clean["skipped_steps"] == 0 and stats["skipped_steps"] == 1
    # the skipped step left the weights and Adam's moments untouched: the weights of one clean step
    # (BN running statistics are updated by the forward pass, as in the authors' fp16 loop)
    for key, value in clean_weights.items():
        assert torch.equal(weights[key], value), key
    if kind == "nan_steps":  # the NaN loss is left out of the epoch's means
        assert stats["loss"] == pytest.approx(clean["loss"], rel=1e-6)


def test_an_epoch_without_a_finite_loss_is_an_error(tiny_cfg):
    with pytest.raises(ValueError, match="epoch 1: the loss was not finite in any of its 2 steps"):
        _run_epoch(tiny_cfg, {"nan_steps": [1, 2]}, steps=2)


class _Draws(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.rand(())


def _draws(seed, epoch, rank, workers):
    loader = DataLoader(_Draws(), batch_size=4, num_workers=workers, generator=torch.Generator())
    seed_epoch(loader, seed, epoch, rank)
    return torch.cat([b for b in loader]).tolist()


@pytest.mark.parametrize("workers", [0, 1])
def test_loader_randomness_differs_across_ranks_and_repeats(workers):
    seeds = {(e, r): epoch_seed(1234, e, r) for e in (1, 2, 3) for r in (0, 1, 2)}
    assert len(set(seeds.values())) == 9  # no collision, e.g. (epoch 1, rank 1) vs (epoch 2, rank 0)
    assert epoch_seed(1234, 2, 1) == seeds[2, 1] and 0 <= seeds[2, 1] < 2**63
    rank0, rank1 = _draws(1234, 1, 0, workers), _draws(1234, 1, 1, workers)
    assert rank0 != rank1 and rank0 == _draws(1234, 1, 0, workers)
    assert _draws(1234, 2, 0, workers) != rank0


def test_resume_repair_cuts_history_and_removes_temporaries(tmp_path, caplog):
    for epoch in (1, 2, 3):
        append_history(tmp_path, {"epoch": epoch, "loss": 1.0 / epoch})
    with open(tmp_path / "history.jsonl", "a") as f:
        f.write('{"epoch": 4, "lo')  # a line cut by the crash
    (tmp_path / ".epoch_003.safetensors.x1y2.tmp").write_bytes(b"half")
    (tmp_path / "epoch_002.safetensors").write_bytes(b"kept")
    with caplog.at_level(logging.WARNING, logger="train"):
        repair = repair_for_resume(tmp_path, 2)
    assert [r["epoch"] for r in read_history(tmp_path)] == [1, 2]
    assert repair.dropped_history_lines == 2 and repair.removed_temporaries == [".epoch_003.safetensors.x1y2.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_002.safetensors", "history.jsonl"]
    assert "removed 2 history line(s)" in caplog.text
    assert json.loads((tmp_path / "history.jsonl").read_text().splitlines()[1]) == {"epoch": 2, "loss": 0.5}
