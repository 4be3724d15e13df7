"""Tests for the procedural benchmark (the train.synthetic package) and the histogram baseline (train/baselines.py)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from signal_core.data import load_dataset
from train import baselines, synthetic
from train.synthetic import SyntheticSpec, export_demo_assets, generate, render_frame

TINY = SyntheticSpec(train_ids=3, test_ids=4, cameras=3, per_camera=2, height=64, width=32)
# every difficulty off: the object alone on a plain background
CLEAN = TINY.replace(viewpoint=0.0, illumination=0.0, night=0.0, clutter=0.0, misalign=0.0, noise=0.0)


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _frames(spec: SyntheticSpec, split: str = "test"):
    return [render_frame(spec, split, pid, cam, i) for pid in spec.pids(split)
            for cam in range(spec.cameras) for i in range(spec.per_camera)]


def test_same_seed_byte_identical_and_different_seed_differs(tmp_path):
    spec = TINY.replace(test_ids=2, train_ids=2)
    generate(spec, tmp_path / "a", progress=False)
    generate(spec, tmp_path / "b", progress=False)
    generate(spec.replace(seed=1), tmp_path / "c", progress=False)
    a, b, c = (_hashes(tmp_path / n) for n in "abc")
    assert a == b
    assert a.keys() == c.keys()
    images = [k for k in a if k.endswith(".jpg")]
    assert all(a[k] != c[k] for k in images)


def test_order_independent_rendering():
    """One image depends only on its own key, not on what was rendered before."""
    first = render_frame(TINY, "test", 5, 1, 1)
    _frames(TINY)
    again = render_frame(TINY, "test", 5, 1, 1)
    assert np.array_equal(first.rgb, again.rgb) and np.array_equal(first.tir, again.tir)


def test_layout_parses_with_expected_counts(tmp_path):
    summary = generate(TINY, tmp_path, progress=False)
    ds = load_dataset("rgbnt201", tmp_path)
    per_id = TINY.cameras * TINY.per_camera
    assert len(ds.train) == TINY.train_ids * per_id == summary["train_triples"]
    assert len(ds.query) == len(ds.gallery) == TINY.test_ids * per_id == summary["test_triples"]
    assert ds.num_train_pids == TINY.train_ids and ds.num_train_cams == TINY.cameras
    assert {r.pid for r in ds.query} == set(TINY.pids("test"))
    assert {r.camid for r in ds.query} == set(range(TINY.cameras))
    name = Path(ds.query[0].paths[0]).name
    assert name == "000004_cam1_000.jpg" and all(Path(p).name == name for p in ds.query[0].paths)
    meta = json.loads((tmp_path / "synthetic.json").read_text())
    assert meta["spec"] == json.loads(json.dumps(TINY.__dict__)) and meta["version"] == synthetic.GENERATOR_VERSION
    with pytest.raises(FileExistsError):
        generate(TINY, tmp_path, progress=False)
    generate(TINY, tmp_path, progress=False, overwrite=True)


def test_level_zero_removes_each_difficulty():
    clean = _frames(CLEAN)
    # misalign 0: NIR / TIR object masks equal the RGB one; > 0: they move
    assert all(np.array_equal(f.masks[0], f.masks[1]) and np.array_equal(f.masks[0], f.masks[2]) for f in clean)
    shifted = _frames(CLEAN.replace(misalign=3.0))
    assert sum(not np.array_equal(f.masks[0], f.masks[1]) for f in shifted) >= len(shifted) // 2
    # clutter 0 and noise 0: the background is one constant value per modality; noise > 0 breaks it
    def bg_spread(f):
        bg = f.masks.max(0) == 0
        return max(int(np.ptp(f.rgb[bg])), int(np.ptp(f.nir[bg])))
    assert all(bg_spread(f) == 0 for f in clean)
    assert all(bg_spread(f) > 0 for f in _frames(CLEAN.replace(noise=1.0)))
    assert all(bg_spread(f) > 0 for f in _frames(CLEAN.replace(clutter=1.0)))
    # viewpoint 0 and illumination 0: every image of an identity is identical across cameras
    for pid in CLEAN.pids("test"):
        imgs = [render_frame(CLEAN, "test", pid, c, i) for c in range(CLEAN.cameras) for i in range(2)]
        assert all(np.array_equal(imgs[0].rgb, f.rgb) and np.array_equal(imgs[0].masks, f.masks) for f in imgs)
    posed = [render_frame(CLEAN.replace(viewpoint=1.0), "test", pid, c, 0)
             for pid in CLEAN.pids("test") for c in range(CLEAN.cameras)]
    assert len({f.masks[0].tobytes() for f in posed}) == len(posed)
    lit = [render_frame(CLEAN.replace(illumination=1.0), "test", 5, c, 0) for c in range(CLEAN.cameras)]
    assert len({f.rgb.tobytes() for f in lit}) == len(lit)
    # night 0: no night image; night 1: all, with RGB much darker than NIR
    assert not any(f.meta["night"] for f in clean)
    night = _frames(CLEAN.replace(night=1.0))
    assert all(f.meta["night"] for f in night)
    assert all(f.rgb.mean() < 0.5 * c.rgb.mean() and np.array_equal(f.nir, c.nir) for f, c in zip(night, clean))


def test_modalities_differ_and_viewpoints_vary():
    frames = _frames(TINY.replace(test_ids=12))
    f = frames[0]
    grey = f.rgb.astype(np.float32).mean(2)
    assert np.corrcoef(grey.ravel(), f.nir.ravel())[0, 1] < 0.95
    assert len({fr.meta["view"] for fr in frames}) >= 3
    spec = TINY.replace(train_ids=40, test_ids=40)
    kinds = {synthetic.make_identity(spec, p).kind for p in range(1, 81)}
    assert kinds == {"person", "vehicle"}


def test_demo_export(tmp_path):
    generate(TINY, tmp_path / "data", progress=False)
    info = export_demo_assets(tmp_path / "data", tmp_path / "demo", num_ids=3)
    assert info["ids"] == info["query"] == 3
    assert info["gallery"] == 3 * (TINY.cameras * TINY.per_camera - 1)
    for sub, count in (("query", 3), ("gallery", info["gallery"])):
        names = [sorted(p.name for p in (tmp_path / "demo" / sub / m).iterdir()) for m in ("RGB", "NI", "TI")]
        assert names[0] == names[1] == names[2] and len(names[0]) == count
    queries = sorted((tmp_path / "demo" / "query" / "RGB").iterdir())
    assert all("_cam1_000" in q.name for q in queries)
    assert info["bytes"] == sum(p.stat().st_size for p in (tmp_path / "demo").rglob("*") if p.is_file())


def test_histogram_baseline_cli(tmp_path, capsys):
    generate(TINY, tmp_path / "data", progress=False)
    out = tmp_path / "m" / "metrics.json"
    assert baselines.main(["--data-root", str(tmp_path / "data"), "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads(out.read_text())
    assert set(metrics) == {"mAP", "mINP", "R1", "R5", "R10"}
    assert all(0.0 <= v <= 100.0 for v in metrics.values())
    assert "mAP" in capsys.readouterr().out
    clean = baselines.evaluate_histograms(load_dataset("rgbnt201", tmp_path / "data"), modalities=["rgb"])
    assert 0.0 <= clean.mAP <= 1.0
    assert baselines.main(["--data-root", str(tmp_path / "data"), "--modalities", "xyz"]) == 2


def test_cli_writes_benchmark(tmp_path, capsys):
    args = ["--out", str(tmp_path / "d"), "--train-ids", "2", "--test-ids", "2", "--cameras", "2", "--per-camera", "1",
            "--height", "48", "--width", "24", "--night", "0", "--no-progress"]
    assert synthetic.main(args) == 0
    ds = load_dataset("rgbnt201", tmp_path / "d")
    assert len(ds.train) == 4 and len(ds.gallery) == 4
    assert synthetic.main(args) == 2  # exists, no --overwrite
    assert synthetic.main(args + ["--cameras", "12"]) == 2  # invalid spec
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize("flag, value, message", [
    ("--noise", "1e300", "noise must be in [0, 10], got 1e+300"),
    ("--illumination", "1e300", "illumination must be in [0, 4], got 1e+300"),
    ("--misalign-scale", "1.5", "misalign_scale must be in [0, 0.5], got 1.5"),
    ("--misalign-rotation", "31", "misalign_rotation must be in [0, 30], got 31"),
    ("--clutter", "2.5", "clutter must be in [0, 2], got 2.5"),
])
def test_difficulty_levels_out_of_range_are_one_line(tmp_path, capsys, flag, value, message):
    """Once: --noise / --illumination 1e300 overflowed into black or NaN images with RuntimeWarnings, exit 0."""
    out = tmp_path / "d"
    assert synthetic.main(["--out", str(out), "--train-ids", "1", "--test-ids", "1", "--cameras", "1",
                           "--per-camera", "1", flag, value, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: SyntheticSpec: {message}\n" and not out.exists()
    with pytest.raises(ValueError, match=r"noise must be in \[0, 10\], got nan"):
        TINY.replace(noise=float("nan"))
    assert TINY.replace(noise=10.0, illumination=4.0, misalign_scale=0.5).noise == 10.0  # the bounds are valid


def test_demo_assets_never_delete_what_the_generator_did_not_write(tmp_path, capsys):
    """--demo-assets DIR used to delete DIR/gallery and DIR/query with whatever they held."""
    args = ["--out", str(tmp_path / "d"), "--train-ids", "2", "--test-ids", "3", "--cameras", "2", "--per-camera", "1",
            "--height", "48", "--width", "24", "--no-progress", "--demo-ids", "2", "--demo-assets", str(tmp_path / "a")]
    mine = tmp_path / "a" / "gallery" / "RGB" / "my_photo.jpg"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"precious")
    assert synthetic.main(args) == 2
    assert "already holds demo assets (query/, gallery/ or demo.json): pass --overwrite" in capsys.readouterr().err
    assert synthetic.main(args + ["--overwrite"]) == 2  # the benchmark is replaced, the demo assets are not
    err = capsys.readouterr().err
    assert "holds gallery/RGB/my_photo.jpg but no demo.json: these files were not written by this generator" in err
    assert mine.read_bytes() == b"precious"
    mine.unlink()
    assert synthetic.main(args + ["--overwrite"]) == 0  # empty folders are used as they are
    written = set(json.loads((tmp_path / "a" / "demo.json").read_text())["files"])
    assert written == {p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*.jpg")}
    mine.write_bytes(b"precious")
    assert synthetic.main(args + ["--overwrite"]) == 2
    assert "holds files this generator did not write (gallery/RGB/my_photo.jpg); nothing was deleted" in \
        capsys.readouterr().err
    assert mine.read_bytes() == b"precious" and len(list((tmp_path / "a").rglob("*.jpg"))) == len(written) + 1
    mine.unlink()
    assert synthetic.main(args[:-3] + ["1", "--demo-assets", str(tmp_path / "a"), "--overwrite"]) == 0
    assert len(json.loads((tmp_path / "a" / "demo.json").read_text())["query"]) == 1  # replaced, 1 identity now


def test_overwrite_of_a_benchmark_removes_only_its_own_files(tmp_path):
    generate(TINY, tmp_path, progress=False)
    notes = tmp_path / "test" / "NOTES.md"
    notes.write_text("my notes")
    with pytest.raises(FileExistsError, match=r"holds files this generator did not write \(test/NOTES.md\)"):
        generate(TINY.replace(seed=1), tmp_path, progress=False, overwrite=True)
    assert notes.read_text() == "my notes" and (tmp_path / "synthetic.json").is_file()
    notes.unlink()
    old = json.loads((tmp_path / "synthetic.json").read_text())["frames"]
    generate(TINY.replace(train_ids=2), tmp_path, progress=False, overwrite=True)  # fewer files than before
    assert len(json.loads((tmp_path / "synthetic.json").read_text())["frames"]) < len(old)
    frames = json.loads((tmp_path / "synthetic.json").read_text())["frames"]
    assert len(list(tmp_path.rglob("*.jpg"))) == 3 * len(frames)
    (tmp_path / "demo").mkdir()
    export_demo_assets(tmp_path, tmp_path / "demo", num_ids=2)
    manifest = json.loads((tmp_path / "demo" / "demo.json").read_text())
    del manifest["files"]  # a demo.json written before it listed its files: the triples' names say the same
    (tmp_path / "demo" / "demo.json").write_text(json.dumps(manifest))
    export_demo_assets(tmp_path, tmp_path / "demo", num_ids=3, overwrite=True)
    assert len(list((tmp_path / "demo" / "query").rglob("*.jpg"))) == 9
