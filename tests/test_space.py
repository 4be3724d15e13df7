"""The Hugging Face Space builder (``python -m demo.space``): a complete, minimal folder, verified by running it."""
from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement

from benchmarks.browser import free_port
from demo.space import SpaceError, build_space, main, push_space
from demo.space_files import SPACE_PACKAGES, SPACES_PACKAGE, WHEN_NEEDED, gitattributes_text
from signal_core.retrieval.feature_store import read_features

from .demo_helpers import make_checkpoint, make_triples_folder

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    root = tmp_path_factory.mktemp("space")
    weights = make_checkpoint(root / "tiny.safetensors")
    gallery = make_triples_folder(root / "gallery", ids=(1, 2, 3), per_id=2)
    queries = make_triples_folder(root / "queries", ids=(1, 2), per_id=1, seed=1)
    summary = build_space(root / "out", str(weights), str(gallery), str(queries), progress=False)
    return summary, weights, gallery


def _front_matter(readme: Path) -> dict:
    head = readme.read_text().split("---\n")[1]
    return {k: json.loads(v) if v not in ("true", "false") else v == "true"
            for k, v in (line.split(": ", 1) for line in head.strip().splitlines())}


def test_space_folder_is_complete(space):
    summary, weights, _ = space
    out = summary.folder
    for name in ("app.py", "requirements.txt", "README.md", ".gitattributes", "model/model.safetensors",
                 "model/config.json", "model/README.md",
                 "signal_core/__init__.py", "demo/serve.py", "gallery-features/manifest.json"):
        assert (out / name).is_file(), name
    assert not (out / "train").exists() and not list(out.rglob("__pycache__"))
    assert summary.gallery_rows == 6 and summary.examples == 2
    assert oct(out.stat().st_mode & 0o777) == "0o755"
    matter = _front_matter(out / "README.md")
    assert matter["sdk"] == "gradio" and matter["sdk_version"] == importlib.metadata.version("gradio")
    assert matter["python_version"] == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert matter["app_file"] == "app.py" and (out / matter["app_file"]).is_file() and matter["license"] == "mit"
    pins = dict(line.split("==") for line in (out / "requirements.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    assert list(pins) == [*SPACE_PACKAGES, SPACES_PACKAGE] and "gradio" not in pins
    assert all(pins[name] == importlib.metadata.version(name) for name in pins)


def test_gallery_features_are_precomputed_with_relative_paths(space):
    summary, weights, gallery = space
    from signal_core import load_weights
    from signal_core.data import read_triples_folder
    from signal_core.retrieval.folder_features import encode_records

    features, rows, manifest = read_features(summary.folder / "gallery-features")
    assert manifest["model"]["path"] == "model"  # no machine path in the Space
    for row in rows:
        assert all(not Path(p).is_absolute() and (summary.folder / p).is_file() for p in row["paths"])
    model = load_weights(weights).eval()
    expected = encode_records(model, read_triples_folder(gallery)).features
    np.testing.assert_allclose(features, expected, atol=1e-6)


def test_the_spaces_gallery_follows_the_missing_modality_protocol(space, monkeypatch):
    """The Space's prebuilt gallery (a feature folder) is searched as a gallery folder is: a query without TIR
    is compared with the gallery's features without TIR (demo.missing_gallery), computed from its images."""
    from demo.options import parse_options
    from demo.startup import build_engine

    out = space[0].folder
    monkeypatch.chdir(out)
    for name, value in _defaults(out).items():
        monkeypatch.setenv(name, value)
    engine, examples = build_engine(parse_options([]), progress=False)
    rgb, nir, _ = examples[0].paths
    answer = engine.search(rgb, nir, None, top_k=3, explain=False)
    assert answer.gallery_zeroed == ("tir",) and len(answer.matches) == 3


def test_every_binary_file_goes_through_lfs(space, tmp_path):
    out = shutil.copytree(space[0].folder, tmp_path / "space")
    (out / "odd.bin2").write_bytes(b"\0\1\2")  # a binary of a kind the default patterns do not name
    (out / ".gitattributes").write_text(gitattributes_text(out))
    subprocess.run(["git", "init", "-q"], cwd=out, check=True)
    files = [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and ".git/" not in p.as_posix()]
    attrs = subprocess.run(["git", "check-attr", "filter", "--", *files], cwd=out, capture_output=True, text=True,
                           check=True).stdout
    lfs = {line.split(": ")[0] for line in attrs.splitlines() if line.endswith(": filter: lfs")}
    binary = {f for f in files if b"\0" in (out / f).read_bytes()[:8000] or f.endswith((".png", ".safetensors"))}
    assert binary and binary <= lfs and "odd.bin2" in lfs
    assert not any((out / f).stat().st_size > 10 * 2**20 for f in set(files) - lfs)
    assert not {"app.py", "requirements.txt", "README.md"} & lfs


def test_existing_out_and_missing_token_are_one_line(space, tmp_path, monkeypatch, capsys):
    assert main(["--out", str(space[0].folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists" in err and "--overwrite" in err
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(SpaceError, match="no Hugging Face token: run `hf auth login`"):
        push_space(space[0].folder, "someone/signal")


def test_out_never_replaces_what_the_command_reads(space, tmp_path):
    """Once: --overwrite deleted whatever --out named: the gallery, a folder holding it, the checkout."""
    _, weights, gallery = space
    before = sorted(p.name for p in (gallery / "RGB").iterdir())
    stranger = tmp_path / "notes"
    stranger.mkdir()
    (stranger / "keep.txt").write_text("mine")
    (tmp_path / "file").write_text("a file")
    cases = [(gallery, "which this command reads"), (gallery.parent, "which this command reads"),
             (gallery / "RGB", "which this command reads"), (REPO.parent, "holds the checkout"),
             (REPO / "demo" / "space-x", "which this command reads"), (tmp_path / "file", "is a file"),
             (stranger, "not a Space folder written by python -m demo.space")]
    for out, words in cases:
        with pytest.raises(SpaceError, match=words):
            build_space(out, str(weights), str(gallery), None, overwrite=True, progress=False)
    assert sorted(p.name for p in (gallery / "RGB").iterdir()) == before and (stranger / "keep.txt").exists()
    assert not (REPO / "demo" / "space-x").exists()


def test_the_space_holds_only_the_code_packages_python_files(space):
    out = space[0].folder
    for package in ("signal_core", "demo"):
        files = {p.relative_to(out / package) for p in (out / package).rglob("*") if p.is_file()}
        assert files and all(f.suffix == ".py" for f in files)
        assert files == {p.relative_to(REPO / package) for p in (REPO / package).rglob("*.py")
                         if "__pycache__" not in p.parts}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(names) -> set[str]:
    """``names`` and every distribution they require (extras left out), normalised."""
    seen, todo = set(), list(names)
    while todo:
        name = _norm(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is None or ("extra" not in str(req.marker) and req.marker.evaluate()):
                todo.append(req.name)
    return seen


@pytest.mark.slow
def test_space_packages_are_what_the_demo_imports(space):
    """Start the Space's demo (engine and page) and search in a subprocess, recording every module that the
    Space's own code (signal_core, demo) imports: their distributions are the requirements or come with gradio,
    and each requirement is imported (or is needed by other inputs: WHEN_NEEDED)."""
    script = """
import builtins, importlib.metadata as md, json, os, sys
here, seen, real_import = os.getcwd(), set(), builtins.__import__
def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and sys._getframe(1).f_code.co_filename.startswith(here):
        seen.add(name.split('.')[0])
    return real_import(name, globals, locals, fromlist, level)
builtins.__import__ = recording_import
from demo.options import parse_options
from demo.startup import build_engine
from demo.ui import build_ui
engine, examples = build_engine(parse_options([]), progress=False)
build_ui(engine, examples)
engine.search(*examples[0].paths, top_k=3)
names = md.packages_distributions()
print(json.dumps(sorted({d for m in seen for d in names.get(m, [])})))
"""
    out = space[0].folder
    env = {**os.environ, **_defaults(out), "PYTHONPATH": str(out)}
    done = subprocess.run([sys.executable, "-c", script], cwd=out, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {_norm(d) for d in json.loads(done.stdout.splitlines()[-1])} - {"signal-reid"}  # ours: copied in
    required = {_norm(d) for d in SPACE_PACKAGES}
    assert imported - required <= _closure(["gradio"])  # nothing missing: the rest comes with the sdk's gradio
    # nothing extra: each requirement not imported by this small gallery is one that other inputs need
    assert required - imported == {_norm(d) for d in WHEN_NEEDED}


def _defaults(folder: Path) -> dict[str, str]:
    """The SIGNAL_* defaults the Space's app.py sets."""
    text = (folder / "app.py").read_text()
    return dict(re.findall(r"'(SIGNAL_\w+)': '([^']*)'", text))


@pytest.mark.slow
def test_space_serves_a_search_from_its_own_environment(tmp_path):
    """The Space folder's requirements alone (plus gradio at sdk_version, as a Space installs it) in a fresh
    virtual environment; its app started from its folder with the variables a Space sets; a search through
    gradio_client; no traceback in the log."""
    from gradio_client import Client, handle_file

    out = build_space(tmp_path / "space", progress=False).folder
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    gradio = f"gradio=={_front_matter(out / 'README.md')['sdk_version']}"
    install = subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                              "-r", str(out / "requirements.txt"), gradio], capture_output=True, text=True,
                             timeout=1500)
    assert install.returncode == 0, install.stderr[-3000:]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNAL_", "PYTHON"))}
    env.update(SYSTEM="spaces", SPACE_ID="signal/test", GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port))
    log = tmp_path / "space.log"
    with open(log, "w") as sink:
        # started from another folder: the Space's app.py works from its own
        proc = subprocess.Popen([python, str(out / "app.py")], cwd=tmp_path, env=env, stdout=sink,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        while "Running on" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        query = [sorted((out / "examples" / m).iterdir())[0] for m in ("RGB", "NI", "TI")]
        answer = client.predict(*[handle_file(str(p)) for p in query], 5, "unknown", api_name="/search_json")
        assert len(answer["matches"]) == 5 and answer["matches"][0]["identity"] == int(query[0].name[:6])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    text = log.read_text()
    assert "Traceback" not in text and "Error" not in text, text[-3000:]
    assert "Running on" in text and proc.returncode in (0, 130)
