"""Per-visitor galleries: an upload becomes that visitor's gallery; everyone else keeps the default one.

A visitor is a gradio session (``gr.Request.session_hash``: a browser tab, or one
``gradio_client.Client``). :meth:`SessionGalleries.load` takes the upload in (:mod:`demo.uploads`),
extracts its features in small chunks with the default engine's model (loaded once; other
visitors' searches run alongside, and the engine's lock serialises a feature engine's calls), and keeps a
:class:`~demo.search.SearchEngine` sharing the model for that session. Each upload has two
temporary folders: its images (never served) and its thumbnails (served: the thumbnail root is a
gradio static path). Both are removed when the session ends (the page's ``unload`` event), when the
visitor uploads again, when the gallery has been unused for :data:`IDLE_S` (a background sweep,
also the backstop for ``gradio_client`` sessions, which send no unload), when the galleries kept
together would exceed the server's budget (:data:`MAX_KEPT_BYTES`: their images on disk and their
features in memory; the least recently used go first), and at exit (:mod:`demo.shutdown`, SIGTERM
included). A visitor whose gallery was removed by the idle sweep or by the budget is not silently
given the default gallery: their next search raises :class:`GalleryDropped`, which says so and asks
them to load it again (or to go back to the default gallery); every answer names its gallery
(:attr:`SearchEngine.gallery_name`).
"""
from __future__ import annotations

import atexit
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from signal_core.data.images import ImageDecodeError
from signal_core.utils.messages import megabytes, shown

from .features import extract_gallery_features
from .gallery import Gallery, GalleryError, read_triples_folder
from .thumbnails import ThumbnailStore
from .uploads import DEFAULT_LIMITS, Deadline, UploadError, UploadLimits, intake_files, intake_zip

log = logging.getLogger(__name__)
IDLE_S = 3600.0  # an uploaded gallery unused for an hour is removed
MAX_KEPT_BYTES = 1024 * 1024 * 1024  # galleries kept at once (server-wide: images + features); over it the
# least recently used ones are removed
MAX_REMEMBERED = 10_000  # sessions remembered as "your gallery was removed" (the oldest are forgotten)
CHUNK = 8  # triples per model call while extracting (other visitors' searches run in between)
SWEEP_EVERY_S = 300.0
Progress = Callable[[int, int], None]  # (triples done, total)


@dataclass
class SessionGallery:
    """One visitor's uploaded gallery."""

    engine: object  # SearchEngine sharing the default engine's model
    folder: Path  # the uploaded images (not served)
    thumbs: Path  # its thumbnails (served)
    name: str  # what the visitor uploaded, for the status
    last_used: float
    size: int = 0  # bytes it holds: images on disk and features in memory (the budget's unit)

    def remove(self) -> None:
        for path in (self.folder, self.thumbs):
            shutil.rmtree(path, ignore_errors=True)


class UploadBusy(UploadError):
    """Refused for the server's load only (too many uploads processed at once): the upload itself may be fine."""


class GalleryDropped(LookupError):
    """The caller's uploaded gallery was removed (unused, or over the server's budget); the message says
    so and what to do."""


