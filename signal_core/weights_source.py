"""Where weights come from: the one resolver behind every ``--weights`` (command lines, demo, library).

:func:`resolve_weights` turns what a user names into a local weights file:

* ``path/to/model.safetensors``, ``Signal_model.pth``: a local file (a regular file: a FIFO, a device or
  a socket is refused at once, never read);
* ``path/to/folder``: a Hub-style folder, ``model.safetensors`` + ``config.json`` + ``README.md`` (the
  layout of huggingface_hub's ``PyTorchModelHubMixin``; written by :func:`signal_core.hub_folder.save_pretrained`
  and ``python -m train.convert``): its ``model.safetensors``;
* ``hf-hub:owner/repo`` or ``hf-hub:owner/repo@revision``: such a folder on the Hugging Face Hub (the
  spelling of timm and open_clip), fetched with ``huggingface_hub.snapshot_download``;
* ``hf://owner/repo[@revision]/path/in/repo``: one file on the Hub (the spelling of huggingface_hub's
  ``HfFileSystem``), fetched with ``hf_hub_download``; ``hf://owner/repo[@revision]`` is the whole folder.

Hub files land in the local Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE``) and are read from it
when the Hub cannot be reached or ``HF_HUB_OFFLINE=1``; a name missing from the cache then is one
:class:`WeightsSourceError` line that gives the ``hf download`` command to run.
"""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

HUB_WEIGHTS = "model.safetensors"  # the files of a Hub-style folder
HUB_CONFIG = "config.json"
HUB_CARD = "README.md"
HF_FILE_PREFIX = "hf://"
HF_REPO_PREFIX = "hf-hub:"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
WEIGHTS_HELP = ("our .safetensors checkpoint, the authors' Signal_model.pth (with --dataset), a Hub-style folder, "
                "hf-hub:owner/repo[@revision] or hf://owner/repo[@revision]/file (Hugging Face Hub, cached)")
_SPELLINGS = ("a .safetensors checkpoint, the authors' .pth, a Hub folder (model.safetensors + config.json), "
              "hf-hub:owner/repo or hf://owner/repo/file")
_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket"}


class WeightsSourceError(ValueError):
    """Weights that cannot be found or fetched; one line that says what to give or what to run."""


@dataclass(frozen=True)
class HubName:
    """A Hub name: ``repo_id`` ("owner/repo"), ``revision`` (None: main) and ``filename`` (None: the folder)."""

    spec: str
    repo_id: str
    revision: str | None
    filename: str | None

    def download_command(self) -> str:
        """The command that puts this name into the local cache (run where there is network)."""
        words = [_cli("download"), self.repo_id]
        if self.filename:
            words.append(self.filename)
        if self.revision:
            words.append(f"--revision {self.revision}")
        return " ".join(words)


