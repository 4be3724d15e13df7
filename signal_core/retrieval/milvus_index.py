"""A gallery index in a Milvus collection, with the search interface of
:class:`signal_core.retrieval.index.GalleryIndex`.

    gallery = MilvusGallery.build("milvus:gallery.db", features, metadata={"pid": ..., "camid": ...},
                                  model_sha256=digest)                  # a new collection (Milvus Lite file)
    scores, rows = gallery.search(queries, 10, query_pids=qp, query_camids=qc)  # junk dropped by Milvus filters
    gallery.add(more, metadata={...}); gallery.save(); MilvusGallery.load("milvus://host:19530")

URIs: ``milvus:path/to/gallery.db`` is Milvus Lite (embedded in this process, one file, no server);
``milvus://host:19530`` a Milvus standalone or cluster (token, if any, from ``$MILVUS_TOKEN``). A
``#name`` suffix picks the collection (default ``signal_gallery``).

The collection is FLAT (exact) with the inner-product metric over L2-normalised features, so its
top-k is the exact index's. Rows are numbered 0..N-1 in the order they were added (the primary
key); each carries ``pid``, ``camid``, ``sceneid`` (-1: unknown), ``name`` and ``paths`` (JSON). The
collection's property ``signal_gallery_info`` records the feature dimension, the weights' sha256 and (written by
``gallery_open.write_index``) the gallery's content digest; opening it for other weights or another dimension is
refused. A Milvus Lite file that is missing is not created by a search, and one that is not a database (a
file, a broken link), locked by another process or damaged is one line (``milvus_lite_file.py``), as is any
other error Milvus answers. Junk rows (the query's identity seen by its camera
or scene) are dropped by a Milvus filter expression, one search per distinct (identity, camera).
"""
from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..utils.optional import require
from .index import JunkFilter, SearchResult, _normalised
from .milvus_lite_file import lite_failure_text, lite_path_problem, quiet_milvus_logs

FORMAT = "signal-gallery/1"
DEFAULT_COLLECTION = "signal_gallery"
INFO_PROPERTY = "signal_gallery_info"  # collection property: JSON {"format", "dim", "model_sha256"}
INT_FIELDS = ("pid", "camid", "sceneid")  # -1 where unknown
TEXT_FIELDS = {"name": 1024, "paths": 8192}  # VARCHAR max lengths; paths is a JSON list
INSERT_ROWS = 2048  # rows per insert (Milvus caps one insert at 64 MB: 2048 x 3072 floats = 25 MB)
QUERY_ROWS = 8192  # rows per metadata query (Milvus caps a query's limit at 16,384)
MAX_TOP_K = 16_384  # Milvus's largest limit per search
CONNECT_TIMEOUT_S = float(os.environ.get("SIGNAL_MILVUS_TIMEOUT", "10"))
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
URI_HELP = "use milvus:path/to/gallery.db (Milvus Lite) or milvus://host:19530 (a server), optionally #collection"


class MilvusGalleryError(ValueError):
    """A Milvus gallery cannot be opened, created or searched; the message says what to do."""


def is_milvus_uri(spec: str | os.PathLike) -> bool:
    """True for ``milvus:...`` (any form, valid or not)."""
    return str(spec).lower().startswith("milvus:")


def parse_milvus_uri(spec: str) -> tuple[str, str, bool]:
    """``(client uri, collection, is_lite)`` of a ``milvus:`` URI; ``MilvusGalleryError`` if malformed."""
    text = str(spec)
    rest, _, collection = text[len("milvus:"):].partition("#")
    collection = collection or DEFAULT_COLLECTION
    if not is_milvus_uri(text) or not rest or not _NAME.match(collection):
        raise MilvusGalleryError(f"'{text}' is not a Milvus gallery URI; {URI_HELP} (a collection name is letters, "
                                 "digits and _).")
    if rest.startswith("//"):
        host, _, port = rest[2:].rstrip("/").rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in host:
            raise MilvusGalleryError(f"'{text}' is not a Milvus server URI; {URI_HELP}.")
        return f"http://{host}:{port}", collection, False
    if not rest.endswith(".db"):
        raise MilvusGalleryError(f"'{text}': a Milvus Lite gallery is a file ending in .db; {URI_HELP}.")
    parent = os.path.dirname(os.path.abspath(os.path.expanduser(rest)))
    if not os.path.isdir(parent):
        raise MilvusGalleryError(f"'{text}': the folder of the Milvus Lite file does not exist; create it first.")
    return os.path.abspath(os.path.expanduser(rest)), collection, True