class SessionGalleries:
    """The uploaded galleries of all sessions, over ``engine``'s model.

    Args:
        engine: the default :class:`~demo.search.SearchEngine`.
        limits: what one upload may hold.
        root: folder of the uploads' images (default: a new temporary folder, removed at exit).
        thumbs_root: folder of their thumbnails, the one to serve (default likewise).
        idle_s: a gallery unused for this long is removed.
        max_kept_bytes: the galleries kept together hold at most this much (images on disk and
            features in memory); the least recently used are removed to make room.
    """

    def __init__(self, engine, limits: UploadLimits = DEFAULT_LIMITS, root: str | os.PathLike | None = None,
                 thumbs_root: str | os.PathLike | None = None, idle_s: float = IDLE_S,
                 max_kept_bytes: int = MAX_KEPT_BYTES):
        self.default, self.limits, self.idle_s, self.max_kept_bytes = engine, limits, idle_s, max_kept_bytes
        self.root = _temporary(root, "signal-uploads-")
        self.thumbs_root = _temporary(thumbs_root, "signal-upload-thumbs-")
        self._sessions: dict[str, SessionGallery] = {}
        self._dropped: OrderedDict[str, str] = OrderedDict()  # session -> why its gallery was removed
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max(1, limits.max_concurrent))
        self._sweeper: threading.Thread | None = None

    # --- lookup ----------------------------------------------------------------------------------
    def engine_for(self, session: str | None):
        """The engine that ``session``'s searches run on: its upload, else the default.

        Raises:
            GalleryDropped: the session's upload was removed (idle, or over the budget) and the visitor
                has not loaded another one nor gone back to the default gallery since.
        """
        with self._lock:
            kept = self._sessions.get(session) if session else None
            if kept is None:
                if session in self._dropped:
                    raise GalleryDropped(self._dropped[session])
                return self.default
            kept.last_used = time.time()
            return kept.engine

    def __contains__(self, session: str) -> bool:
        with self._lock:
            return session in self._sessions

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    @property
    def kept_bytes(self) -> int:
        """What the kept galleries hold together (images on disk and features in memory)."""
        with self._lock:
            return sum(g.size for g in self._sessions.values())

    # --- loading ---------------------------------------------------------------------------------
    def load(self, session: str | None, paths: Sequence[str | os.PathLike], progress: Progress | None = None) -> str:
        """Take an upload (one zip, or image files named RGB_/NI_/TI_<name>) as ``session``'s gallery.

        Returns:
            The status line for the visitor.

        Raises:
            UploadError: refused (the message says why); nothing of it is left on disk.
        """
        if not session:
            raise UploadError("no session: load a gallery from the page or a gradio_client.Client.")
        if not paths:
            raise UploadError("no file given: upload a zip of a triples folder (RGB/, NI/, TI/) or image files.")
        if not self._slots.acquire(blocking=False):
            raise UploadBusy(f"{self.limits.max_concurrent} upload(s) are being processed right now (this demo's "
                             "limit): try again in a minute.")
        try:
            self.sweep()
            return self._load(session, [Path(p) for p in paths], progress or (lambda done, total: None))
        finally:
            self._slots.release()

    def _load(self, session: str, paths: list[Path], progress: Progress) -> str:
        token = secrets.token_hex(8)
        folder, thumbs = self.root / token, self.thumbs_root / token
        deadline = Deadline(self.limits.max_seconds)
        start = time.perf_counter()
        try:
            intake = self._intake(paths, folder, deadline)
            gallery = Gallery(read_triples_folder(folder), f"your upload {_shown_name(paths)}")
            features = self._extract(gallery, deadline, progress)
            shown = _shown_name(paths)
            engine = self.default.sharing(gallery, features, ThumbnailStore(thumbs, fallback=thumbs),
                                          f"your gallery: {shown}", name=f"your gallery {shown}")
        except (UploadError, GalleryError, ImageDecodeError) as exc:
            shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(thumbs, ignore_errors=True)
            if isinstance(exc, UploadError):
                raise
            raise UploadError(str(exc).replace(str(folder) + os.sep, "").replace(str(folder), "the upload")) from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(thumbs, ignore_errors=True)
            raise
        size = intake.bytes_written + features.numel() * 4  # float32 features, kept normalised by the engine
        self._keep(session, SessionGallery(engine, folder, thumbs, _shown_name(paths), time.time(), size))
        return (f"Loaded {len(gallery)} triples from {_shown_name(paths)} in {time.perf_counter() - start:.1f} s"
                f"{intake.ignored_note()}. Your searches now run on this gallery; other visitors keep the "
                "default one.")

    def _intake(self, paths: list[Path], folder: Path, deadline: Deadline):
        gone = [p for p in paths if not p.is_file()]
        if gone:
            raise UploadError(f"'{shown(gone[0].name)}' is no longer on this server (uploads are kept for an hour at "
                              "most): upload it again.")
        zips = [p for p in paths if p.suffix.lower() == ".zip"]
        if zips and len(paths) > 1:
            raise UploadError("upload either one zip or image files, not both (nor several zips).")
        if zips:
            return intake_zip(zips[0], folder, self.limits, deadline)
        return intake_files(paths, folder, self.limits, deadline)

    @torch.no_grad()
    def _extract(self, gallery: Gallery, deadline: Deadline, progress: Progress) -> torch.Tensor:
        """Features ``[N, F]`` in chunks of :data:`CHUNK` triples; searches go on beside it (the engines are
        thread-safe)."""
        engine, n = self.default, len(gallery)
        parts = []
        progress(0, n)
        for start in range(0, n, CHUNK):
            deadline.check("extracting the features")
            chunk = Gallery(gallery.entries[start:start + CHUNK], gallery.source)
            parts.append(extract_gallery_features(engine.model, chunk, engine.device, batch_size=CHUNK,
                                                  progress=False, features_fn=engine.features_fn))
            progress(min(n, start + CHUNK), n)
        return torch.cat(parts)

    def _keep(self, session: str, kept: SessionGallery) -> None:
        """Register ``kept`` for ``session``: its previous upload removed, and the least recently used
        others while all together hold more than ``max_kept_bytes``."""
        with self._lock:
            old = self._sessions.pop(session, None)
            self._dropped.pop(session, None)
            total = kept.size + sum(g.size for g in self._sessions.values())
            evicted = []
            for other, gallery in sorted(self._sessions.items(), key=lambda item: item[1].last_used):
                if total <= self.max_kept_bytes:
                    break
                total -= gallery.size
                evicted.append(other)
                self._remember(other, f"your gallery {gallery.name} was removed to make room for other visitors' "
                               f"galleries (this server keeps {megabytes(self.max_kept_bytes)} of them)")
            removed = [self._sessions.pop(s) for s in evicted]
            self._sessions[session] = kept
        for gallery in ([old] if old else []) + removed:
            gallery.remove()
        if evicted:
            log.info("uploaded galleries: %d removed to stay within %.0f MB", len(evicted), self.max_kept_bytes / 2**20)

    def _remember(self, session: str, why: str) -> None:
        """Note (lock held) that ``session``'s gallery was removed without the visitor asking."""
        self._dropped[session] = (f"{why}. Load it again (Search your own gallery), or press 'Back to the default "
                                  "gallery' to search the default one.")
        while len(self._dropped) > MAX_REMEMBERED:
            self._dropped.popitem(last=False)

    # --- cleaning up -----------------------------------------------------------------------------
    def drop(self, session: str | None) -> bool:
        """Forget ``session``'s gallery and remove its folders (the session ended, or the visitor went back
        to the default gallery); True when it had one."""
        with self._lock:
            kept = self._sessions.pop(session, None) if session else None
            self._dropped.pop(session, None)
        if kept is not None:
            kept.remove()
        return kept is not None

    def sweep(self, now: float | None = None) -> int:
        """Remove the galleries unused for ``idle_s``; returns how many."""
        limit = (time.time() if now is None else now) - self.idle_s
        with self._lock:
            idle = [s for s, g in self._sessions.items() if g.last_used < limit]
            removed = [self._sessions.pop(s) for s in idle]
            for session, gallery in zip(idle, removed):
                self._remember(session, f"your gallery {gallery.name} was removed after {self.idle_s / 60:.0f} "
                               "minutes unused")
        for gallery in removed:
            gallery.remove()
        return len(removed)

    def start_sweeper(self, every_s: float = SWEEP_EVERY_S) -> None:
        """Run :meth:`sweep` every ``every_s`` seconds in a daemon thread."""
        if self._sweeper is not None:
            return

        def loop():
            while True:
                time.sleep(every_s)
                try:
                    self.sweep()
                except Exception:  # noqa: BLE001 - the sweeper must keep running
                    log.exception("sweeping uploaded galleries failed")

        self._sweeper = threading.Thread(target=loop, name="upload-sweeper", daemon=True)
        self._sweeper.start()


