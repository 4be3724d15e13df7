"""train.val_ids: training identities held out as a validation split (by identity, seeded, recorded), the
classifier heads shrinking to the identities left, per-epoch validation metrics in history.jsonl, and
the refusals."""
from __future__ import annotations

import json

import pytest

from signal_core import load_checkpoint
from signal_core.data import ReIDDataset, TripleRecord, hold_out_identities, load_dataset
from tests.test_train import history, write_config, write_rgbnt201
from train.__main__ import main as train_main
from train.config import load_config

METRICS = {"mAP", "mINP", "R1", "R5", "R10"}


def _dataset(ids: int = 8, per_id: int = 3, cams=(0, 1, 2)) -> ReIDDataset:
    """``ids`` relabelled training identities with ``per_id`` images each, cameras cycling through ``cams``."""
    train = [TripleRecord((f"/d/{pid:06d}_{k}.png",) * 3, pid, cams[k % len(cams)])
             for pid in range(ids) for k in range(per_id)]
    test = [TripleRecord(("/t/x.png",) * 3, 900, 0)]
    return ReIDDataset("RGBNT201", train, test, list(test), num_train_cams=3)


def test_the_split_is_by_identity_disjoint_and_relabelled():
    data = _dataset()
    split = hold_out_identities(data, 3, seed=7)
    held = set(split.held_out)
    assert len(held) == 3 and held <= set(range(8))
    # every image of a held-out identity is in the validation split, and none of them trains
    assert {r.paths[0] for r in split.validation.query} == {r.paths[0] for r in data.train if r.pid in held}
    assert split.validation.gallery == split.validation.query and len(split.validation.query) == 9
    kept_paths = {r.paths[0] for r in split.train.train}
    assert len(kept_paths) == 15 and not kept_paths & {r.paths[0] for r in split.validation.query}
    # the remaining identities are relabelled 0..4 in their old order: the heads shrink to 5 classes
    old = sorted(set(range(8)) - held)
    assert sorted({r.pid for r in split.train.train}) == [0, 1, 2, 3, 4] and split.train.num_train_pids == 5
    for record in split.train.train:
        assert record.paths[0].startswith(f"/d/{old[record.pid]:06d}_")
    assert split.train.num_train_cams == 3 and split.train.query == data.query


def test_the_split_is_seeded_and_recorded():
    data = _dataset()
    draws = {seed: hold_out_identities(data, 3, seed).held_out for seed in range(6)}
    assert hold_out_identities(data, 3, seed=2).held_out == draws[2]  # same seed, same split
    assert len(set(draws.values())) > 1  # the seed draws
    record = hold_out_identities(data, 2, seed=2).record()
    assert record["seed"] == 2 and record["val_ids"] == 2 and record["train_ids"] == 8
    labels = record["held_out_labels"]
    assert labels == sorted(labels) and len(set(labels)) == 2
    assert record["held_out_files"] == sorted(f"{p:06d}_{k}.png" for p in labels for k in range(3))


def test_a_split_that_cannot_work_is_refused():
    data = _dataset(ids=4)
    for count in (3, 4, 0):
        with pytest.raises(ValueError) as info:
            hold_out_identities(data, count, seed=1)
        assert str(info.value) == (f"holding out {count} of the 4 training identities leaves {4 - count} to train "
                                   "on; hold out 1 to 2.")
    one_camera = _dataset(ids=4, cams=(1,))
    with pytest.raises(ValueError, match=r"^none of the 2 held-out identities has images from two cameras"):
        hold_out_identities(one_camera, 2, seed=1)


def test_bad_val_ids_are_one_line_errors(tmp_path, capsys):
    data = write_rgbnt201(tmp_path / "RGBNT201", train_ids=6, test_ids=2, per_id=2)
    with pytest.raises(ValueError, match=r"^train\.val_ids must be at least 0, got -1\.$"):
        load_config(write_config(tmp_path / "a.yaml", tmp_path / "a", val_ids=-1, eval_every=1))
    with pytest.raises(ValueError, match=r"^train\.val_ids=2 holds out a validation split .* set train\.eval_every"):
        load_config(write_config(tmp_path / "b.yaml", tmp_path / "b", val_ids=2))
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "run", val_ids=5, eval_every=1)
    assert train_main(["--config", str(cfg), "--data-root", str(data), "--no-progress"]) == 2
    assert capsys.readouterr().err == ("error: train.val_ids=5: holding out 5 of the 6 training identities leaves 1 "
                                       "to train on; hold out 1 to 4.\n")
    assert not (tmp_path / "run" / "val_split.json").exists()


@pytest.mark.slow
def test_training_logs_validation_metrics_and_trains_on_the_rest(tmp_path, capsys):
    data = write_rgbnt201(tmp_path / "RGBNT201")  # 6 training identities, 2 cameras each
    run = tmp_path / "run"
    cfg = write_config(tmp_path / "tiny.yaml", run, val_ids=2, eval_every=1, seed=5)
    assert train_main(["--config", str(cfg), "--data-root", str(data), "--no-progress"]) == 0
    records = history(run)
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        assert set(r["val"]) == set(r["test"]) == METRICS and 0 < r["val"]["mAP"] <= 100
    expected = hold_out_identities(load_dataset("rgbnt201", data), 2, seed=5).record()
    assert json.loads((run / "val_split.json").read_text()) == expected and len(expected["held_out_files"]) == 8
    assert load_checkpoint(run / "epoch_002.safetensors").cfg.num_classes == 4  # 6 - 2 identities
    final = json.loads((run / "metrics.json").read_text())
    assert {k: final[k] for k in METRICS} == records[-1]["test"]  # the run still ends with the last epoch's test
    capsys.readouterr()
    # a resumed run must hold out the same identities
    again = ["--config", str(cfg), "--data-root", str(data), "--no-progress", "--resume", str(run), "train.epochs=3"]
    assert train_main([*again, "train.val_ids=3"]) == 2
    err = capsys.readouterr().err.splitlines()  # after the warning naming the changed settings
    assert err[-1] == (f"error: {run} held out 2 validation identities drawn with seed 5 (val_split.json), not held "
                       "out 3 validation identities drawn with seed 5 as asked: resume with the run's own "
                       "train.val_ids and train.seed.")
    assert [r["epoch"] for r in history(run)] == [1, 2]
