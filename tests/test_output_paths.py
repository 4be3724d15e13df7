"""An output never lands in what a command reads (train/output_paths.py), ``--out -`` and over-long names are one
line, ``--threads`` is bounded by the CPU cores, and ``train.extract --index`` is checked (and its Milvus Lite folder
created) before the extraction, not after it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import train.__main__ as train_cmd
from signal_core import SignalConfig, build_model, save_checkpoint
from signal_core.retrieval.feature_store import read_features
from train import baselines, evaluate, export, extract, flags, search
from train.ablation.__main__ import main as ablation_main
from train.report.__main__ import main as report_main
from train.synthetic import cli as synthetic

from .test_extract_search import error_line, gallery_names, make_triples, run_extract

COMMANDS = {"evaluate": evaluate.main, "report": report_main, "extract": extract.main, "search": search.main,
            "export": export.main, "synthetic": synthetic.main, "baselines": baselines.main, "ablation": ablation_main}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Tiny weights, a triples folder and its feature folder (12 triples, 3 shards)."""
    root = tmp_path_factory.mktemp("outputs")
    torch.manual_seed(0)
    weights = root / "tiny.safetensors"
    save_checkpoint(build_model(SignalConfig.preset("tiny", num_classes=6, num_cameras=3)), weights)
    triples = make_triples(root / "triples", gallery_names())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    assert run_extract(weights, triples, root / "feats") == 0
    torch.set_num_threads(threads)
    return {"root": root, "weights": weights, "triples": triples, "feats": root / "feats"}


def refused(command: str, argv: list[str], capsys) -> str:
    """The one error line of ``command`` refusing ``argv`` while parsing (exit 2)."""
    with pytest.raises(SystemExit) as info:
        COMMANDS[command](argv)
    assert info.value.code == 2
    return error_line(capsys)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_search_outputs_inside_the_feature_folder_are_refused(data, tmp_path, capsys):
    """--out F/manifest.json used to exit 0 and overwrite the manifest: the folder no longer opened."""
    feats = data["feats"]
    before = folder_bytes(feats)
    link = tmp_path / "link"
    link.symlink_to(feats)
    common = ["--features", str(feats), "--queries", str(feats)]
    for flag, target in (("--out", feats / "manifest.json"), ("--out", feats / "shard-00000.npz"),
                         ("--html", feats / "manifest.json"), ("--out", link / "manifest.json"),
                         ("--out", feats / "new" / "r.json")):
        argv = common + ["--out", str(tmp_path / "r.json")] + ([flag, str(target)] if flag == "--html" else [])
        if flag == "--out":
            argv = common + ["--out", str(target)]
        line = refused("search", argv, capsys)
        assert line.startswith(f"error: argument {flag}: '{feats.resolve()}")
        assert f"lies inside --features '{feats.resolve()}', which this command reads: write it elsewhere" in line
    assert folder_bytes(feats) == before and len(read_features(feats).features) == 12


def test_outputs_equal_to_or_inside_an_input_are_refused(data, tmp_path, capsys):
    weights, triples, feats = data["weights"], data["triples"], data["feats"]
    root = tmp_path / "dataset"
    root.mkdir()
    config = ["--config", "train/configs/synthetic.yaml", "--untrained", "--no-progress"]
    cases = [
        ("report", config + ["--data-root", str(root), "--out", str(root)], "--out", "is also --data-root"),
        ("evaluate", config + ["--data-root", str(root), "--out", str(root / "m.json")], "--out",
         "lies inside --data-root"),
        ("evaluate", config + ["--data-root", str(root), "--report", str(root / "report")], "--report",
         "lies inside --data-root"),
        ("baselines", ["--data-root", str(root), "--out", str(root / "m.json")], "--out", "lies inside --data-root"),
        ("extract", ["--weights", str(weights), "--triples", str(triples), "--out", str(triples / "feats")], "--out",
         "lies inside --triples"),
        ("export", ["--weights", str(weights), "--calibration", str(triples), "--out", str(triples / "RGB" / "m.onnx")],
         "--out", "lies inside --calibration"),
        ("search", ["--index", f"milvus:{feats}", "--queries", str(triples), "--out", str(feats / "r.json")], "--out",
         "lies inside --index"),
        ("ablation", ["--config", "train/configs/alignment.yaml", "--data-root", str(root), "--out", str(root),
                      "--summary-only"], "--out", "is also --data-root"),
    ]
    for command, argv, flag, words in cases:
        line = refused(command, argv, capsys)
        assert line.startswith(f"error: argument {flag}: ") and words in line, line
        assert "which this command reads" in line
    assert not (root / "report").exists() and not (triples / "feats").exists()


