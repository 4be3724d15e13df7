"""Zip files for the upload tests: good triples folders and the malicious kinds (built in the test)."""
from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
from pathlib import Path


def zip_folder(folder: Path, zip_path: Path, top: str | None = None, extra: dict[str, bytes] | None = None) -> Path:
    """A zip of the triples folder ``folder`` (RGB/, NI/, TI/), under ``top/`` if given, plus ``extra``
    members (name -> bytes)."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                name = path.relative_to(folder).as_posix()
                archive.write(path, f"{top}/{name}" if top else name)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return zip_path


def zip_members(zip_path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    """A zip holding exactly ``members`` (name -> bytes), names written as given."""
    with zipfile.ZipFile(zip_path, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return zip_path


def triple_members(folder: Path, names: list[str] | None = None) -> dict[str, bytes]:
    """The members ``RGB/n``, ``NI/n``, ``TI/n`` of a triples folder (all its names by default)."""
    names = names or sorted(p.name for p in (folder / "RGB").iterdir())
    return {f"{d}/{n}": (folder / d / n).read_bytes() for n in names for d in ("RGB", "NI", "TI")}


def zip_with_symlink(zip_path: Path, folder: Path, link_name: str = "RGB/link.png",
                     target: str = "../../../../etc/passwd") -> Path:
    """A good triples zip plus a symbolic-link member (Unix mode S_IFLNK in the external attributes)."""
    zip_members(zip_path, triple_members(folder))
    info = zipfile.ZipInfo(link_name)
    info.create_system = 3  # Unix
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(zip_path, "a") as archive:
        archive.writestr(info, target)
    return zip_path


def zip_bomb(zip_path: Path, megabytes: int = 10) -> Path:
    """One member of ``megabytes`` MiB of zeros (compressed about 1000 : 1) named like an image."""
    return zip_members(zip_path, {"RGB/000001_cam1_000.png": bytes(megabytes << 20)})


def nested_zip_bomb(zip_path: Path, megabytes: int = 10) -> Path:
    """A zip whose only member is a zip bomb (the outer zip itself is not highly compressed)."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("RGB/000001_cam1_000.png", bytes(megabytes << 20))
    return zip_members(zip_path, {"gallery/bomb.zip": inner.getvalue()}, zipfile.ZIP_STORED)


def lie_about_size(zip_path: Path, member: str, declared: int) -> Path:
    """Rewrite the central directory so that ``member`` declares ``declared`` bytes uncompressed."""
    data = bytearray(zip_path.read_bytes())
    encoded = member.encode()
    at = 0
    while (at := data.find(b"PK\x01\x02", at)) != -1:
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        if bytes(data[at + 46:at + 46 + name_len]) == encoded:
            struct.pack_into("<I", data, at + 24, declared)
            zip_path.write_bytes(bytes(data))
            return zip_path
        at += 4
    raise KeyError(member)


def listing(root: Path) -> list[str]:
    """Every path under ``root`` (recursively), relative, sorted: compared before / after an upload."""
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, dirs, files in os.walk(root)
                  for n in dirs + files)