# Milvus Lite's in-process grpc server answers pymilvus's keep-alive pings (every 10 s, even when idle)
# with "GOAWAY too_many_pings" after a while, which breaks the shared connection for every later client
# of the file (a long-lived demo): no idle pings, and a connection of each gallery's own.
_LITE_CLIENT = {"grpc_options": {"grpc.keepalive_time_ms": 3_600_000, "grpc.keepalive_permit_without_calls": 0},
                "dedicated": True}


def _connect(spec: str, must_exist: bool = False):
    """A ``MilvusClient`` for ``spec`` and the collection name; ``must_exist``: a Milvus Lite file is not created."""
    pymilvus = require("pymilvus", "a milvus: gallery")
    uri, collection, lite = parse_milvus_uri(spec)
    if lite:
        require("milvus_lite", "a milvus:FILE.db gallery (Milvus Lite)")
        problem = lite_path_problem(uri, must_exist)
        if problem:
            raise MilvusGalleryError(f"'{spec}': {problem}.")
        # Milvus Lite serves pymilvus in-process over grpc and does not implement AllocTimestamp, which the
        # client calls on insert: grpc logs a harmless "Method not implemented!" trace for each one.
        logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
    with quiet_milvus_logs() as failure:
        try:
            client = pymilvus.MilvusClient(uri=uri, token=os.environ.get("MILVUS_TOKEN", ""),
                                           timeout=CONNECT_TIMEOUT_S, **(_LITE_CLIENT if lite else {}))
        except Exception as exc:  # pymilvus raises MilvusException, grpc errors or OSError here
            reason = getattr(exc, "message", None) or type(exc).__name__
            if lite:
                raise MilvusGalleryError(f"'{spec}': {lite_failure_text(uri, failure.cause, reason)}.") from None
            raise MilvusGalleryError(f"cannot reach the Milvus server at {uri[len('http://'):]} within "
                                     f"{CONNECT_TIMEOUT_S:g} s ({reason}); start it, or check the host and "
                                     "port.") from None
    return client, collection


@contextmanager
def _answers(uri: str) -> Iterator[None]:
    """Milvus's own errors (a damaged Milvus Lite file, a server refusing a call) as one-line MilvusGalleryErrors."""
    from pymilvus.exceptions import MilvusException

    try:
        with quiet_milvus_logs():
            yield
    except MilvusException as exc:
        reason = " ".join(str(getattr(exc, "message", "") or exc).split())[:300]
        if parse_milvus_uri(uri)[2]:
            raise MilvusGalleryError(f"Milvus Lite failed on '{uri}' ({reason}); the database may be damaged: "
                                     "rebuild it with python -m train.extract ... --index URI, or restore a good "
                                     "copy.") from None
        raise MilvusGalleryError(f"the Milvus server of '{uri}' answered an error ({reason}); check the server and "
                                 "the collection.") from None


def _schema(pymilvus, dim: int):
    schema = pymilvus.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", pymilvus.DataType.INT64, is_primary=True)  # the row number
    schema.add_field("vector", pymilvus.DataType.FLOAT_VECTOR, dim=int(dim))
    for field in INT_FIELDS:
        schema.add_field(field, pymilvus.DataType.INT64)
    for field, length in TEXT_FIELDS.items():
        schema.add_field(field, pymilvus.DataType.VARCHAR, max_length=length)
    return schema


