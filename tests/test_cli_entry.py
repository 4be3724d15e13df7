"""The one command-line entry of train/ (train/cli.py) and its typed flags (train/flags.py): every
``python -m train.*`` command refuses bad numbers, devices and output paths with one ``error:`` line
and exit 2, and reports a full or read-only disk as one line naming the file."""
from __future__ import annotations

import ast
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import train.__main__ as train_cmd
from signal_core import SignalConfig, build_model, save_checkpoint
from signal_core.retrieval.feature_store import read_features
from train import baselines, complexity, convert, evaluate, export, extract, flags, search
from train.ablation.__main__ import main as ablation_main
from train.report.__main__ import main as report_main
from train.synthetic import cli as synthetic

from .test_extract_search import gallery_names, make_triples

REPO = Path(__file__).resolve().parent.parent
COMMANDS = {"train": train_cmd.main, "evaluate": evaluate.main, "report": report_main, "extract": extract.main,
            "search": search.main, "export": export.main, "synthetic": synthetic.main, "baselines": baselines.main,
            "ablation": ablation_main, "convert": convert.main,
            "complexity": complexity.main}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    save_checkpoint(build_model(SignalConfig.preset("tiny", num_classes=6, num_cameras=3)), path)
    return path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def test_every_command_main_is_the_shared_entry():
    """Each ``python -m train.*`` module's main() calls command_main (no command keeps a copy of its own)."""
    mains = {path: [n for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef) and n.name == "main"]
             for path in (REPO / "train").rglob("*.py")}
    mains = {path: found[0] for path, found in mains.items() if found}
    assert len(mains) == len(COMMANDS)
    for path, main in mains.items():
        calls = {n.func.id for n in ast.walk(main) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        assert calls & {"command_main", "evaluate_main"}, path


# (command, flag, bad value, what the one line says); a bad value is refused while parsing
BAD_NUMBERS = [
    ("evaluate", "--batch-size", "0", "argument --batch-size: must be at least 1, got 0"),
    ("evaluate", "--num-workers", "-1", f"argument --num-workers: must be from 0 to {flags.MAX_PROCESSES}, got -1"),
    ("evaluate", "--seed", "-5", "argument --seed: must be at least 0, got -5"),
    ("report", "--batch-size", "0", "argument --batch-size: must be at least 1, got 0"),
    ("extract", "--batch-size", "0", "argument --batch-size: must be at least 1, got 0"),
    ("extract", "--shard-size", "-2", "argument --shard-size: must be at least 1, got -2"),
    ("extract", "--threads", "0", "argument --threads: must be at least 1, got 0"),
    ("search", "--threads", "100000", f"argument --threads: 100000 threads asked for, but this machine has "
                                      f"{flags.CPU_CORES} CPU core(s): give 1 to {flags.CPU_CORES} (more threads than "
                                      "cores only slow the model down)"),
    ("extract", "--num-workers", "two", "argument --num-workers: expected a whole number, got 'two'"),
    ("search", "--top-k", "0", "argument --top-k: must be at least 1, got 0"),
    ("search", "--html-queries", "-1", "argument --html-queries: must be at least 0, got -1"),
    ("search", "--batch-size", "1.5", "argument --batch-size: expected a whole number, got '1.5'"),
    ("export", "--calibration-size", "0", "argument --calibration-size: must be at least 1, got 0"),
    ("export", "--batch-size", "0", "argument --batch-size: must be at least 1, got 0"),
    ("synthetic", "--noise", "nan", "argument --noise: expected a finite number, got 'nan'"),
    ("synthetic", "--misalign", "inf", "argument --misalign: expected a finite number, got 'inf'"),
    ("synthetic", "--cameras", "-1", "argument --cameras: must be at least 0, got -1"),
    ("synthetic", "--demo-ids", "0", "argument --demo-ids: must be at least 1, got 0"),
    ("baselines", "--bins", "1", "argument --bins: must be from 2 to 64, got 1"),
    ("baselines", "--bins", "100000", "argument --bins: must be from 2 to 64, got 100000"),
]


@pytest.mark.parametrize("command, flag, value, message", BAD_NUMBERS)
def test_numeric_flags_are_checked_while_parsing(command, flag, value, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        COMMANDS[command]([flag, value, "--out", str(tmp_path / "o")])
    assert info.value.code == 2
    module = "train" if command == "train" else f"train.{command}"
    assert one_error_line(capsys) == f"error: {message} (see python -m {module} --help)"


@pytest.mark.parametrize("command", ["train", "evaluate", "extract", "search"])
def test_device_bogus_and_cuda_without_a_gpu(command, monkeypatch, capsys):
    with pytest.raises(SystemExit) as info:
        COMMANDS[command](["--device", "bogus"])
    assert info.value.code == 2 and "argument --device: 'bogus' is not a device: use cpu, cuda or cuda:N" in \
        one_error_line(capsys)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit):
        COMMANDS[command](["--device", "cuda:0"])
    assert "argument --device: cuda:0 asked for, but torch sees no CUDA GPU on this machine: use --device cpu" in \
        one_error_line(capsys)


def test_check_device_accepts_cpu_and_counts_gpus(monkeypatch):
    assert flags.check_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert flags.check_device("cuda:1") == "cuda:1"
    with pytest.raises(ValueError, match=r"cuda:2 asked for, but torch sees 2 GPU\(s\) \(cuda:0 to cuda:1\)"):
        flags.check_device("cuda:2")
    with pytest.raises(ValueError, match="device type 'meta' is not supported"):
        flags.check_device("meta")


@pytest.mark.parametrize("argv, message", [
    (["search", "--out", "{folder}"], "argument --out: file '{folder}' is a folder: give the path of a file"),
    (["search", "--html", "{folder}"], "argument --html: file '{folder}' is a folder: give the path of a file"),
    (["evaluate", "--out", "{folder}"], "argument --out: file '{folder}' is a folder: give the path of a file"),
    (["export", "--out", "{folder}"], "argument --out: file '{folder}' is a folder: give the path of a file"),
    (["report", "--out", "{file}"], "argument --out: folder '{file}' is a file: give a folder"),
    (["evaluate", "--report", "{file}"], "argument --report: folder '{file}' is a file: give a folder"),
    (["extract", "--out", "{file}"], "argument --out: folder '{file}' is a file: give a folder"),
    (["convert", "--out", "{file}"], "argument --out: folder '{file}' is a file: give a folder"),
    (["synthetic", "--out", "{file}"], "argument --out: folder '{file}' is a file: give a folder"),
    (["synthetic", "--demo-assets", "{file}/sub"], "argument --demo-assets: folder '{file}/sub': '{file}' is a file"),
    (["baselines", "--out", "{file}/m.json"], "argument --out: file '{file}/m.json': '{file}' is a file, not a folder"),
])
def test_outputs_of_the_wrong_kind_are_refused_while_parsing(argv, message, tmp_path, capsys):
    folder, file = tmp_path / "a folder", tmp_path / "a file"
    folder.mkdir()
    file.write_text("mine")
    argv = [a.format(folder=folder, file=file) for a in argv]
    with pytest.raises(SystemExit) as info:
        COMMANDS[argv[0]](argv[1:])
    assert info.value.code == 2
    assert message.format(folder=folder, file=file) in one_error_line(capsys)
    assert file.read_text() == "mine" and folder.is_dir()


def test_a_read_only_place_is_refused_while_parsing(tmp_path, monkeypatch, capsys):
    """Root may write in a chmod 555 folder: the check asks os.access, stubbed here as a read-only mount answers."""
    real_access = os.access
    monkeypatch.setattr(flags.os, "access", lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode))
    with pytest.raises(SystemExit):
        search.main(["--out", str(tmp_path / "new" / "r.json")])
    assert f"cannot write in '{tmp_path}' (read-only or no permission); choose another place" in one_error_line(capsys)


