"""A feature folder: the L2-normalised features of many triples, written in shards, verified on read.

Layout::

    FEATS/manifest.json        what the folder holds (see below), rewritten atomically after each shard
    FEATS/shard-00000.npz      rows [0, S) of the plan: "features" [n, D] float32, "rows" (JSON text)
    FEATS/shard-00001.npz      rows [S, 2S) ...

``manifest.json``::

    {"format": "signal-features/1", "complete": true, "count": N, "planned": P,
     "model": {"sha256": "...", "path": "..."},          # content hash of the weights file
     "settings": {"image_size": [H, W], "precision": "fp32", "feature_dim": D, "shard_size": S,
                  "source": {...}, "plan_sha256": "...", ...},
     "shards": [{"index": 0, "file": "shard-00000.npz", "rows": n, "sha256": "...", "skipped": [...]}],
     "skipped": [{"name": ..., "paths": [...], "error": "..."}]}

Each shard is written to a temporary file and renamed into place, and only then listed in the
manifest (also written atomically) with its sha256, so a reader or a resumed run never sees a
half-written shard: a shard file the manifest does not list (a run killed between the two writes)
is simply recomputed. :func:`read_features` checks every shard against its checksum. Non-finite features
(NaN or infinity, from broken weights or a broken graph) are never written: the writer refuses the shard.

Per-row metadata (``rows``): ``{"name", "paths": [rgb, nir, tir], "pid", "camid", "sceneid"}``,
with ``None`` where unknown; ``camid`` is 0-based.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..utils.atomic import atomic_write, write_json
from ..utils.hashing import sha256_file

FORMAT = "signal-features/1"
MANIFEST = "manifest.json"
PathLike = str | os.PathLike


class FeatureStoreError(ValueError):
    """A feature folder cannot be read or resumed; the message says why and what to do."""


class FeatureSet(NamedTuple):
    """What :func:`read_features` returns (unpacks as ``features, metadata, manifest``)."""

    features: np.ndarray  # [N, D] float32, L2-normalised rows
    metadata: list[dict[str, Any]]  # N rows: name, paths, pid, camid, sceneid
    manifest: dict[str, Any]


def shard_file(index: int) -> str:
    """File name of shard ``index``."""
    return f"shard-{index:05d}.npz"


def is_feature_folder(path: PathLike) -> bool:
    """True when ``path`` is a folder holding a feature manifest."""
    return (Path(path).expanduser() / MANIFEST).is_file()


def _normalise_json(value: Any) -> Any:
    """The value as it reads back from JSON (tuples become lists), for comparisons with a manifest."""
    return json.loads(json.dumps(value))


def read_manifest(root: PathLike) -> dict[str, Any]:
    """The manifest of a feature folder.

    Raises:
        FeatureStoreError: no manifest, unreadable JSON, or another format.
    """
    path = Path(root).expanduser() / MANIFEST
    if not path.is_file():
        raise FeatureStoreError(f"'{path.parent}' is not a feature folder (no {MANIFEST}); create one with "
                                "python -m train.extract.")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FeatureStoreError(f"'{path}' cannot be read ({exc}); re-run python -m train.extract into a "
                                "new folder.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise FeatureStoreError(f"'{path}' is not a {FORMAT} manifest; re-run python -m train.extract.")
    problem = _manifest_problem(manifest)
    if problem:
        raise FeatureStoreError(f"'{path}' is not a valid manifest ({problem}); re-run python -m train.extract "
                                "into a new folder.")
    return manifest


def _manifest_problem(manifest: dict[str, Any]) -> str | None:
    """What is wrong with a manifest's structure (None: nothing); shard files must be plain names in the folder."""
    settings, shards = manifest.get("settings"), manifest.get("shards")
    dim = settings.get("feature_dim") if isinstance(settings, dict) else None
    if not isinstance(dim, int) or dim < 1:
        return "no positive settings.feature_dim"
    if not isinstance(shards, list):
        return "no list of shards"
    for entry in shards:
        if not (isinstance(entry, dict) and isinstance(entry.get("index"), int) and isinstance(entry.get("rows"), int)
                and isinstance(entry.get("sha256"), str) and isinstance(entry.get("file"), str)):
            return f"shard entry {entry!r} lacks index, rows, file or sha256"
        if Path(entry["file"]).name != entry["file"] or entry["file"] in ("", ".", ".."):
            return f"shard file {entry['file']!r} is not a plain file name in the folder"
    return None


