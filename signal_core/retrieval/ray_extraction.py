"""Feature extraction on a Ray cluster (Ray Data): the same feature folder as
:func:`signal_core.retrieval.folder_features.extract_to_folder`, computed by a pool of model actors.

The triple list becomes a Ray dataset of *work units*: one unit is one batch of ``batch_size``
triples inside one shard, exactly the batches the single-process path encodes, so every feature
is computed the same way (same batch composition, same code: :func:`encode_records`). Units go
through ``map_batches`` with an actor class (:class:`_Encoder`): each actor loads the weights once
(one GPU per actor when the cluster has GPUs, else ``threads`` CPU threads). The driver collects
the units of a shard and writes it with :class:`signal_core.retrieval.feature_store.FeatureWriter`, in order,
as soon as it is complete: a killed run keeps its finished shards, and the same command (with or
without Ray) resumes it. The weights and the images must be readable at the same paths on every
node (a shared file system); ``signal_core`` is shipped to the workers with the job
(``runtime_env.py_modules``); torch and the rest of the requirements must be installed there.
Ray is imported only here, lazily (``pip install ".[scale]"``). Nothing waits unbounded: a cluster
address must answer as Ray within seconds and an actor's CPUs must fit on a node (``ray_cluster.py``);
Ctrl-C stops the run (finished shards kept) even where Ray swallows the KeyboardInterrupt (:class:`_CtrlC`).
"""
from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..data import DatasetError, TripleRecord
from .feature_store import FeatureWriter
from .folder_features import SKIP_HINT, ExtractionSummary, folder_settings
from .ray_cluster import check_actor_fits, check_ray_address, local_cpus

log = logging.getLogger(__name__)
LOCAL = "auto"  # --ray auto: start a Ray of this machine's own


@dataclass
class RayOptions:
    """Where and how wide to run."""

    address: str = LOCAL  # "auto": start a local Ray (stopped at the end); else a cluster to join (host:6379, ray://...)
    actors: int | None = None  # model actors; None: one per GPU of the cluster, else one per `threads` CPUs
    threads: int = 1  # CPU threads per actor (its torch threads and num_cpus); unused on GPUs
    num_cpus: int | None = None  # a local Ray's CPUs (None: all of this machine's)


@dataclass
class ModelSource:
    """What every actor loads: the weights file and how to read it."""

    weights: str  # a path readable on every node
    preset: str | None  # dataset preset of an authors' .pth (None: our .safetensors)
    precision: str  # the resolved inference precision (fp32, bf16...)
    registration: str | None = None  # the model's registration in place of the checkpoint's (None: its own)


class _Encoder:
    """A Ray Data actor: one model, encoding one unit (a batch of triples) per call."""

    def __init__(self, source: ModelSource, threads: int, use_gpu: bool) -> None:
        import torch

        from .. import SignalConfig, load_weights

        torch.set_num_threads(max(1, threads))
        self.device = torch.device("cuda" if use_gpu else "cpu")
        preset = SignalConfig.preset(source.preset) if source.preset else None
        self.model = load_weights(source.weights, preset, self.device, source.registration).eval()
        self.model.set_inference_precision(source.precision)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from .folder_features import encode_records

        out: dict[str, list] = {"shard": [], "start": [], "features": [], "rows": [], "skipped": []}
        for shard, start, text in zip(batch["shard"], batch["start"], batch["records"]):
            records = [TripleRecord(tuple(paths), pid, camid, sceneid)
                       for paths, pid, camid, sceneid in json.loads(text)]
            encoded = encode_records(self.model, records, self.device, batch_size=len(records), skip_bad=True)
            out["shard"].append(int(shard))
            out["start"].append(int(start))
            out["features"].append(encoded.features.tobytes())  # [n, D] float32
            out["rows"].append(json.dumps(encoded.rows))
            out["skipped"].append(json.dumps(encoded.skipped))
        return {key: np.asarray(values, dtype=object if key in ("features", "rows", "skipped") else np.int64)
                for key, values in out.items()}