def _column(metadata: Mapping[str, Any], key: str, n: int) -> list:
    """One metadata column as ``n`` plain values (default -1 / "")."""
    if key not in metadata:
        return [-1 if key in INT_FIELDS else ""] * n
    values = list(np.asarray(metadata[key]).tolist()) if key in INT_FIELDS else [str(v) for v in metadata[key]]
    if len(values) != n:
        raise ValueError(f"metadata[{key!r}] has {len(values)} values for {n} rows; give one per row.")
    if key in TEXT_FIELDS and any(len(v) > TEXT_FIELDS[key] for v in values):
        raise ValueError(f"metadata[{key!r}] holds a value longer than {TEXT_FIELDS[key]} characters.")
    if key in TEXT_FIELDS:
        for row, value in enumerate(values):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # a file name in another encoding, read by Python as surrogates
                shown = value.encode("utf-8", "backslashreplace").decode()
                raise MilvusGalleryError(f"row {row}: the {key} '{shown}' is not valid UTF-8 (a file name in another "
                                         "encoding), which Milvus cannot store; rename the file, or use a .sgi "
                                         "gallery.") from None
    return [int(v) for v in values] if key in INT_FIELDS else values


def _columns(metadata: Mapping[str, Any] | None, n: int) -> dict[str, list]:
    """Every gallery field's column of ``n`` plain values, checked."""
    metadata = dict(metadata or {})
    unknown = sorted(set(metadata) - set(INT_FIELDS) - set(TEXT_FIELDS))
    if unknown:
        raise ValueError(f"metadata keys {unknown} are not gallery fields; use {[*INT_FIELDS, *TEXT_FIELDS]}.")
    return {key: _column(metadata, key, n) for key in (*INT_FIELDS, *TEXT_FIELDS)}