def _fail_writes(monkeypatch, code: int) -> None:
    """Every atomic write but a feature folder's manifest (shards, JSON, ONNX) fails as a full or read-only disk
    does: the extraction stops after starting its folder."""
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst).name == "manifest.json":
            return real_replace(src, dst)
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr("signal_core.utils.atomic.os.replace", replace)


@pytest.mark.slow
@pytest.mark.parametrize("code, cause", [(errno.ENOSPC, "no space left on the disk: free some space or write "
                                                        "elsewhere"),
                                         (errno.EROFS, "the file system is read-only: write elsewhere")])
def test_full_or_read_only_disk_is_one_line_and_nothing_is_lost(code, cause, weights, tmp_path, monkeypatch, capsys):
    triples = make_triples(tmp_path / "t", gallery_names(ids=(1, 2), per_id=2))
    run = ["--weights", str(weights), "--triples", str(triples), "--batch-size", "2", "--num-workers", "0",
           "--no-progress", "--out", str(tmp_path / "f")]
    assert extract.main(run) == 0
    with monkeypatch.context() as m:
        _fail_writes(m, code)
        assert extract.main(run[:-1] + [str(tmp_path / "f2")]) == 2
        assert one_error_line(capsys) == f"error: '{tmp_path / 'f2' / 'shard-00000.npz'}': {cause}"
        assert search.main(["--features", str(tmp_path / "f"), "--queries", str(tmp_path / "f"),
                            "--out", str(tmp_path / "r.json")]) == 2
        assert one_error_line(capsys) == f"error: '{tmp_path / 'r.json'}': {cause}"
        assert export.main(["--weights", str(weights), "--out", str(tmp_path / "m.onnx")]) == 2
        assert one_error_line(capsys) == f"error: '{tmp_path / 'm.onnx'}': {cause}"
    assert not list(tmp_path.glob("*.tmp")) and not list((tmp_path / "f2").glob(".*"))
    assert extract.main(run[:-1] + [str(tmp_path / "f2")]) == 0  # the same command, once there is room
    np.testing.assert_array_equal(read_features(tmp_path / "f2").features, read_features(tmp_path / "f").features)


