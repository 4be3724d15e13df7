"""The code's layout keeps its promises: package docstrings list their real modules, imports run only
downward, modules stay small, and a missing optional package names the extra that installs it."""
from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# packages whose docstring lists its modules, one per line: "    name   what it is"
LISTED = ["signal_core", "signal_core.model", "signal_core.retrieval", "signal_core.deploy", "signal_core.utils",
          "signal_core.metrics", "demo"]
APPS = ("train", "demo", "benchmarks", "tests", "gradio")


def _modules_of(package: str) -> set[str]:
    folder = REPO / package.replace(".", "/")
    files = {p.stem for p in folder.glob("*.py") if p.stem not in ("__init__", "__main__")}
    return files | {p.parent.name for p in folder.glob("*/__init__.py")}


@pytest.mark.parametrize("package", LISTED)
def test_package_docstring_lists_its_modules(package):
    doc = importlib.import_module(package).__doc__
    listed = set(re.findall(r"^ {4}([a-z_0-9]+) {2,}\S", doc, flags=re.M))
    assert listed == _modules_of(package), f"{package}: docstring lists {sorted(listed)}"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return {n.split(".")[0] for n in names}


def test_imports_run_downward_and_modules_stay_small():
    library = sorted((REPO / "signal_core").rglob("*.py"))
    upward = {str(p.relative_to(REPO)): sorted(_imports(p) & set(APPS)) for p in library}
    assert {k: v for k, v in upward.items() if v} == {}
    train = sorted((REPO / "train").rglob("*.py"))
    assert {str(p.relative_to(REPO)) for p in train if _imports(p) & {"demo", "gradio", "benchmarks"}} == set()
    code = [p for top in ("signal_core", "train", "demo", "benchmarks") for p in (REPO / top).rglob("*.py")]
    code.append(REPO / "app.py")
    long = {str(p.relative_to(REPO)): n for p in code if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
    top_level = [p for p in (REPO / "signal_core").glob("*.py") if p.stem != "__init__"]
    assert len(top_level) <= 8, sorted(p.stem for p in top_level)


def _run_without(package: str, code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter where importing ``package`` fails as if it were not installed."""
    prelude = f"import sys; sys.modules[{package!r}] = None\n"
    return subprocess.run([sys.executable, "-c", prelude + code], cwd=REPO, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("package, module, extra", [
    ("faiss", "signal_core.retrieval.index", "index"),
    ("cv2", "signal_core.viz", "viz"),
])
def test_a_missing_extra_is_named(package, module, extra):
    code = (f"try:\n    import {module}\nexcept ModuleNotFoundError as exc:\n"
            "    print(type(exc).__name__, exc.name, exc, sep='|')")
    out = _run_without(package, code)
    kind, name, message = out.stdout.strip().split("|")
    assert out.returncode == 0 and name == package, out.stderr
    assert kind == "MissingExtraError" and f'pip install ".[{extra}]"' in message


@pytest.mark.slow
def test_app_without_gradio_says_what_to_install():
    out = _run_without("gradio", "import app, sys; sys.exit(app.main(['--port', '7999']))")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        out.stderr.strip().splitlines()[0]] and "pip install -r requirements.txt" in out.stderr, out.stderr
    assert out.stderr.startswith("error: the demo needs the gradio package")


# Playwright calls (and the project's wrappers of them) whose timeout bounds a wait
_BROWSER_WAITS = {"demo_page", "browser_page", "set_query", "events_finished", "wait_for_selector", "wait_for_function",
                  "wait_for", "click", "set_input_files", "to_have_count", "to_contain_text", "to_be_attached",
                  "to_have_attribute", "not_to_have_attribute", "expect_request_finished", "expect_response"}


def _fixed_waits(path: Path) -> list[str]:
    """Waits in a test file that end after a fixed time rather than when what is checked happens: a browser
    pause, a sleep outside a polling loop, a browser wait bounded by a bare number instead of a named bound
    of tests/browser_helpers.py (30 s was too short for a search on a loaded 2-core machine)."""
    tree = ast.parse(path.read_text())
    parent = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        up = node
        while up in parent and not isinstance(up, ast.While):
            up = parent[up]
        if name == "wait_for_timeout" or (name == "sleep" and not isinstance(up, ast.While)):
            found.append(f"{path.name}:{node.lineno} {name}")
        bare = [k.arg for k in node.keywords
                if k.arg in ("timeout", "timeout_ms") and isinstance(k.value, ast.Constant)]
        if name in _BROWSER_WAITS and bare:
            found.append(f"{path.name}:{node.lineno} {name}({bare[0]}=a number)")
    return found


def test_tests_wait_on_what_they_check():
    assert [w for p in sorted((REPO / "tests").glob("*.py")) for w in _fixed_waits(p)] == []