class MilvusGallery:
    """Cosine search over a Milvus collection; see the module docstring. Open with :meth:`build` or :meth:`load`."""

    kind = "milvus"

    def __init__(self, client, collection: str, uri: str, info: dict[str, Any]) -> None:
        self._client, self.collection, self.uri = client, collection, uri
        self._dim, self.info = int(info["dim"]), info  # info: format, dim, model_sha256 and what the builder added
        self._metadata: dict[str, np.ndarray] | None = None
        self._count = self._row_count()

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def build(cls, uri: str, features: Any, metadata: Mapping[str, Any] | None = None,
              info: Mapping[str, Any] | None = None, overwrite: bool = False) -> MilvusGallery:
        """A new collection at ``uri`` holding ``features`` ([N, D]) and their metadata.

        Args:
            info: JSON-serialisable facts kept with the collection, ``model_sha256`` (the weights'
                sha256, checked by :meth:`load`) above all.
            overwrite: replace a collection of that name. The new one is built beside it and renamed
                into place once complete, so a failed build leaves the old one as it was.

        Raises:
            MilvusGalleryError: the collection exists (and not ``overwrite``), Milvus cannot be reached, or a
                name is not UTF-8 (checked before anything is written).
        """
        shape = getattr(features, "shape", None) or np.shape(features)
        if len(shape) != 2 or shape[0] == 0:
            raise ValueError(f"features must be a non-empty [N, D] array; got shape {tuple(shape)}")
        columns = _columns(metadata, shape[0])
        pymilvus = require("pymilvus", "a milvus: gallery")
        client, target = _connect(uri)
        with _answers(uri):
            exists = client.has_collection(target)
            if exists and not overwrite:
                raise MilvusGalleryError(f"'{uri}' already holds a gallery collection '{target}'; give another "
                                         "#collection name or file, or drop it first.")
            collection = f"{target[:200]}__signal_staging" if exists else target
            if client.has_collection(collection):
                client.drop_collection(collection)  # left by a build that was killed
            index_params = client.prepare_index_params()
            index_params.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
            info = {**(info or {}), "format": FORMAT, "dim": int(shape[1])}
            client.create_collection(collection, schema=_schema(pymilvus, shape[1]), index_params=index_params,
                                     properties={INFO_PROPERTY: json.dumps(info)})
            gallery = cls(client, collection, uri, info)
            gallery._insert(features, columns)
            if collection != target:
                client.flush(collection)
                client.drop_collection(target)
                client.rename_collection(collection, target)
                client.load_collection(target)
                gallery.collection = target
        return gallery

    @classmethod
    def find(cls, uri: str) -> MilvusGallery | None:
        """The Signal gallery collection at ``uri``, or None where there is none (a missing Milvus Lite file
        is not created).

        Raises:
            MilvusGalleryError: Milvus cannot be reached or read, or the collection is not a Signal gallery.
        """
        require("pymilvus", "a milvus: gallery")
        path, _, lite = parse_milvus_uri(uri)
        if lite and not os.path.lexists(path):
            return None
        client, collection = _connect(uri, must_exist=True)
        with _answers(uri):
            if not client.has_collection(collection):
                client.close()
                return None
            try:
                properties = client.describe_collection(collection).get("properties") or {}
                info = json.loads(properties.get(INFO_PROPERTY) or "null")
            except json.JSONDecodeError:
                info = None
            if not isinstance(info, dict) or info.get("format") != FORMAT or not isinstance(info.get("dim"), int):
                raise MilvusGalleryError(f"collection '{collection}' of '{uri}' is not a Signal gallery ({FORMAT}); "
                                         "give another #collection.")
            client.load_collection(collection)
            return cls(client, collection, uri, info)

    @classmethod
    def load(cls, uri: str, dim: int | None = None, model_sha256: str | None = None) -> MilvusGallery:
        """Open the gallery collection at ``uri``; with ``dim`` / ``model_sha256``, check it holds such features.

        Raises:
            MilvusGalleryError: no such file or collection, not a Signal gallery, another dimension or other weights.
        """
        gallery = cls.find(uri)
        if gallery is None:
            path, collection, lite = parse_milvus_uri(uri)
            problem = lite_path_problem(path, must_exist=True) if lite else None
            raise MilvusGalleryError(f"'{uri}': {problem}." if problem else
                                     f"'{uri}' holds no gallery collection '{collection}'; create one with python -m "
                                     "train.extract ... --index URI.")
        info = gallery.info
        if dim is not None and info["dim"] != int(dim):
            raise MilvusGalleryError(f"the gallery '{uri}' holds {info['dim']}-d features, these are {dim}-d; use a "
                                     "gallery built with the same model, or another #collection.")
        if model_sha256 is not None and info.get("model_sha256") != model_sha256:
            raise MilvusGalleryError(f"the gallery '{uri}' was built with other weights (sha256 "
                                     f"{str(info.get('model_sha256'))[:12]}...); use those weights, or another "
                                     "#collection.")
        return gallery

    def add(self, features: Any, metadata: Mapping[str, Any] | None = None) -> None:
        """Append rows (numbered after the existing ones) with their metadata (pid, camid, sceneid, name, paths)."""
        self._insert(features, _columns(metadata, len(features)))

    def _insert(self, features: Any, columns: dict[str, list]) -> None:
        n = len(features)
        with _answers(self.uri):
            for start in range(0, n, INSERT_ROWS):
                block = _normalised(features[start:start + INSERT_ROWS], self.dim, "features")  # [b, D]
                rows = [{"id": self._count + start + i, "vector": vec,
                         **{key: values[start + i] for key, values in columns.items()}}
                        for i, vec in enumerate(block)]
                self._client.insert(self.collection, rows)
        self._count += n
        self._metadata = None

    def save(self, path: str | None = None) -> None:
        """Persist what was added (a flush; the collection is its own storage). ``path`` must be None or the URI."""
        if path is not None and str(path) != self.uri:
            raise ValueError("a Milvus gallery is saved in its own collection; build another one to copy it.")
        with _answers(self.uri):
            self._client.flush(self.collection)

    def close(self) -> None:
        self._client.close()

    # ---- properties ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._count

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def metadata(self) -> dict[str, np.ndarray]:
        """Per-row ``pid``, ``camid``, ``sceneid`` (int64) and ``name``, ``paths`` (str), rows in order (read once)."""
        if self._metadata is None:
            fields = [*INT_FIELDS, *TEXT_FIELDS]
            got = {key: [None] * self._count for key in fields}
            for start in range(0, self._count, QUERY_ROWS):
                with _answers(self.uri):
                    found = self._client.query(self.collection, output_fields=["id", *fields], limit=QUERY_ROWS,
                                               filter=f"id >= {start} and id < {start + QUERY_ROWS}")
                for item in found:
                    for key in fields:
                        got[key][int(item["id"])] = item[key]
            self._metadata = {key: np.asarray(values, dtype=np.int64 if key in INT_FIELDS else str)
                              for key, values in got.items()}
        return self._metadata

    def _row_count(self) -> int:
        with _answers(self.uri):
            result = self._client.query(self.collection, filter="", output_fields=["count(*)"],
                                        consistency_level="Strong")
        return int(result[0]["count(*)"])

    def vectors(self, rows: Any) -> np.ndarray:
        """The stored, L2-normalised vectors of ``rows`` ([k] ints in 0..N-1): [k, D] float32."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise ValueError(f"rows must be in 0..{len(self) - 1}; got {rows.min()}..{rows.max()}")
        if not rows.size:
            return np.zeros((0, self.dim), dtype=np.float32)
        with _answers(self.uri):
            found = self._client.query(self.collection, filter=f"id in {[int(r) for r in set(rows.tolist())]}",
                                       output_fields=["id", "vector"])
        by_row = {int(item["id"]): item["vector"] for item in found}
        return np.asarray([by_row[int(r)] for r in rows], dtype=np.float32)

    # ---- search -------------------------------------------------------------------------------
    def search(self, queries: Any, k: int, exclude: JunkFilter | None = None, *, query_pids: Any = None,
               query_camids: Any = None, query_sceneids: Any = None) -> SearchResult:
        """Top-``k`` rows of every query by cosine similarity, best first (as ``GalleryIndex.search``).

        Junk rows (see ``JunkFilter``) are left out by a Milvus filter expression on ``pid`` and
        ``camid`` (or ``sceneid``).
        """
        if not 1 <= k <= MAX_TOP_K:
            raise ValueError(f"k must be in 1..{MAX_TOP_K}; got {k}")
        q = _normalised(queries, self.dim, "queries")  # [M, D]
        if exclude is None and query_pids is not None:
            exclude = JunkFilter(query_pids, query_camids, query_sceneids)
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        rows = np.full((len(q), k), -1, dtype=np.int64)
        for expr, members in self._filters(exclude, len(q)).items():
            with _answers(self.uri):
                hits = self._client.search(self.collection, data=q[members].tolist(), limit=k, filter=expr,
                                           anns_field="vector", search_params={"metric_type": "IP"},
                                           consistency_level="Strong")
            for i, found in zip(members, hits):
                ranked = sorted(((float(h["distance"]), int(h["id"])) for h in found), key=lambda t: (-t[0], t[1]))
                scores[i, :len(ranked)] = [s for s, _ in ranked][:k]
                rows[i, :len(ranked)] = [r for _, r in ranked][:k]
        return SearchResult(scores, rows)

    @staticmethod
    def _filters(exclude: JunkFilter | None, m: int) -> dict[str, list[int]]:
        """Filter expression -> the queries it serves ("" keeps every row)."""
        if exclude is None:
            return {"": list(range(m))}
        by = "sceneid" if exclude.sceneids is not None else "camid"
        other = exclude.sceneids if exclude.sceneids is not None else exclude.camids
        if other is None:
            raise ValueError("junk filtering needs the queries' camera ids (query_camids) or scene ids "
                             "(query_sceneids) besides their pids")
        pids, other = np.asarray(exclude.pids).reshape(-1), np.asarray(other).reshape(-1)
        if pids.shape != (m,) or other.shape != (m,):
            raise ValueError(f"query pids and {by}s must have one value per query ({m}); "
                             f"got {pids.shape} and {other.shape}")
        groups: dict[str, list[int]] = {}
        for i, (pid, value) in enumerate(zip(pids.tolist(), other.tolist())):
            expr = "" if int(pid) < 0 else f"not (pid == {int(pid)} and {by} == {int(value)})"
            groups.setdefault(expr, []).append(i)
        return groups