def from_options(engine, options) -> SessionGalleries | None:
    """The uploaded galleries with the limits of :class:`~demo.options.DemoOptions` (None: uploads off)."""
    if options.upload_max_triples == 0:
        return None
    mib = 1024 * 1024
    limits = UploadLimits(
        max_triples=options.upload_max_triples, max_total_bytes=options.upload_max_mb * mib,
        max_member_bytes=options.upload_max_image_mb * mib, max_ratio=float(options.upload_max_ratio),
        max_members=options.upload_max_files, max_seconds=float(options.upload_max_seconds),
        max_concurrent=options.upload_max_concurrent)
    galleries = SessionGalleries(engine, limits, max_kept_bytes=options.upload_keep_mb * mib)
    galleries.start_sweeper()
    log.info("visitors' galleries: images in %s, thumbnails in %s", galleries.root, galleries.thumbs_root)
    return galleries


def _temporary(path: str | os.PathLike | None, prefix: str) -> Path:
    if path is None:
        path = tempfile.mkdtemp(prefix=prefix)
        atexit.register(shutil.rmtree, path, True)
    path = Path(path).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _shown_name(paths: Sequence[Path]) -> str:
    """The upload's name for the status: "my.zip" or "12 files"."""
    return f"'{shown(paths[0].name)}'" if len(paths) == 1 else f"{len(paths)} files"
