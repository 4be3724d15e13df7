"""A Hugging Face Space in one command:
``python -m demo.space --out DIR [--weights W] [--gallery G] [--push owner/name]``.

Writes ``DIR``, a complete and minimal Gradio Space:

- ``app.py`` (runs :func:`demo.serve.main` from its folder with this Space's files as defaults),
  ``signal_core/`` and ``demo/`` (the code, nothing of ``train/``);
- ``requirements.txt`` with only what the demo imports, pinned to the versions installed here (gradio
  comes from the front matter's ``sdk_version``, equal to the gradio installed here);
- ``README.md`` whose front matter Spaces reads (sdk, sdk_version, python_version, app_file, license);
- ``model/``, the weights as a Hub-style folder (``model.safetensors``, ``config.json`` and a model card
  that names the source file and its sha256), ``gallery/`` (its triples), ``examples/`` (example queries), and
  ``gallery-features/``: the gallery's features, precomputed in a feature folder, so a cold start
  computes none of them;
- ``.gitattributes`` routing every binary file through LFS (the Hub keeps them in Xet).

The folder is built beside ``DIR`` and moved into place when complete. ``--push`` uploads it with
``huggingface_hub.HfApi.upload_folder``; without a token or the network it says so in one line.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .options import DEFAULT_GALLERY, DEFAULT_QUERIES, DEFAULT_WEIGHTS, REPO_ROOT, StartupError
from .space_files import app_text, front_matter, gitattributes_text, readme_text, requirements_text

_SIGNATURE = "Written by ``python -m demo.space``"  # in every Space's app.py (demo.space_files.app_text)
CODE_PACKAGES = ("signal_core", "demo")  # what the Space's app imports (tests/test_space.py checks it)
FEATURES, GALLERY, EXAMPLES, MODEL = "gallery-features", "gallery", "examples", "model"
PRECISION = "fp32"  # the gallery's features and the Space's queries alike (bf16 would differ per CPU)


class SpaceError(RuntimeError):
    """A Space cannot be built or pushed; the message says why and what to do."""


@dataclass(frozen=True)
class SpaceSummary:
    folder: Path
    gallery_rows: int
    examples: int
    files: int
    megabytes: float


@contextmanager
def _working_directory(path: Path):
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def _copy_code(target: Path) -> None:
    """The Python files of the code packages (nothing else a checkout may hold there: notes, caches, secrets)."""
    def not_code(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n == "__pycache__" or (not n.endswith(".py") and not (Path(folder) / n).is_dir())}

    for package in CODE_PACKAGES:
        shutil.copytree(REPO_ROOT / package, target / package, ignore=not_code)


def _check_out(out: Path, overwrite: bool, inputs: list[Path]) -> None:
    """Refuse an ``out`` that is a file, holds or lies in an input (or the checkout), or exists and is not a Space
    this command built (``--overwrite`` replaces only those)."""
    if out.exists() and not out.is_dir():
        raise SpaceError(f"{out} is a file: --out names the folder to write.")
    if REPO_ROOT.is_relative_to(out):
        raise SpaceError(f"--out {out} holds the checkout, which --overwrite would delete: choose a folder of its own.")
    for path in [*(REPO_ROOT / p for p in CODE_PACKAGES), *inputs]:
        path = path.resolve()
        if out == path or out.is_relative_to(path) or path.is_relative_to(out):
            raise SpaceError(f"--out {out} would replace, hold or lie in {path}, which this command reads: choose a "
                             "folder of its own.")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise SpaceError(f"{out} already exists; choose a new --out or pass --overwrite to replace it.")
        if _SIGNATURE not in _read(out / "app.py"):
            raise SpaceError(f"{out} is not a Space folder written by python -m demo.space, so --overwrite leaves it "
                             "alone: choose a new --out.")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[:2000]
    except OSError:
        return ""


def _stage_gallery(gallery_spec: str, dataset: str | None, target: Path):
    """The gallery's triples copied into ``target/gallery`` (names must be unique per modality)."""
    from .gallery import GalleryError, load_gallery
    from .startup import resolve_folder, stage_examples

    folder = resolve_folder(gallery_spec)
    try:
        gallery = load_gallery(folder, dataset)
    except GalleryError as exc:
        raise SpaceError(str(exc)) from None
    names = [Path(p).name for e in gallery.entries for p in e.paths[:1]]
    if len(set(names)) != len(names):
        raise SpaceError(f"{folder}: two gallery triples share a file name; a Space's gallery is one triples folder, "
                         "so give each triple its own name.")
    return stage_examples(gallery.entries, target / GALLERY)


def _extract(model, entries, sha256: str, target: Path, progress: bool) -> int:
    """The gallery's features into ``target/gallery-features``, rows naming images relative to ``target``."""
    from signal_core.data import TripleRecord
    from signal_core.retrieval.folder_features import extract_to_folder

    records = [TripleRecord(tuple(str(Path(p).relative_to(target)) for p in e.paths), e.pid, e.camid)
               for e in entries]
    settings = {"source": GALLERY, "precision": PRECISION, "engine": "torch", "onnx_sha256": None}
    with _working_directory(target):
        summary = extract_to_folder(model, records, FEATURES, {"sha256": sha256, "path": MODEL}, settings,
                                    progress=progress)
    return summary.count


