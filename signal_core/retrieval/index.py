"""Gallery index on faiss: exact or approximate (PCA + IVF + SQ8, re-ranked) cosine search.

    index = GalleryIndex.build(features, kind="auto", metadata={"pid": pids, "camid": camids})
    scores, rows = index.search(queries, k=10)                          # [M, k] cosine, [M, k] rows
    scores, rows = index.search(queries, 10, query_pids=qp, query_camids=qc)  # protocol junk dropped
    index.add(more_features, metadata={...}); index.save("gallery.sgi"); GalleryIndex.load("gallery.sgi")
    index.vectors(rows)                                                 # [k, D] stored unit vectors

Kinds:
    ``exact``: ``faiss.IndexFlatIP`` over the L2-normalised features; the same ranking as the matrix
        product ``queries @ features.T``. Ties (equal scores) are returned smaller row first; at
        the k-th place faiss also keeps the smaller row of a tie.
    ``ivfpq``: the approximate kind (issue 12's name; the faiss factory is ours to choose):
        ``PCA{pca_dim},IVF{nlist},SQ8,Refine(SQ8)``. An inverted file over PCA-reduced vectors
        (8-bit scalar-quantised codes, pca_dim bytes per row) visits ``nprobe`` lists and proposes
        ``k_factor * k`` candidates, which are re-ranked by their distance to an 8-bit
        scalar-quantised copy of the full vectors (D bytes per row, 3.1 GB at 1,000,000 x 3072).
        The metric is squared L2, which ranks unit vectors as cosine does; unlike the inner product
        it stays a good proxy after the PCA (which drops components and centres the data), so a
        gallery row finds itself. Scores are ``1 - L2 / 2`` of the re-rank (within ~1e-3 of the
        exact cosine). Measured alternatives (benchmarks/index_bench.py, README): an IVF over the
        full 3072-d vectors with SQ8 codes scans 12x more bytes per candidate; an HNSW graph over
        the PCA vectors stalls at recall@10 ~0.86 (identity clusters make the graph poorly connected).
    ``auto``: ``exact`` below ``AUTO_EXACT_MAX_ROWS`` rows, ``ivfpq`` from there on.

Rows are numbered 0..N-1 in the order they were given (``build`` then each ``add``). Features and
queries are L2-normalised here (defensively; a zero vector stays zero). faiss uses its default
thread count (``faiss.omp_get_max_threads()``); the exact kind is searched on GPU when faiss sees one.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from ..utils.optional import require
from .index_file import IndexFileContent, IndexFileError, read_index_file, write_index_file

faiss = require("faiss", "the gallery index (signal_core.retrieval.index)")

AUTO_EXACT_MAX_ROWS = 50_000  # "auto" builds an exact index below this many rows
FORMAT_VERSION = 2  # 2: ivfpq is PCA + IVF + SQ8 + Refine(SQ8) under L2 (1 was PCA + IVF + PQ, inner product)
_ADD_CHUNK = 65_536  # rows normalised and added at a time (features may be a np.memmap)
KINDS = ("exact", "ivfpq", "auto")

__all__ = ["AUTO_EXACT_MAX_ROWS", "GalleryIndex", "IndexFileError", "IvfPqConfig", "JunkFilter", "SearchResult"]


@dataclass
class IvfPqConfig:
    """Settings of the approximate (``ivfpq``) index; defaults chosen by benchmarks/index_bench.py."""

    pca_dim: int = 256  # PCA output dimension of the IVF's vectors (at most the training rows); no PCA when >= D
    nlist: int | None = None  # IVF lists (at most the training rows); None: power of two near 4 * sqrt(N), at
    # most training rows / 32
    refine: str = "SQ8"  # re-rank copy of the full vectors: SQ8 (D bytes/row), SQfp16 (2D), Flat (4D)
    nprobe: int = 256  # IVF lists visited per query
    k_factor: int = 10  # candidates re-ranked per query = k_factor * k
    train_rows: int = 131_072  # rows sampled (at random, seed 0) to train PCA, IVF and SQ8 ranges

    def factory(self, dim: int, n_rows: int, n_train: int) -> str:
        """The faiss ``index_factory`` string for ``n_rows`` ``dim``-dimensional features, ``n_train`` training rows."""
        if self.pca_dim < 1:
            raise ValueError(f"pca_dim must be >= 1; got {self.pca_dim}")
        nlist = self.nlist or max(1, min(2 ** round(math.log2(4 * math.sqrt(n_rows))), n_train // 32))
        nlist = min(nlist, n_train)  # k-means needs a training row per list
        pca_dim = min(self.pca_dim, n_train)  # faiss's PCA outputs at most as many dimensions as training rows
        prefix = f"PCA{pca_dim}," if pca_dim < dim else ""
        return f"{prefix}IVF{nlist},SQ8,Refine({self.refine})"


@dataclass
class JunkFilter:
    """The queries' identities, to drop the protocol's junk gallery rows from their results.

    A gallery row is junk for a query when it has the query's identity and camera, or, when
    ``sceneids`` is given (MSVR310's protocol), the query's identity and scene. The gallery's
    metadata must carry ``pid`` and ``camid`` (or ``sceneid``).
    """

    pids: Sequence[Any]  # [M]
    camids: Sequence[Any] | None = None  # [M]
    sceneids: Sequence[Any] | None = None  # [M]


class SearchResult(NamedTuple):
    """Top-k of every query, best first; ``scores, rows = result`` unpacks it."""

    scores: np.ndarray  # [M, k] float32 cosine; -inf where fewer than k results
    rows: np.ndarray  # [M, k] int64 gallery rows; -1 where fewer than k results


def _normalised(x: Any, dim: int | None, what: str) -> np.ndarray:
    """[N, D] float32 C-contiguous, L2-normalised rows (a copy)."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
        want = f"[N, {dim}]" if dim is not None else "[N, D]"
        raise ValueError(f"{what} must be a {want} array; got shape {tuple(x.shape)}")
    x = np.array(x, dtype=np.float32, order="C", copy=True)
    if not np.isfinite(x).all():
        raise ValueError(f"{what} contain NaN or infinite values; check the feature extraction")
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x


def _check_metadata(metadata: Mapping[str, Any] | None, n: int, keys: Sequence[str] | None) -> dict[str, np.ndarray]:
    """Per-row metadata as numeric or unicode arrays of length ``n`` (same keys as ``keys``)."""
    metadata = dict(metadata or {})
    if keys is not None and sorted(metadata) != sorted(keys):
        raise ValueError(f"metadata keys {sorted(metadata)} differ from the index's {sorted(keys)}; give the same keys")
    out = {}
    for key, values in metadata.items():
        arr = np.asarray(values)
        if arr.dtype.kind == "O":
            arr = arr.astype(str)
        if arr.ndim != 1 or len(arr) != n or arr.dtype.kind not in "biufUS":
            raise ValueError(f"metadata[{key!r}] must be a list of {n} numbers or strings (one per row); "
                             f"got {arr.dtype} shape {arr.shape}")
        out[key] = arr
    return out


class GalleryIndex:
    """Cosine search over gallery features; see the module docstring."""

    def __init__(self, index: faiss.Index, kind: str, metadata: dict[str, np.ndarray], config: IvfPqConfig) -> None:
        self._index, self.kind, self.metadata, self.config = index, kind, metadata, config
        # saved with the index (e.g. the weights' sha256: signal_core.retrieval.gallery_open)
        self.info: dict[str, Any] = {}
        self._gpu: faiss.Index | None = None
        self._apply_search_params()

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def build(cls, features: Any, kind: str = "auto", metadata: Mapping[str, Any] | None = None,
              config: IvfPqConfig | None = None) -> GalleryIndex:
        """Index ``features`` ([N, D]; may be a np.memmap, read in chunks) with optional per-row metadata."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
        shape = getattr(features, "shape", None) or np.shape(features)
        if len(shape) != 2 or shape[0] == 0:
            raise ValueError(f"features must be a non-empty [N, D] array; got shape {tuple(shape)}")
        n, dim = shape
        if kind == "auto":
            kind = "exact" if n < AUTO_EXACT_MAX_ROWS else "ivfpq"
        config = replace(config) if config is not None else IvfPqConfig()  # a copy: nprobe etc. are per index
        meta = _check_metadata(metadata, n, None)
        if kind == "exact":
            index = faiss.IndexFlatIP(dim)
        else:
            rng = np.random.default_rng(0)
            sample = np.sort(rng.choice(n, size=min(n, config.train_rows), replace=False))
            train = _normalised(features[sample], dim, "features")
            # L2 on unit vectors: see the module doc
            index = faiss.index_factory(dim, config.factory(dim, n, len(train)), faiss.METRIC_L2)
            index.train(train)
            del train
        built = cls(index, kind, {k: v[:0] for k, v in meta.items()}, config)
        built.add(features, metadata)
        return built

    def add(self, features: Any, metadata: Mapping[str, Any] | None = None) -> None:
        """Append rows (numbered after the existing ones), with metadata for the same keys if the index has any."""
        n = len(features)
        meta = _check_metadata(metadata, n, list(self.metadata))
        for start in range(0, n, _ADD_CHUNK):
            self._index.add(_normalised(features[start:start + _ADD_CHUNK], self.dim, "features"))
        for key, values in meta.items():
            self.metadata[key] = np.concatenate([self.metadata[key], values])
        self._gpu = None

    # ---- properties ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        """Feature dimension D."""
        return int(self._index.d)

    @property
    def nprobe(self) -> int:
        return self.config.nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self.config.nprobe = int(value)
        self._apply_search_params()

    @property
    def k_factor(self) -> int:
        return self.config.k_factor

    @k_factor.setter
    def k_factor(self, value: int) -> None:
        self.config.k_factor = int(value)
        self._apply_search_params()

    def _apply_search_params(self) -> None:
        if self.kind == "ivfpq":
            faiss.extract_index_ivf(self._index).nprobe = self.config.nprobe
            faiss.downcast_index(self._index).k_factor = float(self.config.k_factor)

    def _searcher(self) -> faiss.Index:
        """The exact index goes to the GPU(s) when faiss has any; everything else runs on CPU."""
        if self.kind != "exact" or faiss.get_num_gpus() == 0:
            return self._index
        if self._gpu is None:
            self._gpu = faiss.index_cpu_to_all_gpus(self._index)
        return self._gpu

    def vectors(self, rows: Any) -> np.ndarray:
        """The stored, L2-normalised feature vectors of ``rows`` ([k] ints in 0..N-1): [k, D] float32.

        ``exact``: the vectors as indexed. ``ivfpq``: decoded from the 8-bit re-rank copy of the full
        vectors (the copy its scores come from; about 2e-3 per component from the originals), so no
        second copy of the gallery is kept.
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise ValueError(f"rows must be in 0..{len(self) - 1}; got {rows.min()}..{rows.max()}")
        if not rows.size:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._index.reconstruct_batch(rows), dtype=np.float32)

    # ---- search -------------------------------------------------------------------------------
    def search(self, queries: Any, k: int, exclude: JunkFilter | None = None, *, query_pids: Any = None,
               query_camids: Any = None, query_sceneids: Any = None) -> SearchResult:
        """Top-``k`` gallery rows of every query by cosine similarity, best first.

        Args:
            queries: [M, D] (or [D]) features; normalised here.
            k: results per query; fewer (padded with row -1, score -inf) when the gallery is smaller.
            exclude: the queries' identities, to drop junk rows (see ``JunkFilter``); or give
                ``query_pids`` with ``query_camids`` or ``query_sceneids`` instead.

        Returns:
            ``SearchResult(scores [M, k] float32, rows [M, k] int64)``.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1; got {k}")
        q = _normalised(queries, self.dim, "queries")  # [M, D]
        if exclude is None and query_pids is not None:
            exclude = JunkFilter(query_pids, query_camids, query_sceneids)
        junk = self._junk_keys(exclude, len(q)) if exclude is not None else None
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        rows = np.full((len(q), k), -1, dtype=np.int64)
        todo, fetch = np.arange(len(q)), k
        while len(todo):
            fetch = min(fetch, len(self))
            got_s, got_r = self._raw_search(q[todo], fetch)
            if junk is not None:
                keep = ~_is_junk(got_r, junk[0][todo], junk[1][todo], junk[2], junk[3])
                got_s, got_r = _compact(got_s, got_r, keep)
            n_found = (got_r[:, :k] >= 0).sum(axis=1)
            done = (n_found == k) | (fetch >= len(self))
            width = min(k, fetch)
            scores[todo[done], :width], rows[todo[done], :width] = got_s[done, :k], got_r[done, :k]
            todo, fetch = todo[~done], fetch * 2 + k
        return SearchResult(scores, rows)

    def _raw_search(self, q: np.ndarray, fetch: int) -> tuple:
        """faiss top-``fetch``; ties ordered smaller row first; padding as -inf / -1."""
        s, r = self._searcher().search(q, fetch)  # [m, fetch]
        if self._index.metric_type == faiss.METRIC_L2:
            s = 1.0 - 0.5 * s  # squared L2 between unit vectors -> cosine
        s = np.where(r < 0, -np.inf, s).astype(np.float32)
        order = np.lexsort((np.where(r < 0, np.iinfo(np.int64).max, r), -s), axis=-1)
        return np.take_along_axis(s, order, 1), np.take_along_axis(r, order, 1).astype(np.int64)

    def _junk_keys(self, exclude: JunkFilter, m: int) -> tuple:
        """(query pids [M], query cams or scenes [M], gallery pids [N], gallery cams or scenes [N])."""
        by = "sceneid" if exclude.sceneids is not None else "camid"
        q_other = exclude.sceneids if exclude.sceneids is not None else exclude.camids
        if q_other is None:
            raise ValueError("junk filtering needs the queries' camera ids (query_camids) or scene ids "
                             "(query_sceneids) besides their pids")
        missing = [key for key in ("pid", by) if key not in self.metadata]
        if missing:
            raise ValueError(f"junk filtering needs gallery metadata {missing}; build the index with "
                             f"metadata={{'pid': ..., '{by}': ...}}")
        q_pid, q_other = np.asarray(exclude.pids), np.asarray(q_other)
        if q_pid.shape != (m,) or q_other.shape != (m,):
            raise ValueError(f"query pids and {by}s must have one value per query ({m}); "
                             f"got {q_pid.shape} and {q_other.shape}")
        return q_pid, q_other, self.metadata["pid"], self.metadata[by]

    # ---- persistence --------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the index, its settings, ``info`` and metadata to one file, atomically, with a checksum."""
        header = {"format": "signal-gallery-index", "version": FORMAT_VERSION, "kind": self.kind,
                  "dim": self.dim, "rows": len(self), "config": asdict(self.config), "info": self.info}
        write_index_file(path, IndexFileContent(header, self.metadata, self._index))

    @classmethod
    def load(cls, path: str | os.PathLike) -> GalleryIndex:
        """Read an index written by ``save``; raises ``IndexFileError`` (one line) if it is corrupt."""
        content = read_index_file(path)
        header = content.header
        if header.get("format") != "signal-gallery-index" or header.get("version") != FORMAT_VERSION:
            raise IndexFileError(f"{path} is a gallery index of an unknown format/version "
                                 f"({header.get('format')!r} v{header.get('version')}); rebuild it with this version")
        index = cls(content.index, header["kind"], content.metadata, IvfPqConfig(**header["config"]))
        index.info = dict(header.get("info") or {})
        if len(index) != header["rows"] or any(len(v) != len(index) for v in index.metadata.values()):
            raise IndexFileError(f"gallery index file {path} is inconsistent (row counts differ); rebuild it")
        return index


def _is_junk(rows: np.ndarray, q_pid: np.ndarray, q_other: np.ndarray,
             g_pid: np.ndarray, g_other: np.ndarray) -> np.ndarray:
    """[m, f] bool: gallery row has the query's pid and camera (or scene)."""
    safe = np.maximum(rows, 0)
    return (rows >= 0) & (g_pid[safe] == q_pid[:, None]) & (g_other[safe] == q_other[:, None])


def _compact(scores: np.ndarray, rows: np.ndarray, keep: np.ndarray) -> tuple:
    """Move kept entries of each row to the front (order preserved); the rest become -inf / -1."""
    order = np.argsort(~keep, axis=1, kind="stable")
    kept = np.take_along_axis(keep, order, 1)
    scores = np.where(kept, np.take_along_axis(scores, order, 1), -np.inf).astype(np.float32)
    rows = np.where(kept, np.take_along_axis(rows, order, 1), -1)
    return scores, rows
