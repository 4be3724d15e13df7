"""train.eval_every and train.tensorboard: test metrics during training, recorded but never used to pick."""
import json

import pytest

from signal_core import load_checkpoint
from signal_core.viz.plots import training_curves_figure
from tests.test_train import history, write_config, write_rgbnt201
from train.__main__ import main as train_main
from train.config import load_config
from train.evaluate import main as evaluate_main
from train.monitor import evaluate_this_epoch
from train.report.figures import write_training_curves

METRICS = {"mAP", "mINP", "R1", "R5", "R10"}


@pytest.fixture(scope="module")
def monitored(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("monitor")
    data = write_rgbnt201(tmp / "RGBNT201")
    run = tmp / "run"
    cfg = write_config(tmp / "tiny.yaml", run, epochs=3, eval_every=2, tensorboard=True)
    assert train_main(["--config", str(cfg), "--data-root", str(data), "--no-progress"]) == 0
    return data, cfg, run


def test_which_epochs_are_tested(tmp_path):
    _, cfg = load_config(write_config(tmp_path / "c.yaml", tmp_path / "out", epochs=7, eval_every=3))
    assert [e for e in range(1, 8) if evaluate_this_epoch(cfg, e)] == [3, 6, 7]  # and always the last
    _, off = load_config(write_config(tmp_path / "d.yaml", tmp_path / "out"))
    assert off.eval_every == 0 and not any(evaluate_this_epoch(off, e) for e in range(1, 3))


@pytest.mark.slow
def test_eval_every_logs_test_metrics_and_keeps_the_last_epoch(monitored, tmp_path):
    data, cfg, run = monitored
    records = history(run)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert "test" not in records[0] and set(records[1]["test"]) == set(records[2]["test"]) == METRICS
    assert set(records[0]["lrs"]) == {"backbone", "base+classifier", "bias"}
    assert records[0]["lr"] == max(records[0]["lrs"].values())
    final = json.loads((run / "metrics.json").read_text())
    assert final["epoch"] == 3 and {k: final[k] for k in METRICS} == records[2]["test"]
    # the metrics of the run equal a plain evaluation of the last epoch's weights (no pick by test score)
    out = tmp_path / "m.json"
    last_epoch = str(run / "epoch_003.safetensors")
    assert evaluate_main(["--config", str(cfg), "--data-root", str(data), "--weights", last_epoch,
                          "--no-progress", "--num-workers", "0", "--out", str(out)]) == 0
    plain = json.loads(out.read_text())
    for key in METRICS:
        assert plain[key] == pytest.approx(final[key], abs=1e-6)
    assert load_checkpoint(run / "epoch_003.safetensors").cfg.num_classes == 6


@pytest.mark.slow
def test_tensorboard_has_losses_learning_rates_and_test_metrics(monitored):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, _, run = monitored
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss/loss", "loss/id_concat", "loss/gam", "loss/lam", "lr/backbone", "test/mAP", "test/R1"} <= tags
    assert [e.step for e in events.Scalars("loss/loss")] == [1, 2, 3]
    assert [e.step for e in events.Scalars("test/mAP")] == [2, 3]
    records = history(run)
    assert events.Scalars("test/mAP")[-1].value == pytest.approx(records[2]["test"]["mAP"], rel=1e-6)
    assert events.Scalars("loss/loss")[0].value == pytest.approx(records[0]["loss"], rel=1e-6)


@pytest.mark.slow
def test_report_curves_show_the_test_metrics(monitored, tmp_path):
    _, _, run = monitored
    figure = write_training_curves(run / "history.jsonl", tmp_path)
    assert figure is not None and (tmp_path / figure.file).is_file()
    fig = training_curves_figure(history(run))
    losses, metrics = fig.axes
    assert {line.get_label() for line in metrics.get_lines()} == {f"test/{m}" for m in METRICS}
    assert not any("lr" in line.get_label() for line in losses.get_lines())
    assert list(metrics.get_lines()[0].get_xdata()) == [2, 3]