class _CtrlC:
    """Ctrl-C during a Ray run, remembered: the KeyboardInterrupt the handler raises can land where it is
    swallowed (a finaliser or one of Ray's callbacks: "Exception ignored in ..."), and the run then went on to
    its end and exit 0. :meth:`check` raises it again at every step of the run, and leaving the block does."""

    def __init__(self) -> None:
        self.received, self._previous = False, None

    def __enter__(self) -> _CtrlC:
        self.arm()
        return self

    def arm(self) -> None:
        """(Re)install the handler (only the main thread can)."""
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._handle)
            if self._previous is None:
                self._previous = previous

    def _handle(self, signum, frame) -> None:
        self.received = True
        raise KeyboardInterrupt

    def check(self) -> None:
        if self.received:
            raise KeyboardInterrupt

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        if exc_type is None:
            self.check()


def _units(records: Sequence[TripleRecord], shards: Sequence[int], shard_size: int, batch_size: int) -> list[dict]:
    """The work units of ``shards``: one per batch of the single-process path."""
    units = []
    for shard in shards:
        stop = min(len(records), (shard + 1) * shard_size)
        for start in range(shard * shard_size, stop, batch_size):
            chunk = records[start:min(stop, start + batch_size)]
            units.append({"shard": shard, "start": start, "records": json.dumps(
                [[list(r.paths), int(r.pid), int(r.camid), int(r.sceneid)] for r in chunk])})
    return units


def start_ray(options: RayOptions):
    """The ``ray`` module, initialised: a running one is used as it is (its workers must import
    ``signal_core``); returns ``(ray, started_here)``.

    Raises:
        MissingExtraError: Ray is not installed.
        ValueError: the cluster at ``options.address`` cannot be joined or does not answer as Ray (within
            ``ray_cluster.RAY_TIMEOUT_S`` per step), or a local Ray's CPUs cannot hold one actor.
    """
    from ..utils.optional import require

    local = options.address == LOCAL
    running = sys.modules.get("ray") is not None and sys.modules["ray"].is_initialized()
    if local and not running:
        import torch

        if not torch.cuda.is_available():  # a local Ray of CPUs only: what an actor asks for is known now
            check_actor_fits(options.threads, options.num_cpus or local_cpus(), "this machine gives Ray")
    ray = require("ray", "--ray (extraction on Ray)")
    require("ray.data", "--ray (extraction on Ray)")
    if ray.is_initialized():
        return ray, False
    if not local:
        check_ray_address(options.address)
    try:
        ray.init(address="local" if local else options.address, num_cpus=options.num_cpus if local else None,
                 include_dashboard=False, logging_level=logging.WARNING,
                 # workers' output stays in Ray's session logs: a worker stopped mid-batch when the run ends on an
                 # error can dump a native stack (seen: abseil "Mutex corrupt", SIGABRT) under the one-line error
                 log_to_driver=False,
                 runtime_env={"py_modules": [str(Path(__file__).resolve().parent)]})  # this signal_core on every worker
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"cannot join the Ray cluster at '{options.address}' ({first}); start it (ray start "
                         "--head) or check the address, or use --ray auto for a local Ray.") from None
    return ray, True


