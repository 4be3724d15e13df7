"""The documentation keeps its promises: relative links resolve, quoted commands parse, and the
README's Python snippets run against the installed package from outside the checkout."""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")  # these tests stay quiet
NEEDS = "# needs:"  # a snippet line with this marker needs a file the tests do not have (e.g. the authors' .pth)


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", page.read_text(), flags=re.M)}


def test_readme_is_a_front_door():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) < 250
    assert lines[0].startswith("# Signal")  # a Space is built by python -m demo.space, not this repository
    assert "python -m demo.space --out" in "\n".join(lines)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"^(https?:|mailto:)", target):
            continue
        path, _, anchor = target.partition("#")
        file = page if not path else (page.parent / path).resolve()
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(target)
    assert broken == []


def _quoted_modules() -> dict[str, str]:
    """``python -m MODULE`` in the docs' shell blocks -> the page that quotes it first."""
    found: dict[str, str] = {}
    for page in PAGES:
        for lang, body in FENCE.findall(page.read_text()):
            if lang not in ("bash", "sh", ""):
                continue
            for module in re.findall(r"(?:^|\s)python -m ([\w.]+)", body):
                if module.split(".")[0] in ("train", "benchmarks"):
                    found.setdefault(module, page.name)
    return found


def test_the_docs_quote_the_command_lines():
    assert {"train", "train.evaluate", "train.extract", "train.search"} <= set(_quoted_modules())


def _entry(module: str):
    """The module ``python -m MODULE`` runs as ``__main__``: MODULE, or a package's ``MODULE.__main__``."""
    spec = importlib.util.find_spec(module)
    assert spec is not None, f"python -m {module}: no such module"
    return importlib.import_module(f"{module}.__main__" if spec.submodule_search_locations else module)


@pytest.mark.parametrize("module", sorted(_quoted_modules()))
def test_quoted_command_parses(module):
    """``python -m MODULE --help`` exits 0: the module's ``__main__`` guard runs its ``main``, which prints the
    usage (called in this process: one torch import for all; not re-run with runpy, whose second copy of a
    module other tests imported made a RuntimeWarning for each)."""
    entry = _entry(module)
    assert 'if __name__ == "__main__":\n    sys.exit(main())' in inspect.getsource(entry)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        entry.main(["--help"])
    assert exit_info.value.code in (0, None)
    assert "usage:" in out.getvalue()


def _snippets() -> list[str]:
    text = (REPO / "README.md").read_text()
    return [body for lang, body in FENCE.findall(text) if lang == "python"]


@pytest.mark.slow
def test_readme_snippets_run_against_the_installed_package(tmp_path):
    """After the README's install (``pip install -r requirements.txt``, whose ``-e .`` installs the library),
    every README snippet without a ``# needs:`` marker runs from a folder outside the checkout."""
    lines = (REPO / "requirements.txt").read_text().splitlines()
    assert any(line.split("#")[0].split() == ["-e", "."] for line in lines)
    work = tmp_path / "work"
    work.mkdir()
    (work / "assets").symlink_to(REPO / "assets")  # the bundled model the snippets name, as a user's own file
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([sys.executable, "-c", "import signal_core; print(signal_core.__file__)"], cwd=work,
                           env=env, capture_output=True, text=True)
    assert where.returncode == 0, f"signal_core is not installed: pip install -r requirements.txt\n{where.stderr}"
    assert Path(where.stdout.strip()).parent == REPO / "signal_core", (
        f"signal_core is installed from {where.stdout.strip()}, not this checkout: "
        "pip install -r requirements.txt here")
    runnable = [s for s in _snippets() if NEEDS not in s]
    assert runnable, "the README should have at least one snippet that runs as it is"
    for snippet in runnable:
        out = subprocess.run([sys.executable, "-c", snippet], cwd=work, env=env, capture_output=True, text=True,
                             timeout=600)
        assert out.returncode == 0, f"{snippet}\n{out.stderr}"