def is_hub_name(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` names weights on the Hub (``hf://...`` or ``hf-hub:...``)."""
    return isinstance(spec, str) and spec.startswith((HF_FILE_PREFIX, HF_REPO_PREFIX))


def parse_hub_name(spec: str) -> HubName:
    """``hf-hub:owner/repo[@rev]``, ``hf://owner/repo[@rev]`` or ``hf://owner/repo[@rev]/path/file``.

    Raises:
        WeightsSourceError: a name that is not written so.
    """
    folder_only = spec.startswith(HF_REPO_PREFIX)
    rest = spec[len(HF_REPO_PREFIX if folder_only else HF_FILE_PREFIX):]
    parts = rest.split("/")
    usage = "hf-hub:owner/repo[@revision]" if folder_only else "hf://owner/repo[@revision][/path/to/file]"
    if len(parts) < 2 or (folder_only and len(parts) > 2) or not all(parts):
        raise WeightsSourceError(f"'{spec}' is not a Hub name: write {usage}.")
    if parts[0] in ("datasets", "spaces"):  # HfFileSystem's spelling of other kinds of repository
        raise WeightsSourceError(f"'{spec}': weights are read from model repositories, not {parts[0]}: write {usage}.")
    repo, _, revision = parts[1].partition("@")
    if not (_NAME.match(parts[0]) and _NAME.match(repo)) or (revision == "" and "@" in parts[1]):
        raise WeightsSourceError(f"'{spec}' is not a Hub name: write {usage} (letters, digits, '.', '_', '-').")
    return HubName(spec, f"{parts[0]}/{repo}", unquote(revision) or None, "/".join(parts[2:]) or None)


def resolve_weights(spec: str | os.PathLike) -> Path:
    """The local weights file ``spec`` names (see the module's docstring for the spellings).

    Returns:
        A regular file: our ``.safetensors`` checkpoint (a Hub folder's ``model.safetensors``, with its
        ``config.json`` beside it) or the authors' ``.pth``.

    Raises:
        WeightsSourceError: no such file, not a regular file, a folder without ``model.safetensors``, a bad
            Hub name, or a Hub name that is neither cached nor downloadable (the message says what to run).
    """
    if is_hub_name(spec):
        return _from_hub(parse_hub_name(str(spec)))
    text = str(spec)
    if not text.strip():
        raise WeightsSourceError(f"no weights given: give {_SPELLINGS}.")
    path = Path(text).expanduser()
    try:
        mode = path.stat().st_mode  # stat never opens: a FIFO is not waited on
    except FileNotFoundError:
        raise WeightsSourceError(f"weights '{text}' not found: give {_SPELLINGS}.") from None
    except OSError as exc:
        raise WeightsSourceError(f"weights '{text}' cannot be read ({exc.strerror or exc.__class__.__name__}).") \
            from None
    if stat.S_ISDIR(mode):
        return _folder_weights(path, text)
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise WeightsSourceError(f"weights '{text}' is {kind}, not a weights file: give {_SPELLINGS}.")
    return path


def _folder_weights(folder: Path, spec: str) -> Path:
    weights = folder / HUB_WEIGHTS
    if not weights.is_file():
        raise WeightsSourceError(f"'{spec}' is a folder without {HUB_WEIGHTS}: give a weights file, or a Hub "
                                 f"folder ({HUB_WEIGHTS} + {HUB_CONFIG}, written by python -m train.convert).")
    return weights


def _offline() -> bool:
    """``HF_HUB_OFFLINE`` as huggingface_hub reads it, but at call time (it reads it once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _cli(command: str) -> str:
    """``hf download`` / ``hf auth login`` (huggingface_hub 0.34 and later), else the ``huggingface-cli`` form."""
    try:
        from huggingface_hub import __version__
    except ImportError:
        __version__ = "0"
    if tuple(int(p) for p in re.findall(r"\d+", __version__)[:2]) >= (0, 34):
        return f"hf {'auth login' if command == 'login' else command}"
    return f"huggingface-cli {command}"


def _from_hub(name: HubName) -> Path:
    try:
        import huggingface_hub
    except ImportError:
        raise WeightsSourceError(f"'{name.spec}' is on the Hugging Face Hub, which needs huggingface_hub: "
                                 "pip install huggingface_hub.") from None
    from . import __version__

    common = dict(repo_id=name.repo_id, revision=name.revision, local_files_only=_offline(),
                  library_name="signal-reid", library_version=__version__)
    try:
        if name.filename:
            return Path(huggingface_hub.hf_hub_download(filename=name.filename, **common))
        folder = huggingface_hub.snapshot_download(allow_patterns=[HUB_WEIGHTS, HUB_CONFIG, HUB_CARD], **common)
    except Exception as exc:  # noqa: BLE001 - every failure of the Hub or the cache is told in one line
        raise WeightsSourceError(_hub_failure(name, exc)) from None
    weights = Path(folder) / HUB_WEIGHTS
    if not weights.is_file():
        raise WeightsSourceError(f"'{name.spec}' holds no {HUB_WEIGHTS}: name one of its files "
                                 f"(hf://{name.repo_id}/FILE, e.g. the authors' Signal_model.pth with --dataset).")
    return weights


def _hub_failure(name: HubName, exc: Exception) -> str:
    """What went wrong getting ``name`` and what to do, in one line."""
    from huggingface_hub.utils import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{name.filename} in {name.repo_id}" if name.filename else name.repo_id
    if isinstance(exc, LocalEntryNotFoundError):
        why = "HF_HUB_OFFLINE is set" if _offline() else "the Hub cannot be reached"
        return (f"'{name.spec}' is not in the local Hugging Face cache and {why}: download it where there is "
                f"network with `{name.download_command()}` (HF_HOME / HF_HUB_CACHE: the same cache), then run again.")
    if isinstance(exc, GatedRepoError):
        return f"{name.repo_id} is gated on the Hub: accept its terms on its page and log in ({_cli('login')})."
    if isinstance(exc, RepositoryNotFoundError):
        return (f"no model repository {name.repo_id} on the Hugging Face Hub (or it is private: log in with "
                f"{_cli('login')}); check the name.")
    if isinstance(exc, RevisionNotFoundError):
        return f"{name.repo_id} has no revision '{name.revision}': give a branch, tag or commit it has."
    if isinstance(exc, EntryNotFoundError):
        return f"{name.repo_id} has no file '{name.filename}' (at revision {name.revision or 'main'}): check the path."
    text = " ".join(str(exc).split())[:300]
    return f"could not get {where} from the Hugging Face Hub ({exc.__class__.__name__}: {text})."
