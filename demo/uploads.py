"""Safe intake of a visitor's own gallery: a zip of a triples folder, or several image files.

Everything is written inside one destination folder (the upload's own temporary folder) as a
triples folder ``DEST/{RGB,NI,TI}/<name>``; nothing else is ever created. A zip is read member by
member with :mod:`zipfile` (never ``extractall``): each member's name is checked (no absolute path,
no ``..``, no drive letter or backslash tricks), links and other special members are refused, and
the destination path is built from the modality folder and the member's bare file name only, then
opened with ``O_EXCL | O_NOFOLLOW``. Sizes are checked twice: the sizes the zip declares (total,
per member, compression ratio) before anything is read, and the bytes actually read while writing
(a lying header is caught). Members that are not images in ``RGB/``, ``NI/`` or ``TI/`` (a
``README``, ``__MACOSX/``, a nested zip) are ignored and named in the status; a nested archive is
never opened. Each image's pixel count is read from its header (the demo's 40 Mpx limit).

Several files (no zip) follow one naming rule: the modality folder as a prefix of the file name,
``RGB_<name>``, ``NI_<name>``, ``TI_<name>`` (e.g. ``RGB_000001_cam1_000.png``): the three files
of one triple share ``<name>``.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from signal_core.data.images import MAX_PIXELS, ImageDecodeError, open_image
from signal_core.data.triples import TRIPLE_IMAGE_EXTENSIONS, match_triple_names
from signal_core.modalities import FOLDERS
from signal_core.utils.messages import os_reason, reason, shown

CHUNK = 1 << 16  # bytes read from a member at a time
RATIO_FLOOR = 1 << 20  # compression ratios are checked for members (and totals) above 1 MiB
FOLDER_NAMES = {f.lower(): f for f in FOLDERS} | {"nir": "NI", "tir": "TI"}  # accepted spellings
IGNORED_TOP = ("__macosx",)  # macOS resource-fork folders in zips made by Finder


class UploadError(ValueError):
    """An upload refused; the message says what is wrong and what to do (shown to the visitor)."""


@dataclass(frozen=True)
class UploadLimits:
    """What one upload may hold (defaults protect a shared Space; see README, Your own gallery)."""

    max_triples: int = 2000
    max_total_bytes: int = 200 * 1024 * 1024  # uncompressed, all members together
    max_member_bytes: int = 20 * 1024 * 1024  # uncompressed, one member
    max_ratio: float = 100.0  # uncompressed / compressed, of a member or of the whole zip
    max_members: int = 10_000  # entries in the zip, directories and ignored files included
    max_pixels: int = MAX_PIXELS  # per image, read from the header
    max_seconds: float = 300.0  # intake and feature extraction together
    max_concurrent: int = 2  # uploads processed at the same time (server-wide)


DEFAULT_LIMITS = UploadLimits()


@dataclass
class Intake:
    """What an accepted upload gave: a triples folder and what was left out."""

    folder: Path  # DEST holding RGB/, NI/, TI/
    images: int = 0  # image files written
    ignored: list[str] = field(default_factory=list)  # member / file names left out (not images of RGB/NI/TI)
    bytes_written: int = 0

    def ignored_note(self) -> str:
        """E.g. " (ignored 2 files that are not images in RGB/, NI/, TI/: README.txt, notes.md)"."""
        if not self.ignored:
            return ""
        names = ", ".join(shown(n) for n in self.ignored[:3]) + (", ..." if len(self.ignored) > 3 else "")
        return f" (ignored {len(self.ignored)} file(s) that are not images in RGB/, NI/, TI/: {names})"


class Deadline:
    """Raise :class:`UploadError` once ``seconds`` have passed since creation."""

    def __init__(self, seconds: float):
        self.seconds, self.start = seconds, time.monotonic()

    def check(self, doing: str = "reading the upload") -> None:
        if time.monotonic() - self.start > self.seconds:
            raise UploadError(f"stopped {doing} after {self.seconds:.0f} s, this demo's time limit per upload: "
                              "upload fewer or smaller images.")


def _mb(n: float) -> str:
    return f"{n / (1024 * 1024):.0f} MB"


def _is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in TRIPLE_IMAGE_EXTENSIONS and not name.startswith(".")


# --- names -------------------------------------------------------------------------------------
def member_parts(name: str) -> tuple[str, ...]:
    """The path components of a zip member name, refusing any that could leave the destination.

    Raises:
        UploadError: an absolute path, a drive letter, a ``..`` component, a NUL character.
    """
    if "\0" in name:
        raise UploadError(f"zip member '{shown(name)}' has a NUL character in its name: refused.")
    posix = name.replace("\\", "/")
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix):
        raise UploadError(f"zip member '{shown(name)}' has an absolute path: refused (a zip of a triples folder has "
                          "relative names such as RGB/0001.png).")
    parts = tuple(p for p in PurePosixPath(posix).parts if p not in ("", "."))
    if ".." in parts:
        raise UploadError(f"zip member '{shown(name)}' points outside its folder ('..'): refused.")
    return parts


def _check_member_kind(info: zipfile.ZipInfo) -> None:
    """Refuse links, devices, FIFOs and encrypted members (Unix mode in the external attributes)."""
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UploadError(f"zip member '{shown(info.filename)}' is a symbolic link: refused (links are not accepted).")
    if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # no type bits: a plain file
        raise UploadError(f"zip member '{shown(info.filename)}' is not a regular file: refused.")
    if info.flag_bits & 0x1:
        raise UploadError(f"zip member '{shown(info.filename)}' is encrypted: upload a zip without a password.")


def _top_folder(parts_list: Sequence[tuple[str, ...]]) -> int:
    """How many leading components to drop: 0 when RGB/NI/TI are at the top, 1 when a single top folder
    holds them."""
    tops = {p[0].lower() for p in parts_list if len(p) > 1}
    if tops & FOLDER_NAMES.keys():
        return 0
    if len(tops) == 1 and any(len(p) > 2 and p[1].lower() in FOLDER_NAMES for p in parts_list):
        return 1
    raise UploadError("the zip holds no triples folder: put the images in RGB/, NI/ and TI/ folders with the "
                      "same file names (at the top of the zip, or in one folder at its top).")


# --- writing -------------------------------------------------------------------------------------
def _open_new(dest_root: Path, folder: str, name: str):
    """A new file ``dest_root/folder/name`` (never an existing file, never through a link)."""
    target = (dest_root / folder / name)
    if target.parent.resolve() != (dest_root / folder).resolve() or "/" in name or name in ("", ".", ".."):
        raise UploadError(f"file name '{shown(name)}' is not accepted.")
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        raise UploadError(f"'{shown(f'{folder}/{name}')}' appears twice in the upload: keep one.") from None
    except OSError as exc:  # a name too long for the file system, ...: its text would name the server path
        raise UploadError(f"'{shown(f'{folder}/{name}')}' cannot be written here ({os_reason(exc)}): rename it."
                          ) from None
    return os.fdopen(fd, "wb"), target


def _check_image(path: Path, name: str, limits: UploadLimits) -> None:
    """The file is an image of an accepted format, within the pixel limit (header only)."""
    try:
        with open_image(path, f"'{shown(name)}'", limits.max_pixels):
            pass
    except ImageDecodeError as exc:
        raise UploadError(f"{exc}") from None


class _Budget:
    """Bytes actually written, against the per-member and total limits."""

    def __init__(self, limits: UploadLimits):
        self.limits, self.total = limits, 0

    def add(self, n: int, member_bytes: int, name: str) -> None:
        self.total += n
        if member_bytes > self.limits.max_member_bytes:
            raise UploadError(f"'{shown(name)}' is larger than {_mb(self.limits.max_member_bytes)} (this demo's limit "
                              "per file): downscale it.")
        if self.total > self.limits.max_total_bytes:
            raise UploadError(f"the upload is larger than {_mb(self.limits.max_total_bytes)} uncompressed (this "
                              "demo's limit): upload fewer or smaller images.")


def _copy_stream(source, out, name: str, budget: _Budget, deadline: Deadline, declared: int | None) -> int:
    written = 0
    while chunk := source.read(CHUNK):
        written += len(chunk)
        budget.add(len(chunk), written, name)
        if declared is not None and written > declared:
            raise UploadError(f"zip member '{shown(name)}' holds more bytes than its header says: refused (damaged or "
                              "crafted zip).")
        out.write(chunk)
        deadline.check()
    return written


def _without_orphans(plan: list, ignored: list[str], name_of) -> list:
    """The plan less its NI / TI images without an RGB image of their name, which join ``ignored``
    (the triples-folder rule of :func:`signal_core.data.triples.match_triple_names`)."""
    by_folder: dict[str, list[str]] = {}
    for _, folder, name in plan:
        by_folder.setdefault(folder, []).append(name)
    orphans = set(match_triple_names(by_folder).orphans)
    ignored += [f"{name_of(source)} (no RGB image of that name)" for source, folder, name in plan
                if f"{folder}/{name}" in orphans]
    return [entry for entry in plan if f"{entry[1]}/{entry[2]}" not in orphans]


# --- zip ---------------------------------------------------------------------------------------
def _check_declared(infos: Sequence[zipfile.ZipInfo], limits: UploadLimits) -> None:
    """Refuse from the central directory alone: too many members, sizes, compression ratios."""
    if len(infos) > limits.max_members:
        raise UploadError(f"the zip has {len(infos)} entries, over this demo's limit of {limits.max_members}: "
                          "upload fewer files.")
    total = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos)
    if total > limits.max_total_bytes:
        raise UploadError(f"the zip would unpack to {_mb(total)}, over this demo's limit of "
                          f"{_mb(limits.max_total_bytes)}: upload fewer or smaller images.")
    for info in infos:
        if info.file_size > limits.max_member_bytes:
            raise UploadError(f"zip member '{shown(info.filename)}' would unpack to {_mb(info.file_size)}, "
                              f"over this demo's limit of {_mb(limits.max_member_bytes)} per file: downscale it.")
        ratio = info.file_size / max(1, info.compress_size)
        if info.file_size > RATIO_FLOOR and ratio > limits.max_ratio:
            raise UploadError(f"zip member '{shown(info.filename)}' is compressed {ratio:.0f} : 1 "
                              f"(over {limits.max_ratio:.0f} : 1, the mark of a zip bomb): refused.")
    if total > RATIO_FLOOR and total / max(1, packed) > limits.max_ratio:
        raise UploadError(f"the zip is compressed {total / max(1, packed):.0f} : 1 (over {limits.max_ratio:.0f} : 1,"
                          " the mark of a zip bomb): refused.")


def _plan_zip(infos: Sequence[zipfile.ZipInfo], limits: UploadLimits):
    """(member, modality folder, file name) of every image to write, and the names ignored."""
    named = []
    for info in infos:
        parts = member_parts(info.filename)
        _check_member_kind(info)
        if parts and not info.is_dir() and parts[0].lower() not in IGNORED_TOP:
            named.append((info, parts))
    drop = _top_folder([p for _, p in named])
    plan, ignored = [], []
    for info, parts in named:
        rest = parts[drop:]
        if len(rest) == 2 and rest[0].lower() in FOLDER_NAMES and _is_image_name(rest[1]):
            plan.append((info, FOLDER_NAMES[rest[0].lower()], rest[1]))
        else:
            ignored.append("/".join(parts))
    plan = _without_orphans(plan, ignored, lambda info: info.filename)
    rgb = sum(1 for _, folder, _ in plan if folder == FOLDERS[0])
    if rgb > limits.max_triples:
        raise UploadError(f"the zip holds {rgb} triples, over this demo's limit of {limits.max_triples}: upload "
                          "fewer.")
    return plan, ignored


def intake_zip(zip_path: str | os.PathLike, dest: str | os.PathLike, limits: UploadLimits | None = None,
               deadline: Deadline | None = None) -> Intake:
    """Write the triples of a zip into ``dest`` (created; on refusal removed again).

    Raises:
        UploadError: not a zip, a dangerous member, over a limit (the message says which).
    """
    dest = _fresh(dest)
    limits = limits or DEFAULT_LIMITS
    deadline = deadline or Deadline(limits.max_seconds)
    try:
        with zipfile.ZipFile(zip_path) as archive:
            infos = archive.infolist()
            _check_declared(infos, limits)
            plan, ignored = _plan_zip(infos, limits)
            intake = _prepare(dest, ignored)
            budget = _Budget(limits)
            for info, folder, name in plan:
                out, target = _open_new(dest, folder, name)
                with out, archive.open(info) as source:
                    _copy_stream(source, out, info.filename, budget, deadline, info.file_size)
                _check_image(target, info.filename, limits)
                intake.images += 1
            intake.bytes_written = budget.total
            return intake
    except zipfile.BadZipFile as exc:
        _remove(dest)
        raise UploadError(f"'{shown(Path(zip_path).name)}' is not a readable zip file ({shown(str(exc))}).") from None
    except (UploadError, OSError, RuntimeError, EOFError, NotImplementedError) as exc:
        _remove(dest)
        if isinstance(exc, UploadError):
            raise
        raise UploadError(f"the zip could not be read ({reason(exc)}).") from None


def _fresh(dest: str | os.PathLike) -> Path:
    """``dest`` as a Path; it must not exist yet (it is removed again on refusal)."""
    dest = Path(dest)
    if os.path.lexists(dest):
        raise FileExistsError(f"{dest} exists: an upload goes to a new folder.")
    return dest


def _prepare(dest: Path, ignored: list[str]) -> Intake:
    dest.mkdir(parents=True, exist_ok=False)
    for folder in FOLDERS:
        (dest / folder).mkdir()
    return Intake(dest, ignored=ignored)


def _remove(dest: Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)


# --- several files -------------------------------------------------------------------------------
def split_prefixed_name(name: str) -> tuple[str, str] | None:
    """("NI", "000001_cam1_000.png") from "NI_000001_cam1_000.png" (also "nir-..." / "TIR_..."); None
    when the name has no modality prefix."""
    match = re.match(r"^(rgb|nir|ni|tir|ti)[_-](.+)$", name, re.IGNORECASE)
    if not match or not _is_image_name(match[2]):
        return None
    return FOLDER_NAMES[match[1].lower()], match[2]


def intake_files(paths: Sequence[str | os.PathLike], dest: str | os.PathLike,
                 limits: UploadLimits | None = None, deadline: Deadline | None = None) -> Intake:
    """Copy image files named ``RGB_<name>``, ``NI_<name>``, ``TI_<name>`` into a triples folder ``dest``.

    Raises:
        UploadError: over a limit, a file that is not an image, no file with a modality prefix.
    """
    dest = _fresh(dest)
    limits = limits or DEFAULT_LIMITS
    deadline = deadline or Deadline(limits.max_seconds)
    if len(paths) > limits.max_members:
        raise UploadError(f"{len(paths)} files, over this demo's limit of {limits.max_members}: upload fewer.")
    plan, ignored = [], []
    for path in map(Path, paths):
        split = split_prefixed_name(path.name)
        (plan.append((path, *split)) if split else ignored.append(path.name))
    plan = _without_orphans(plan, ignored, lambda path: path.name)
    if not plan:
        raise UploadError("no file is named like a triple's image: name them RGB_<name>, NI_<name> and TI_<name> "
                          "(e.g. RGB_000001_cam1_000.png), or upload one zip of a triples folder.")
    rgb = sum(1 for _, folder, _ in plan if folder == FOLDERS[0])
    if rgb > limits.max_triples:
        raise UploadError(f"{rgb} triples, over this demo's limit of {limits.max_triples}: upload fewer.")
    intake, budget = _prepare(dest, ignored), _Budget(limits)
    try:
        for path, folder, name in plan:
            out, target = _open_new(dest, folder, name)
            with out, open(path, "rb") as source:
                _copy_stream(source, out, path.name, budget, deadline, None)
            _check_image(target, path.name, limits)
            intake.images += 1
    except (UploadError, OSError) as exc:
        _remove(dest)
        if isinstance(exc, UploadError):
            raise
        raise UploadError(f"the files could not be read ({reason(exc)}).") from None
    intake.bytes_written = budget.total
    return intake