def test_a_run_folder_inside_the_data_root_is_refused(tmp_path, capsys):
    root = tmp_path / "dataset"
    root.mkdir()
    assert train_cmd.main(["--config", "train/configs/synthetic.yaml", "--data-root", str(root), "--no-progress",
                           f"train.output_dir={root / 'runs' / 'x'}"]) == 2
    assert error_line(capsys) == (f"error: train.output_dir '{root / 'runs' / 'x'}' lies inside --data-root '{root}', "
                                  "which this command reads: write it elsewhere.")
    assert list(root.iterdir()) == []


def test_a_symlink_loop_is_one_line(tmp_path, capsys):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    line = refused("search", ["--features", "f", "--queries", "q", "--out", str(tmp_path / "loop" / "r.json")], capsys)
    assert line.startswith(f"error: argument --out '{tmp_path / 'loop' / 'r.json'}' cannot be followed")


def test_a_hard_link_to_an_input_is_the_input(data, tmp_path, capsys):
    link = tmp_path / "other-name.safetensors"
    os.link(data["weights"], link)
    line = refused("export", ["--weights", str(data["weights"]), "--out", str(link)], capsys)
    assert "is also --weights, which this command reads: choose another path" in line


def test_outputs_into_a_feature_or_triples_folder_it_does_not_write_are_refused(data, tmp_path, capsys):
    """--report F (a feature folder the command does not read) used to write the report among its shards."""
    feats, triples = data["feats"], data["triples"]
    config = ["--config", "train/configs/synthetic.yaml", "--data-root", str(tmp_path), "--untrained"]
    line = refused("evaluate", config + ["--report", str(feats)], capsys)
    assert line.startswith(f"error: argument --report: '{feats.resolve()}' is a feature folder (python -m "
                           "train.extract), which this command does not write: choose another path")
    line = refused("report", config + ["--out", str(feats / "report")], capsys)
    assert line.startswith(f"error: argument --out: '{feats.resolve() / 'report'}' lies inside '{feats.resolve()}', "
                           "a feature folder (python -m train.extract), which this command does not write: write it "
                           "elsewhere")
    line = refused("synthetic", ["--out", str(triples / "bench")], capsys)
    assert "a triples folder (RGB/, NI/, TI/), which this command does not write" in line
    line = refused("extract", ["--weights", "w", "--triples", "t", "--out", str(feats / "sub")], capsys)
    assert "a feature folder (python -m train.extract), which" in line
    line = refused("extract", ["--weights", "w", "--triples", "t", "--out", str(tmp_path / "f"), "--index",
                               str(tmp_path / "f" / "g.sgi")], capsys)  # the same refusal before and after the run
    assert line.startswith("error: argument --index: ") and "lies inside --out" in line


def test_what_is_not_an_overwrite_is_allowed(data, tmp_path):
    feats, triples = data["feats"], data["triples"]
    extract.parse_args(["--weights", str(data["weights"]), "--triples", str(triples), "--out", str(feats)])  # resume
    args = search.parse_args(["--features", str(feats), "--queries", str(feats), "--out", str(tmp_path / "r.json"),
                              "--html", str(tmp_path / "r.html")])
    assert args.features == args.queries  # two inputs may be the same
    extract.parse_args(["--weights", str(data["weights"]), "--triples", str(triples), "--out", str(data["root"])])
    synthetic.parse_args(["--out", str(tmp_path / "b"), "--demo-assets", str(tmp_path / "b")])  # two folders


