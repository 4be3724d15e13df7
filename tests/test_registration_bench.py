"""``python -m benchmarks.registration`` on a tiny generated alignment preset: every candidate row is written, and
the chosen estimator follows the recorded rig shifts where the shuffled-RGB control does not."""
from __future__ import annotations

import json

from benchmarks.registration import main
from train.synthetic.spec import SyntheticSpec
from train.synthetic.writer import generate


def test_the_estimator_benchmark_measures_the_candidates_on_generated_data(tmp_path, capsys):
    root = tmp_path / "bench"
    generate(SyntheticSpec.preset("alignment", train_ids=1, test_ids=3, cameras=4, per_camera=2), root, progress=False)
    out = tmp_path / "estimator.json"
    assert main(["--data-root", str(root), "--no-cost", "--out", str(out), "--markdown", str(tmp_path / "t.md")]) == 0
    summary = json.loads(out.read_text())["summary"]
    assert len(summary) == 9 and "orientation, Hann window" in summary
    chosen, control = summary["orientation"], summary["orientation, RGB of another triple (control)"]
    for name in ("nir", "tir"):
        assert chosen[name]["r"]["mean"] > 0.8 and chosen[name]["slope"]["mean"] > 0.7, chosen[name]
        assert control[name]["off_2px"]["mean"] > chosen[name]["off_2px"]["mean"]
    assert "| orientation |" in (tmp_path / "t.md").read_text()
    capsys.readouterr()