def _load_shard(root: Path, entry: dict[str, Any]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Features [n, D] and rows of one listed shard, after checking its checksum."""
    path = root / entry["file"]
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FeatureStoreError(f"shard '{path}' cannot be read ({exc}); re-run python -m train.extract with "
                                "the same arguments to recompute it.") from None
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise FeatureStoreError(f"shard '{path}' does not match its checksum in the manifest (changed or "
                                "corrupted); re-run python -m train.extract with the same arguments to recompute it.")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        features, rows = npz["features"], json.loads(str(npz["rows"]))
    if features.ndim != 2 or features.shape[0] != len(rows) or features.shape[0] != entry["rows"]:
        raise FeatureStoreError(f"shard '{path}' holds {features.shape} features for {len(rows)} rows; "
                                f"the manifest says {entry['rows']}. Re-extract into a new folder.")
    return features.astype(np.float32, copy=False), rows


def read_features(path: PathLike, allow_incomplete: bool = False) -> FeatureSet:
    """Read a feature folder: every shard listed in the manifest, checked against its checksum.

    Args:
        path: the feature folder.
        allow_incomplete: also read a folder whose extraction has not finished (its finished shards).

    Returns:
        ``FeatureSet(features [N, D] float32, metadata (N dicts), manifest)``, rows in plan order.

    Raises:
        FeatureStoreError: not a feature folder, unfinished extraction, or a shard that is missing,
            corrupted or inconsistent with the manifest.
    """
    root = Path(path).expanduser()
    manifest = read_manifest(root)
    if not manifest.get("complete") and not allow_incomplete:
        raise FeatureStoreError(f"feature folder '{root}' is incomplete ({manifest.get('count', 0)} of "
                                f"{manifest.get('planned', '?')} triples); re-run python -m train.extract with the "
                                "same arguments to finish it.")
    dim = int(manifest["settings"]["feature_dim"])
    entries = sorted(manifest["shards"], key=lambda e: e["index"])
    features = np.empty((sum(int(e["rows"]) for e in entries), dim), dtype=np.float32)  # [N, D]
    metadata: list[dict[str, Any]] = []
    for entry in entries:
        shard, rows = _load_shard(root, entry)
        if shard.shape[1] != dim:
            raise FeatureStoreError(f"shard '{root / entry['file']}' has dimension {shard.shape[1]}, the manifest "
                                    f"says {dim}; re-extract into a new folder.")
        features[len(metadata):len(metadata) + len(rows)] = shard
        metadata.extend(rows)
    return FeatureSet(features, metadata, manifest)


class FeatureWriter:
    """Writes (or resumes) a feature folder shard by shard.

    Args:
        root: the feature folder (created if missing; must be empty or an earlier run's folder).
        model: ``{"sha256": ..., "path": ...}`` of the weights.
        settings: everything that determines the features (compared on resume), JSON-serialisable.
        planned: number of triples the run will process.

    Raises:
        FeatureStoreError: ``root`` is a non-empty folder that is not a feature folder, or a feature
            folder made with other weights or settings (the message lists the differences).
    """

    def __init__(self, root: PathLike, model: dict[str, Any], settings: dict[str, Any], planned: int) -> None:
        self.root = Path(root).expanduser()
        model, settings = _normalise_json(model), _normalise_json(settings)
        if is_feature_folder(self.root):
            self.manifest = read_manifest(self.root)
            self._check_resume(model, settings, planned)
            self._drop_bad_shards()
        else:
            if self.root.exists() and (not self.root.is_dir() or any(self.root.iterdir())):
                raise FeatureStoreError(f"'{self.root}' exists and is not a feature folder; give --out a new "
                                        "or empty folder.")
            self.manifest = {"format": FORMAT, "complete": False, "count": 0, "planned": int(planned),
                             "model": model, "settings": settings, "shards": [], "skipped": []}
            self._save()

    def _check_resume(self, model: dict[str, Any], settings: dict[str, Any], planned: int) -> None:
        old = self.manifest
        diffs = []
        if old["model"].get("sha256") != model.get("sha256"):
            there, now = str(old["model"].get("sha256"))[:12], model.get("sha256", "")[:12]
            diffs.append(f"weights (sha256 {there}... there, {now}... now, file {model.get('path')})")
        keys = sorted(set(old["settings"]) | set(settings))
        diffs += [f"{k} ({old['settings'].get(k)!r} there, {settings.get(k)!r} now)"
                  for k in keys if old["settings"].get(k) != settings.get(k)]
        if int(old.get("planned", -1)) != int(planned):
            diffs.append(f"number of triples ({old.get('planned')} there, {planned} now)")
        if diffs:
            raise FeatureStoreError(f"'{self.root}' holds features of another run; it differs in: {'; '.join(diffs)}. "
                                    "Use the same weights and settings to resume, or give --out a new folder.")

    def _drop_bad_shards(self) -> None:
        """Forget listed shards whose file is missing or fails its checksum (they are recomputed), and
        remove the temporary files a killed run left behind."""
        for tmp in self.root.glob(".shard-*.npz.*"):
            tmp.unlink(missing_ok=True)
        good = []
        for entry in self.manifest["shards"]:
            path = self.root / entry["file"]
            if path.is_file() and sha256_file(path) == entry["sha256"]:
                good.append(entry)
        if len(good) != len(self.manifest["shards"]):
            self.manifest["shards"] = good
            self.manifest["complete"] = False
            self._save()

    def _save(self) -> None:
        shards = self.manifest["shards"]
        self.manifest["count"] = sum(int(e["rows"]) for e in shards)
        self.manifest["skipped"] = [s for e in sorted(shards, key=lambda e: e["index"]) for s in e["skipped"]]
        write_json(self.root / MANIFEST, self.manifest)

    @property
    def finished_shards(self) -> set[int]:
        """Indices of the shards already written (and verified)."""
        return {int(e["index"]) for e in self.manifest["shards"]}

    @property
    def complete(self) -> bool:
        return bool(self.manifest["complete"])

    def write_shard(self, index: int, features: np.ndarray, rows: Sequence[dict[str, Any]],
                    skipped: Sequence[dict[str, Any]] = ()) -> Path:
        """Write shard ``index`` (features [n, D] float32 with their n rows) atomically, then list it.

        Args:
            index: shard number (rows ``[index * S, (index + 1) * S)`` of the plan).
            features: [n, D] float32, L2-normalised.
            rows: n metadata dicts, in the order of ``features``.
            skipped: the triples of this shard that could not be read (name, paths, error).
        """
        features = np.ascontiguousarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[0] != len(rows):
            raise ValueError(f"shard {index}: {features.shape} features for {len(rows)} rows.")
        bad = np.flatnonzero(~np.isfinite(features).all(axis=1))
        if bad.size:
            names = ", ".join(str(rows[i].get("name", i)) for i in bad[:5]) + (", ..." if bad.size > 5 else "")
            raise FeatureStoreError(f"the features of {bad.size} of {len(rows)} triple(s) in shard {index} are not "
                                    f"finite (NaN or infinity): {names}; the weights or the graph that computed them "
                                    "are broken (nothing of this shard was written): check them, or export the "
                                    "graph again.")
        buffer = io.BytesIO()
        np.savez(buffer, features=features, rows=np.array(json.dumps(list(rows))))
        data = buffer.getvalue()
        path = atomic_write(self.root / shard_file(index), lambda tmp: Path(tmp).write_bytes(data))
        entry = {"index": int(index), "file": path.name, "rows": len(rows), "sha256": hashlib.sha256(data).hexdigest(),
                 "skipped": _normalise_json(list(skipped))}
        self.manifest["shards"] = [e for e in self.manifest["shards"] if e["index"] != index] + [entry]
        self.manifest["shards"].sort(key=lambda e: e["index"])
        self._save()
        return path

    def finish(self) -> dict[str, Any]:
        """Mark the folder complete; returns the manifest."""
        self.manifest["complete"] = True
        self._save()
        return self.manifest