def build_space(out: str | Path, weights: str = DEFAULT_WEIGHTS, gallery: str = DEFAULT_GALLERY,
                queries: str | None = DEFAULT_QUERIES, dataset: str | None = None,
                title: str = "Signal multi-modal ReID",
                overwrite: bool = False, progress: bool = True) -> SpaceSummary:
    """Write the Space folder ``out`` (see the module docstring).

    Raises:
        SpaceError: ``out`` exists (without ``overwrite``), or the weights or gallery cannot be read.
    """
    from signal_core.hub_folder import save_pretrained
    from signal_core.model_card import CardFacts
    from signal_core.utils.hashing import sha256_file
    from signal_core.weights_source import HUB_WEIGHTS

    from .startup import load_examples, load_model, resolve_folder, resolve_weights, stage_examples

    out = Path(out).expanduser().resolve()
    try:
        weights_path = resolve_weights(weights)
        inputs = [weights_path, *(p for p in (resolve_folder(gallery), resolve_folder(queries)) if p)]
        _check_out(out, overwrite, inputs)
        model, _ = load_model(weights_path, dataset, __import__("torch").device("cpu"), PRECISION)
    except StartupError as exc:
        raise SpaceError(str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        entries = _stage_gallery(gallery, dataset, build)
        examples = stage_examples(load_examples(resolve_folder(queries)), build / EXAMPLES) if queries else []
        source = f"`{weights_path.name}` (sha256 `{sha256_file(weights_path)}`), saved by `python -m demo.space`."
        save_pretrained(model, build / MODEL, CardFacts(source=source, dataset=dataset))
        rows = _extract(model, entries, sha256_file(build / MODEL / HUB_WEIGHTS), build, progress)
        _copy_code(build)
        settings = {"SIGNAL_WEIGHTS": MODEL, "SIGNAL_GALLERY": FEATURES, "SIGNAL_QUERIES": EXAMPLES if examples else "",
                    "SIGNAL_PRECISION": PRECISION}  # the folder's config.json: no SIGNAL_DATASET needed
        (build / "app.py").write_text(app_text(settings))
        (build / "requirements.txt").write_text(requirements_text())
        (build / "README.md").write_text(readme_text(front_matter(title), _card_body(weights_path.name, rows)))
        (build / ".gitattributes").write_text(gitattributes_text(build))
        build.chmod(0o755)  # mkdtemp's folder is private to its user
        if out.exists():
            shutil.rmtree(out)
        build.rename(out)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    files = [p for p in out.rglob("*") if p.is_file()]
    return SpaceSummary(out, rows, len(examples), len(files), sum(p.stat().st_size for p in files) / 2**20)


def _card_body(weights_name: str, rows: int) -> str:
    return (f"# Signal multi-modal ReID\n\nSearch a gallery of {rows} RGB / NIR / TIR triples with the weights "
            f"of `{weights_name}` (in `{MODEL}/`, with their model card)"
            " (Signal, AAAI 2026: *Selective Interaction and Global-local Alignment for Multi-Modal Object "
            "Re-Identification*). Give up to three images of a query (or click an example) and press Search.\n\n"
            f"Built with `python -m demo.space`; the gallery's features are precomputed in `{FEATURES}/`.\n")


def push_space(folder: str | Path, repo_id: str, private: bool = False) -> str:
    """Upload ``folder`` to the Space ``repo_id`` (created if missing); returns its URL.

    Raises:
        SpaceError: no token, or the Hub could not be reached or refused the upload.
    """
    from huggingface_hub import HfApi, get_token

    if not get_token():
        raise SpaceError("no Hugging Face token: run `hf auth login` (or set HF_TOKEN), then push again with "
                         f"python -m demo.space --out {folder} --push {repo_id} --overwrite.")
    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="space",
                          commit_message="Signal demo (python -m demo.space)")
    except Exception as exc:  # noqa: BLE001 - network, auth, a refused upload: all said in one line
        raise SpaceError(f"could not push to the Space {repo_id} ({exc.__class__.__name__}: "
                         f"{' '.join(str(exc).split())[:300]}); check the network and that your token may write "
                         "to it.") from None
    return f"https://huggingface.co/spaces/{repo_id}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.space", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="the Space folder to write (new, or --overwrite)")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, help="model weights (as app.py --weights)")
    parser.add_argument("--dataset", default=None, help="dataset preset of an authors' checkpoint (as app.py)")
    parser.add_argument("--gallery", default=DEFAULT_GALLERY, help="triples folder (or dataset folder) to search")
    parser.add_argument("--queries", default=DEFAULT_QUERIES, help="triples folder of example queries ('' for none)")
    parser.add_argument("--title", default="Signal multi-modal ReID", help="the Space's title")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    parser.add_argument("--push", metavar="OWNER/NAME", help="upload the folder to this Space (needs a token)")
    parser.add_argument("--private", action="store_true", help="with --push: create the Space private")
    args = parser.parse_args(argv)
    try:
        summary = build_space(args.out, args.weights, args.gallery, args.queries or None, args.dataset, args.title,
                              args.overwrite)
        print(f"wrote the Space {summary.folder}: {summary.gallery_rows} gallery triples (features precomputed), "
              f"{summary.examples} examples, {summary.files} files, {summary.megabytes:.1f} MB.")
        if args.push:
            print(f"pushed: {push_space(summary.folder, args.push, args.private)}")
    except SpaceError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