@pytest.mark.parametrize("command, flag", [("search", "--out"), ("search", "--html"), ("evaluate", "--out"),
                                           ("export", "--out"), ("baselines", "--out"), ("extract", "--out"),
                                           ("extract", "--index"), ("report", "--out"), ("synthetic", "--sheet")])
def test_dash_and_over_long_names_are_one_line(command, flag, tmp_path, capsys):
    """``--out -`` made a file named "-"; a 300-byte name raised OSError from the flag check (a traceback)."""
    line = refused(command, [flag, "-"], capsys)
    assert line.startswith(f"error: argument {flag}: ") and "'-': this command does not write to standard output" \
        in line
    name = "é" * 150 + ".sgi"  # 304 bytes in UTF-8
    line = refused(command, [flag, str(tmp_path / name)], capsys)
    assert f"is 304 bytes long, more than the {flags.NAME_MAX} a file system takes: choose a shorter name" in line
    deep = tmp_path.joinpath(*["d" * 200] * 25, "r.sgi")
    line = refused(command, [flag, str(deep)], capsys)
    assert "more than the 4095 a file system takes: choose a shorter path" in line and len(line) < 600
    assert list(tmp_path.iterdir()) == []


def test_threads_above_the_cpu_cores_are_refused(capsys):
    line = refused("extract", ["--threads", str(flags.CPU_CORES + 1)], capsys)
    assert line == (f"error: argument --threads: {flags.CPU_CORES + 1} threads asked for, but this machine has "
                    f"{flags.CPU_CORES} CPU core(s): give 1 to {flags.CPU_CORES} (more threads than cores only slow "
                    "the model down) (see python -m train.extract --help)")
    assert extract.parse_args(["--weights", "w", "--out", "o", "--threads", str(flags.CPU_CORES)]).threads == \
        flags.CPU_CORES


def test_a_bad_index_stops_extract_before_the_extraction(data, tmp_path, capsys):
    """--index milvus:gallery (no .db) or a .sgi under a file used to fail only once every triple was extracted."""
    afile = tmp_path / "afile"
    afile.write_text("mine")
    assert run_extract(data["weights"], data["triples"], tmp_path / "f1", "--index", "milvus:gallery") == 2
    assert "a Milvus Lite gallery is a file ending in .db" in error_line(capsys)
    with pytest.raises(SystemExit):
        run_extract(data["weights"], data["triples"], tmp_path / "f2", "--index", str(afile / "g.sgi"))
    assert f"'{afile}' is a file, not a folder" in error_line(capsys)
    assert not (tmp_path / "f1").exists() and not (tmp_path / "f2").exists()


@pytest.mark.slow  # Milvus Lite starts (seconds)
def test_extract_creates_the_folder_of_a_milvus_lite_file(data, tmp_path, capsys):
    """docs/scale.md's --index milvus:galleries/demo.db used to stop with "the folder of the Milvus Lite file does
    not exist" after the whole extraction; the folder is created, as every output's is."""
    pytest.importorskip("milvus_lite")
    db = tmp_path / "galleries" / "deeper" / "g.db"
    assert run_extract(data["weights"], data["triples"], tmp_path / "f", "--threads", "1", "--index",
                       f"milvus:{db}") == 0
    assert f"milvus:{db}: gallery index of 12 rows (milvus)." in capsys.readouterr().out
    assert db.exists()


def test_a_leading_tilde_is_the_home_folder_even_quoted(tmp_path, monkeypatch):
    """Once (the second probe): --out '~/x.json' made a folder named '~' in the working folder."""
    monkeypatch.setenv("HOME", str(tmp_path))
    assert flags.output_file("~/x.json") == str(tmp_path / "x.json")
    assert flags.input_path("~/data") == str(tmp_path / "data")
    assert flags.output_file("a~b.json") == "a~b.json"
