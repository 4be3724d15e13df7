"""Unit tests of the demo's options and start-up: flags and environment variables, one-line errors,
the port check before loading, what the server serves. Tiny random models, no network."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from benchmarks.browser import free_port

REPO = Path(__file__).resolve().parent.parent


# --- options and start-up ---------------------------------------------------------------------
def test_options_flags_override_environment():
    from demo.options import parse_options

    env = {"SIGNAL_WEIGHTS": "hf://a/b/m.safetensors", "SIGNAL_DEVICE": "cpu", "GRADIO_SERVER_PORT": "9000",
           "SIGNAL_DATASET": "RGBNT100", "SIGNAL_SHARE": "1", "SIGNAL_PRECISION": "bf16"}
    opts = parse_options([], env)
    assert (opts.weights, opts.device, opts.port, opts.dataset, opts.share, opts.precision) == (
        "hf://a/b/m.safetensors", "cpu", 9000, "rgbnt100", True, "bf16")
    opts = parse_options(["--port", "7000", "--weights", "x.safetensors"], env)
    assert (opts.port, opts.weights) == (7000, "x.safetensors")
    assert parse_options([], {}).port == 7860 and parse_options([], {}).host == "127.0.0.1"


@pytest.mark.slow
def test_missing_bundled_assets_exit_cleanly(tmp_path, monkeypatch, capsys):
    import app
    import demo.startup

    monkeypatch.setattr(demo.startup, "REPO_ROOT", tmp_path)
    monkeypatch.chdir(tmp_path)
    assert app.main([]) == 2
    err = capsys.readouterr().err
    assert "assets/demo_model.safetensors is missing" in err and "--weights" in err and "Traceback" not in err
    assert app.main(["--weights", str(tmp_path / "nope.safetensors")]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "authors.pth").write_bytes(b"x")
    assert app.main(["--weights", str(tmp_path / "authors.pth")]) == 2
    assert "--dataset" in capsys.readouterr().err


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("argv,message", [
    (["--batch-size", "0"], "error: --batch-size must be at least 1, got 0."),
    (["--port", "abc"], "error: argument --port: invalid int value: 'abc' (see app.py --help)."),
    (["--port", "70000"], "error: --port must be from 1 to 65535, got 70000."),
    (["--max-file-size", "0"], "error: --max-file-size must be at least 1 (MB), got 0."),
    (["--concurrency", "0"], "error: --concurrency must be at least 1, got 0."),
    (["--threads", "-1"], "error: --threads must be 0 (automatic) or more, got -1."),
    (["--device", "tpu"], ("error: argument --device: invalid choice: 'tpu' (choose from auto, cpu, cuda) "
                           "(see app.py --help).")),
])
def test_bad_options_are_one_error_line(argv, message, capsys):
    import app

    assert app.main(argv) == 2
    line = _one_error_line(capsys)
    assert line.replace("'auto', 'cpu', 'cuda'", "auto, cpu, cuda") == message  # argparse quotes since 3.12


def test_bad_environment_value_is_one_error_line(monkeypatch, capsys):
    import app

    monkeypatch.setenv("SIGNAL_BATCH_SIZE", "many")
    assert app.main([]) == 2
    assert _one_error_line(capsys) == "error: SIGNAL_BATCH_SIZE='many': expected int for --batch-size."


@pytest.mark.parametrize("content", [os.urandom(4096), b"", b"\x08\x00\x00\x00\x00\x00\x00\x00{}"])
def test_unreadable_weights_are_one_error_line(tmp_path, assets, content, capsys):
    import app

    weights = tmp_path / "random.safetensors"
    weights.write_bytes(content)
    assert app.main(["--weights", str(weights), "--gallery", str(assets[1]), "--port", str(free_port()),
                     "--cache-dir", str(tmp_path / "cache")]) == 2
    assert _one_error_line(capsys).startswith(f"error: could not load the model from {weights} (")


@pytest.mark.slow  # imports gradio and loads the bundled model (about 15 s)
def test_an_exported_graph_engine_with_the_bundled_models_registration_is_one_error_line(tmp_path, capsys):
    """The bundled model registers NIR / TIR (its config's 'orientation'), which an exported graph holds not:
    `python app.py --engine onnxruntime` stops in one line naming --registration none, before any feature."""
    import app

    assert app.main(["--engine", "onnxruntime", "--port", str(free_port()), "--cache-dir", str(tmp_path)]) == 2
    assert _one_error_line(capsys) == (
        "error: --engine onnxruntime runs an exported graph without the model's registration 'orientation': use "
        "--engine torch, or --registration none (features without it).")
    assert not any(tmp_path.iterdir())


def test_busy_port_is_found_before_loading(tmp_path, assets, monkeypatch, capsys):
    import socket

    import app
    import demo.startup

    loaded = []
    monkeypatch.setattr(demo.startup, "load_model", lambda *a, **k: loaded.append(a))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert app.main(["--weights", str(assets[0]), "--gallery", str(assets[1]), "--port", str(port)]) == 2
    assert _one_error_line(capsys) == (f"error: port {port} on 127.0.0.1 is already in use: stop the server using "
                                       "it or pick another with --port / GRADIO_SERVER_PORT.")
    assert loaded == []


def test_served_and_blocked_paths(engine, assets, tmp_path):
    from demo.startup import blocked_paths, load_examples, served_paths

    examples = load_examples(assets[1], limit=2)
    served = served_paths(engine, examples)
    cache_dir = engine.cache_path.parent.resolve()
    assert sorted(served) == sorted({str(engine.thumbnails.directory.resolve()), str(engine.served.directory)}
                                    | {str(Path(p).resolve()) for e in examples for p in e.paths})
    assert engine.thumbnails.fallback.is_relative_to(engine.served.directory)
    # this gallery's thumbnails, the per-search folder (with the thumbnails' fallback inside), 2 x 3 example files
    assert str(cache_dir) not in served and len(served) == 2 + 6
    assert all(Path(p).parent != cache_dir or Path(p).name.startswith("thumbs-") for p in served)
    assert blocked_paths(engine) == [str(engine.cache_path.resolve()), str(Path(assets[0]).resolve())]


def test_feature_folder_gallery_is_searched_through_its_features(assets, tmp_path):
    """--gallery FEATS: a prebuilt feature folder (train.extract) is the gallery, searched as a gallery folder is
    below 50,000 rows (its features, no index); a gallery triple as the query finds itself at rank 1; features of
    other weights are refused with a message."""
    import torch

    from demo.options import DemoOptions, StartupError
    from demo.startup import build_engine, load_model
    from signal_core.data import read_triples_folder
    from signal_core.retrieval.folder_features import extract_to_folder
    from signal_core.utils.hashing import sha256_file
    from tests.demo_helpers import make_checkpoint

    weights, gallery_dir = assets
    model, _ = load_model(weights, None, torch.device("cpu"))
    records = read_triples_folder(gallery_dir)
    extract_to_folder(model, records, tmp_path / "feats", {"sha256": sha256_file(weights), "path": str(weights)},
                      {"source": "test"}, batch_size=4, progress=False)
    options = DemoOptions(weights=str(weights), gallery=str(tmp_path / "feats"), queries="")
    engine, _ = build_engine(options, progress=False)
    assert engine.index is None and len(engine.gallery) == len(engine.gallery_features) == len(records)
    result = engine.search(*records[3].paths, top_k=5, camera=records[3].camid + 1, explain=False)
    assert result.matches[0].index == 3 and result.matches[0].similarity > 0.999
    assert [m.rank for m in result.matches] == [1, 2, 3, 4, 5] and result.matches[0].thumbnail
    other = make_checkpoint(tmp_path / "other.safetensors", seed=1)
    with pytest.raises(StartupError, match="made with other weights"):
        build_engine(DemoOptions(weights=str(other), gallery=str(tmp_path / "feats"), queries=""), progress=False)


def test_a_port_just_closed_is_free_again():
    """A server stopped a moment ago leaves its connections in TIME_WAIT: restarting on its port works."""
    import socket

    from demo.options import ensure_port_free

    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        served, _ = listener.accept()
        served.close()  # the server side closes first: its end of the connection waits in TIME_WAIT
        client.close()
    ensure_port_free("127.0.0.1", port)  # no StartupError


def test_examples_are_served_from_one_folder(engine, assets):
    """Example queries are copied into the per-process served folder: one static path, not one per file."""
    from demo.startup import load_examples, served_paths, stage_examples

    examples = load_examples(assets[1], limit=4)
    staged = stage_examples(examples, engine.served.subfolder("examples"))
    assert [e.name for e in staged] == [e.name for e in examples]
    assert [e.pid for e in staged] == [e.pid for e in examples]
    for original, copy in zip(examples, staged):
        for a, b in zip(original.paths, copy.paths):
            assert Path(b).read_bytes() == Path(a).read_bytes() and Path(b).is_relative_to(engine.served.directory)
    assert sorted(served_paths(engine, staged)) == sorted({str(engine.thumbnails.directory.resolve()),
                                                           str(engine.served.directory)})
    panel = stage_examples([dataclasses.replace(examples[0], paths=(examples[0].paths[0],) * 3)],
                           engine.served.subfolder("examples"))[0]
    assert len(set(panel.paths)) == 1  # an RGBNT100 panel stays one image


def test_threads_per_search_share_the_cores():
    from demo.options import DemoOptions, parse_options, search_threads

    assert search_threads(DemoOptions(), cores=2) == 1  # 2 searches at once on 2 cores: one thread each
    assert search_threads(DemoOptions(concurrency=2), cores=16) == 8
    assert search_threads(DemoOptions(concurrency=4), cores=2) == 1
    assert search_threads(DemoOptions(threads=3), cores=2) == 3
    options = parse_options(["--concurrency", "3"], environ={"SIGNAL_THREADS": "2"})
    assert (options.concurrency, options.threads) == (3, 2)


def test_the_page_names_the_gallery_folder_not_its_server_path(assets, tmp_path):
    from demo.options import parse_options
    from demo.startup import build_engine

    weights, gallery_dir = assets
    options = parse_options(["--weights", str(weights), "--gallery", str(gallery_dir), "--queries", "",
                             "--cache-dir", str(tmp_path / "cache"), "--device", "cpu"], {})
    engine, _ = build_engine(options, progress=False)
    assert f"· triples folder {gallery_dir.name} ·" in engine.description
    assert str(gallery_dir.parent) not in engine.description and str(tmp_path) not in engine.description