def _pool(ray, options: RayOptions) -> tuple[int, bool]:
    """(actors, use_gpu) for the cluster's resources; ``ValueError`` when an actor fits on no node."""
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    if not gpus:
        nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive", True)]
        check_actor_fits(options.threads, int(max((n.get("CPU", 0) for n in nodes), default=cpus)),
                         "the largest node of the Ray cluster has")
    if options.actors is not None:
        return options.actors, gpus > 0
    return (gpus, True) if gpus else (max(1, cpus // max(1, options.threads)), False)


def extract_with_ray(source: ModelSource, cfg, records: Sequence[TripleRecord], out: str | Path,
                     model_info: dict[str, Any], settings: dict[str, Any], options: RayOptions, batch_size: int = 32,
                     shard_size: int = 512, skip_bad: bool = False, progress: bool = True,
                     max_shards: int | None = None) -> ExtractionSummary:
    """Write (or resume) the feature folder ``out`` as ``extract_to_folder`` does, on Ray.

    Args:
        source: the weights every actor loads.
        cfg: the model's ``SignalConfig`` (image size and feature dimension, recorded in the manifest).
        settings: the run's settings, as for ``extract_to_folder`` (the same ones: a folder started
            without Ray resumes with Ray and the other way round).
        max_shards: compute at most this many shards (a controlled interruption, for tests).

    Raises:
        FeatureStoreError: ``out`` holds another run's features.
        DatasetError: an image cannot be read and ``skip_bad`` is False (shards before it are kept).
    """
    writer = FeatureWriter(out, model_info, folder_settings(cfg, records, settings, shard_size), len(records))
    n_shards = (len(records) + shard_size - 1) // shard_size
    done = writer.finished_shards
    todo = [i for i in range(n_shards) if i not in done][:max_shards]
    start_time, written, processed = time.perf_counter(), 0, 0
    if todo:
        with _CtrlC() as ctrl_c:
            ray, started = start_ray(options)
            try:
                ctrl_c.arm()  # after ray.init, in case it set a handler of its own
                ctrl_c.check()
                written, processed = _run(ray, source, records, writer, todo, options, batch_size, shard_size,
                                          skip_bad, progress, done, cfg.feature_dim, ctrl_c)
            finally:
                if started:
                    ray.shutdown()
    complete = len(writer.finished_shards) == n_shards
    manifest = writer.finish() if complete else writer.manifest
    return ExtractionSummary(Path(out), int(manifest["count"]), len(records), list(manifest["skipped"]), len(done),
                             written, processed, complete, time.perf_counter() - start_time)


def _run(ray, source: ModelSource, records: Sequence[TripleRecord], writer: FeatureWriter, todo: list[int],
         options: RayOptions, batch_size: int, shard_size: int, skip_bad: bool, progress: bool,
         done: set[int], dim: int, ctrl_c: _CtrlC) -> tuple[int, int]:
    """Encode the shards ``todo`` on ``ray`` and write each as soon as its units are in; (shards, triples) done."""
    actors, use_gpu = _pool(ray, options)
    units = _units(records, todo, shard_size, batch_size)
    expected = {shard: 0 for shard in todo}
    for unit in units:
        expected[unit["shard"]] += 1
    context = ray.data.DataContext.get_current()
    saved = context.execution_options.preserve_order, context.enable_progress_bars
    context.execution_options.preserve_order = True  # shards come back in order: written (and resumable) in order
    context.enable_progress_bars = False  # ours says it
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    dataset = ray.data.from_items(units, override_num_blocks=min(len(units), 8 * actors)).map_batches(
        _Encoder, batch_size=1, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
        fn_constructor_kwargs={"source": source, "threads": options.threads, "use_gpu": use_gpu},
        num_cpus=0 if use_gpu else options.threads, num_gpus=1 if use_gpu else 0)
    log.info("Ray: %d actor(s) on %s, %d unit(s) of up to %d triples", actors, "GPUs" if use_gpu else "CPUs",
             len(units), batch_size)
    bar = tqdm(total=len(records), initial=sum(min(shard_size, len(records) - i * shard_size) for i in done),
               desc="features (ray)", unit="triple", disable=not progress)
    try:
        return _collect(dataset, expected, writer, bar, skip_bad, dim, ctrl_c)
    finally:
        bar.close()
        context.execution_options.preserve_order, context.enable_progress_bars = saved


def _collect(dataset, expected: dict[int, int], writer: FeatureWriter, bar, skip_bad: bool,
             dim: int, ctrl_c: _CtrlC) -> tuple[int, int]:
    """Gather the encoded units of each shard (``expected[shard]`` of them); write a shard when complete."""
    pending: dict[int, dict[int, tuple]] = {}
    written = processed = 0
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        ctrl_c.check()
        for shard, start, feats, rows, skipped in zip(batch["shard"], batch["start"], batch["features"], batch["rows"],
                                                      batch["skipped"]):
            rows, skipped = json.loads(rows), json.loads(skipped)
            if skipped and not skip_bad:
                raise DatasetError(f"{skipped[0]['error']}; {SKIP_HINT}")
            features = np.frombuffer(feats, dtype=np.float32).reshape(len(rows), dim)  # [n, D]
            pending.setdefault(int(shard), {})[int(start)] = (features, rows, skipped)
            bar.update(len(rows) + len(skipped))
            parts = pending[int(shard)]
            if len(parts) == expected[int(shard)]:
                ordered = [parts[key] for key in sorted(parts)]
                writer.write_shard(int(shard), np.concatenate([p[0] for p in ordered]),
                                   [r for p in ordered for r in p[1]], [s for p in ordered for s in p[2]])
                processed += sum(len(p[1]) + len(p[2]) for p in ordered)
                written += 1
                del pending[int(shard)]
    return written, processed
