"""The text files of a Hugging Face Space folder (:mod:`demo.space`): requirements, README front matter,
``.gitattributes`` and the app entry. Pure functions of what they are given (versions are read from the
environment the Space was built and tested in).
"""
from __future__ import annotations

import importlib.metadata
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

# What the demo imports, by distribution (gradio comes through the front matter's sdk_version). Measured:
# the third-party modules loaded by starting the demo and searching map to these and their dependencies
# (tests/test_space.py checks it).
SPACE_PACKAGES = ("torch", "torchvision", "open_clip_torch", "safetensors", "numpy", "pillow", "faiss-cpu",
                  "opencv-python-headless", "tqdm", "huggingface_hub")
# Of those, the ones a small gallery with local weights does not import, and what needs them.
WHEN_NEEDED = {"faiss-cpu": "an IVF index, for galleries of more than 50,000 triples",
               "huggingface_hub": "weights from the Hub (hf://)"}
# Hugging Face's own package, which gradio needs under SYSTEM=spaces (its reload server; without it gradio
# logs a thread traceback). Spaces preinstall it; pinned here too, so the folder's environment is complete.
SPACES_PACKAGE = "spaces"
# Hugging Face's default LFS patterns, plus what this project writes; any other binary file is added by name.
LFS_PATTERNS = ("*.safetensors", "*.pth", "*.pt", "*.bin", "*.onnx", "*.npz", "*.npy", "*.sgi", "*.db", "*.zip",
                "*.jpg", "*.jpeg", "*.png", "*.bmp", "*.tif", "*.tiff", "*.webp", "*.gif")


def installed_version(distribution: str) -> str:
    """The version of ``distribution`` in this environment (the one the Space is tested with)."""
    return importlib.metadata.version(distribution)


def requirements_text(packages: Iterable[str] = (*SPACE_PACKAGES, SPACES_PACKAGE)) -> str:
    """``requirements.txt``: each package pinned to the version installed here."""
    lines = ["# What the Signal demo imports, pinned to the versions it was built and tested with",
             "# (gradio comes from the README's sdk_version)."]
    lines += [f"{name}=={installed_version(name)}" for name in packages]
    return "\n".join(lines) + "\n"


def front_matter(title: str, license_id: str = "mit") -> dict[str, str | bool]:
    """The Space's README front matter (valid for Spaces: sdk, sdk_version, python_version, app_file)."""
    return {"title": title, "emoji": "🔎", "colorFrom": "indigo", "colorTo": "red", "sdk": "gradio",
            "sdk_version": installed_version("gradio"),
            "python_version": f"{sys.version_info[0]}.{sys.version_info[1]}",
            "app_file": "app.py", "license": license_id, "pinned": False}


def readme_text(matter: Mapping[str, str | bool], body: str) -> str:
    """A README with ``matter`` as its YAML front matter (strings JSON-quoted: valid YAML)."""
    def value(v):
        return str(v).lower() if isinstance(v, bool) else json.dumps(v, ensure_ascii=False)

    head = "\n".join(f"{key}: {value(v)}" for key, v in matter.items())
    return f"---\n{head}\n---\n\n{body.strip()}\n"


def is_binary(path: Path) -> bool:
    """True for a file git would treat as binary (a NUL byte in its first 8000 bytes) or that is not UTF-8."""
    data = path.read_bytes()
    if b"\0" in data[:8000]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def gitattributes_text(folder: Path) -> str:
    """``.gitattributes`` routing every binary file of ``folder`` through LFS (the Hub stores LFS files in
    Xet): the default patterns, plus each other binary file by its path."""
    rule = "filter=lfs diff=lfs merge=lfs -text"
    lines = [f"{pattern} {rule}" for pattern in LFS_PATTERNS]
    suffixes = {p[1:] for p in LFS_PATTERNS}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != ".gitattributes" and is_binary(path) \
                and not any(path.name.lower().endswith(s) for s in suffixes):
            lines.append(f"/{path.relative_to(folder).as_posix()} {rule}")
    return "\n".join(lines) + "\n"


def app_text(settings: Mapping[str, str]) -> str:
    """The Space's ``app.py``: run from its own folder, with ``settings`` as the demo's defaults (the Space's
    variables, Settings -> Variables, still override them)."""
    pairs = "".join(f"    {k!r}: {v!r},\n" for k, v in settings.items())
    return f'''"""Signal demo on a Hugging Face Space.

Written by ``python -m demo.space``: rebuild the folder rather than edit this file.
"""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
os.chdir(HERE)  # the gallery's feature folder names its images relative to this folder
sys.path.insert(0, str(HERE))
DEFAULTS = {{
{pairs}}}
for name, value in DEFAULTS.items():
    os.environ.setdefault(name, value)

from demo.serve import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
'''
