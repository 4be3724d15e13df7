"""The docs' recipes run as written: the commands of a page's shell block, on tiny data laid out where the
docs expect the bundled assets (``assets/demo_model.safetensors``, ``assets/demo/gallery``, ``assets/demo/query``)
in a fresh folder, each command as the user types it (a subprocess; ``python app.py`` builds the demo's engine
without serving it)."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.demo_helpers import make_checkpoint, make_triples_folder

REPO = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```(?:bash|sh)\n(.*?)^```", re.M | re.S)


def recipe(page: str, heading: str) -> list[list[str]]:
    """The ``python`` commands of the first shell block after ``heading`` in docs/``page``, continuation lines
    joined and comments dropped, each split as the shell splits it."""
    text = (REPO / "docs" / page).read_text()
    start = text.index(f"\n{heading}\n")
    block = FENCE.search(text, start).group(1).replace("\\\n", " ")
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    return [c for c in commands if c and c[0] == "python"]


@pytest.fixture
def demo_layout(tmp_path, monkeypatch) -> Path:
    """A folder with a tiny model and 12 gallery / 4 query triples where the docs name the bundled assets."""
    make_checkpoint(tmp_path / "assets" / "demo_model.safetensors")
    make_triples_folder(tmp_path / "assets" / "demo" / "gallery", ids=(1, 2, 3, 4), per_id=3)
    make_triples_folder(tmp_path / "assets" / "demo" / "query", ids=(1, 2), per_id=2, seed=1)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_python(argv: list[str], cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, *argv[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{shlex.join(argv)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_scale_recipe_is_the_three_commands_it_shows():
    commands = recipe("scale.md", "## End to end")
    assert [c[:3] for c in commands] == [["python", "-m", "train.extract"], ["python", "-m", "train.search"],
                                         ["python", "app.py", "--gallery"]]


@pytest.mark.slow  # a local Ray with two actors, Milvus Lite (a minute or two on 2 busy cores)
def test_the_scale_recipe_runs_as_written(demo_layout):
    """docs/scale.md's end to end: its --index milvus:galleries/demo.db used to stop, after the whole Ray
    extraction, because galleries/ did not exist."""
    pytest.importorskip("ray")
    pytest.importorskip("milvus_lite")
    from demo.options import parse_options
    from demo.startup import build_engine

    extract, search, serve = recipe("scale.md", "## End to end")
    out = run_python(extract, demo_layout)
    assert "feats/gallery: 12 features of 12 triples (fp32)" in out
    assert "milvus:galleries/demo.db: gallery index of 12 rows (milvus)." in out
    out = run_python(search, demo_layout)
    results = json.loads((demo_layout / "results.json").read_text())
    assert results["index"] == "milvus" and len(results["results"]) == 4, out
    assert all(len(r["matches"]) == 10 for r in results["results"])
    engine, _ = build_engine(parse_options(serve[2:], environ={}), progress=False)
    try:
        assert engine.index.kind == "milvus" and len(engine.gallery) == 12
    finally:
        engine.index.close()


@pytest.mark.slow  # the bundled model over the bundled gallery, twice (about 20 s)
def test_the_demo_pages_scores_are_fp32s_and_say_their_cpu_class(tmp_path):
    """docs/demo.md's /search_json answer quotes scores that `--precision auto` gives only where it keeps fp32
    (bf16 on AMX changes the fourth or fifth digit): the page says so, and its figures are recomputed here."""
    from demo.options import DemoOptions
    from demo.startup import build_engine

    text = (REPO / "docs" / "demo.md").read_text()
    fp32_score = float(re.search(r'"rank": 1, "name": "000601_cam4_001.jpg", "score": ([0-9.]+)', text).group(1))
    note = re.search(r"The scores above are fp32's.*?\n\n", text, re.S).group(0)
    assert "AVX2" in note and "AMX" in note and "--precision fp32" in note
    bf16_score = float(re.search(r"top match here scores ([0-9.]+) instead\s+of ([0-9.]+)", note).group(1))
    query = str(REPO / "assets/demo/query/{}/000601_cam1_000.jpg")
    for precision, stated in (("fp32", fp32_score), ("bf16", bf16_score)):
        engine, _ = build_engine(DemoOptions(precision=precision, cache_dir=str(tmp_path)), progress=False)
        top = engine.search(*(query.format(m) for m in ("RGB", "NI", "TI")), top_k=1, camera=None,
                            explain=False).matches[0]
        assert engine.gallery.entries[top.index].paths[0].endswith("000601_cam4_001.jpg")
        assert abs(top.similarity - stated) <= (5e-6 if precision == "fp32" else 5e-5), precision