def test_ivfpq_on_a_small_gallery(weights, tmp_path, capsys):
    """faiss's PCA needs as many training rows as output dimensions: the index adapts to a 12-row gallery."""
    triples = make_triples(tmp_path / "t", gallery_names(ids=(1, 2, 3, 4), per_id=3))
    assert extract.main(["--weights", str(weights), "--triples", str(triples), "--num-workers", "0", "--no-progress",
                         "--out", str(tmp_path / "f")]) == 0
    assert search.main(["--features", str(tmp_path / "f"), "--queries", str(tmp_path / "f"), "--index", "ivfpq",
                        "--top-k", "1", "--out", str(tmp_path / "r.json")]) == 0
    assert "index ivfpq" in capsys.readouterr().out
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    assert [r["matches"][0]["name"] for r in results] == [r["name"] for r in results]  # each row finds itself


def test_a_writer_failing_on_a_full_disk_is_an_os_error_naming_the_file(tmp_path, monkeypatch):
    """torch.save and safetensors report a full disk as RuntimeError / SafetensorError: atomic_write tells."""
    from collections import namedtuple

    from signal_core.utils.atomic import atomic_write

    def write(tmp):
        Path(tmp).write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("signal_core.utils.atomic.shutil.disk_usage", lambda p: usage(10 << 20, 10 << 20, 4096))
    with pytest.raises(OSError) as info:
        atomic_write(tmp_path / "epoch_001.state.pt", write)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "epoch_001.state.pt")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr("signal_core.utils.atomic.shutil.disk_usage", lambda p: usage(10 << 30, 0, 10 << 30))
    with pytest.raises(RuntimeError, match="unexpected pos"):  # room left: a bug of the writer, reported as it is
        atomic_write(tmp_path / "epoch_001.state.pt", write)


def test_an_output_naming_an_input_or_another_output_is_refused(weights, tmp_path, capsys):
    """A clumsy --out that names the --weights file (or --html = --out) would overwrite it: refused while parsing."""
    before = weights.read_bytes()
    with pytest.raises(SystemExit):
        export.main(["--weights", str(weights), "--out", str(weights)])
    assert one_error_line(capsys).startswith(f"error: argument --out: '{weights}' is also --weights, which this "
                                             "command reads: choose another path")
    with pytest.raises(SystemExit):
        search.main(["--features", "f", "--queries", "q", "--out", str(tmp_path / "r"), "--html", str(tmp_path / "r")])
    assert "argument --out: '" in one_error_line(capsys)
    triples = make_triples(tmp_path / "t", gallery_names(ids=(1,), per_id=1))
    with pytest.raises(SystemExit):
        extract.main(["--weights", str(weights), "--triples", str(triples), "--out", str(triples)])
    assert "is also --triples, which this command reads" in one_error_line(capsys)
    assert weights.read_bytes() == before
    args = search.parse_args(["--features", str(triples), "--queries", str(triples), "--out", str(tmp_path / "r")])
    assert args.features == args.queries  # two inputs may be the same


def test_a_device_or_fifo_output_is_written_into_not_replaced(tmp_path, capsys):
    """``--out /dev/null`` run as root used to replace the device node with a regular file (atomic rename)."""
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    from signal_core.utils.atomic import write_json

    write_json(fifo, {"a": 1})
    reader.join(timeout=120)  # returns as soon as the reader has the bytes; the bound only stops a hang
    assert received == [b'{\n  "a": 1\n}\n'] and stat.S_ISFIFO(fifo.stat().st_mode)
    assert flags.check_output_file(fifo) == fifo


def test_output_folder_and_file_of_one_name_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        evaluate.main(["--config", "c.yaml", "--data-root", "d", "--untrained", "--report", str(tmp_path / "m"),
                       "--out", str(tmp_path / "m")])
    assert "is also --report, which it would overwrite" in one_error_line(capsys)


def test_report_and_run_folders_never_replace_files_of_another_kind(tmp_path, capsys):
    """--report into a folder with the user's own index.html, or a run's metrics.json; a run beside a config.yaml."""
    from train.report import check_report_folder
    from train.run_folder import check_fresh_output_dir

    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html><title>My page</title></html>")
    (tmp_path / "data").mkdir()  # beside the report folder: a report inside the data root is refused while parsing
    common = ["--config", "train/configs/synthetic.yaml", "--data-root", str(tmp_path / "data"), "--untrained",
              "--no-progress"]
    assert report_main(common + ["--out", str(site)]) == 2
    assert one_error_line(capsys) == (f"error: '{site}' holds index.html, which is not from a Signal report "
                                      "and which the report would replace: choose another folder for the report.")
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text("{}")
    with pytest.raises(FileExistsError, match="holds metrics.json, which is not from a Signal report"):
        check_report_folder(run)
    (run / "index.html").write_text("<!DOCTYPE html><html lang='en'><head><title>Signal evaluation report</title>")
    check_report_folder(run)  # an earlier report: replaced
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("model: {preset: tiny}\n")
    with pytest.raises(ValueError, match="holds config.yaml, which a new run writes"):
        check_fresh_output_dir(mine)
    assert (site / "index.html").read_text().startswith("<html><title>My page") and (mine / "config.yaml").exists()
