"""--ray never waits unbounded (issue 29): an actor no node can hold is refused, an address that is not Ray
is refused within seconds, Ctrl-C stops the run with exit 130 and keeps the finished shards. Apart from
test_ray_extraction.py, whose tests keep a Ray running in this process (start_ray uses a running Ray as it is)."""
from __future__ import annotations

import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from signal_core import SignalConfig, build_model, load_weights, save_checkpoint
from signal_core.data import read_triples_folder
from signal_core.retrieval.feature_store import read_features, read_manifest
from signal_core.retrieval.ray_extraction import ModelSource, RayOptions, extract_with_ray
from signal_core.utils.hashing import sha256_file
from tests.test_extract_search import error_line, gallery_names, make_triples, run_extract


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    """Tiny weights and 12 triples (3 shards of 4 with --shard-size 4)."""
    root = tmp_path_factory.mktemp("ray-limits")
    torch.manual_seed(0)
    save_checkpoint(build_model(SignalConfig.preset("tiny", num_classes=6, num_cameras=3)), root / "tiny.safetensors")
    return root / "tiny.safetensors", make_triples(root / "triples", gallery_names(per_id=3))



def _run_args(data, out: Path) -> tuple:
    weights, triples = data
    records = read_triples_folder(triples.resolve())
    model_info = {"sha256": sha256_file(weights), "path": str(weights.resolve())}
    settings = {"source": {"kind": "triples"}, "precision": "fp32", "engine": "torch", "onnx_sha256": None}
    return ModelSource(str(weights), None, "fp32"), load_weights(weights).cfg, records, out, model_info, settings


def test_an_actor_larger_than_the_machine_is_refused_before_ray_starts(data, tmp_path, monkeypatch):
    """--ray auto --threads 8 on 2 CPUs hung: no actor could ever start."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError) as exc:
        extract_with_ray(*_run_args(data, tmp_path / "f"), RayOptions(num_cpus=1, threads=2), batch_size=2,
                         shard_size=4, progress=False)
    assert str(exc.value) == ("--threads 2: each Ray actor would ask for 2 CPUs, and this machine gives Ray 1; give "
                              "--threads 1 or fewer (--actors runs several).")
    assert read_manifest(tmp_path / "f")["count"] == 0


def test_an_actor_larger_than_every_node_of_a_cluster_is_refused():
    from types import SimpleNamespace

    from signal_core.retrieval.ray_extraction import _pool

    cluster = SimpleNamespace(cluster_resources=lambda: {"CPU": 8.0},  # two nodes of 4 CPUs: 8 in all
                              nodes=lambda: [{"Alive": True, "Resources": {"CPU": 4.0}}] * 2)
    assert _pool(cluster, RayOptions(threads=4)) == (2, False)
    with pytest.raises(ValueError, match="and the largest node of the Ray cluster has 4; give --threads 4 or fewer"):
        _pool(cluster, RayOptions(threads=8))


@pytest.fixture
def grpc_servers():
    """Three local ports: one that accepts TCP and says nothing, one gRPC server without Ray's services, one
    answering as a Ray head (GetClusterId)."""
    from concurrent import futures

    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    class Head(gcs_service_pb2_grpc.NodeInfoGcsServiceServicer):
        def GetClusterId(self, request, context):
            return gcs_service_pb2.GetClusterIdReply()

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    servers = [grpc.server(futures.ThreadPoolExecutor(max_workers=2)) for _ in range(2)]
    gcs_service_pb2_grpc.add_NodeInfoGcsServiceServicer_to_server(Head(), servers[1])
    ports = [server.add_insecure_port("127.0.0.1:0") for server in servers]
    for server in servers:
        server.start()
    yield silent.getsockname()[1], ports[0], ports[1]
    for server in servers:
        server.stop(0)
    silent.close()


@pytest.mark.slow  # imports ray (seconds)
def test_an_address_that_is_not_ray_is_refused_within_seconds(data, grpc_servers, tmp_path, capsys, monkeypatch):
    """--ray HOST:PORT of an open port that is not Ray retried for minutes."""
    import time

    from signal_core.retrieval import ray_cluster

    weights, triples = data
    silent, other, head = grpc_servers
    monkeypatch.setattr(ray_cluster, "RAY_TIMEOUT_S", 1.0)
    for address, words in ((f"127.0.0.1:{silent}", "no gRPC handshake within 1 s"),
                           (f"ray://127.0.0.1:{silent}", "no gRPC handshake within 1 s"),
                           (f"127.0.0.1:{other}", "does not answer as a Ray head node (GCS): UNIMPLEMENTED")):
        start = time.monotonic()
        assert run_extract(weights, triples, tmp_path / "f", "--ray", address) == 2
        line = error_line(capsys)
        assert time.monotonic() - start < 20
        assert line.startswith(f"error: 127.0.0.1:{address.rsplit(':', 1)[1]} is not a Ray cluster (") and words in line
    ray_cluster.check_ray_address(f"127.0.0.1:{head}")  # what answers as a Ray head passes


class _FakeDataset:
    """Ray Data run in this process: the units through one _Encoder; at unit ``stop_at`` a SIGINT arrives and its
    KeyboardInterrupt is swallowed, as a finaliser or one of Ray's callbacks can do."""

    def __init__(self, units, stop_at: int) -> None:
        self.units, self.stop_at, self.encoder = units, stop_at, None

    def map_batches(self, cls, fn_constructor_kwargs, **_):
        self.encoder = cls(**fn_constructor_kwargs)
        return self

    def iter_batches(self, **_):
        import signal

        for i, unit in enumerate(self.units):
            if i == self.stop_at:
                try:
                    signal.raise_signal(signal.SIGINT)
                    sum(range(1000))  # the handler runs here
                except KeyboardInterrupt:
                    pass  # swallowed
            yield self.encoder({key: np.asarray([value], dtype=object) for key, value in unit.items()})


def test_ctrl_c_stops_the_run_even_where_the_interrupt_is_swallowed(data, tmp_path, monkeypatch):
    """Ctrl-C during --ray was ignored in 2 of 7 tries: the run finished and exited 0."""
    from types import SimpleNamespace

    from signal_core.retrieval import ray_extraction

    context = SimpleNamespace(execution_options=SimpleNamespace(preserve_order=False), enable_progress_bars=True)
    fake = SimpleNamespace(cluster_resources=lambda: {"CPU": 1.0}, nodes=lambda: [{"Resources": {"CPU": 1.0}}],
                           shutdown=lambda: None, data=SimpleNamespace(
                               DataContext=SimpleNamespace(get_current=lambda: context),
                               from_items=lambda units, **_: _FakeDataset(units, stop_at=3),
                               ActorPoolStrategy=lambda size: None))
    monkeypatch.setattr(ray_extraction, "start_ray", lambda options: (fake, True))
    out = tmp_path / "f"
    with pytest.raises(KeyboardInterrupt):  # 12 triples, shards of 4 in units of 2: stopped in shard 1
        extract_with_ray(*_run_args(data, out), RayOptions(actors=1), batch_size=2, shard_size=4, progress=False)
    manifest = read_manifest(out)
    assert (manifest["complete"], manifest["count"]) == (False, 4)
    assert read_features(out, allow_incomplete=True).features.shape == (4, load_weights(data[0]).cfg.feature_dim)


@pytest.mark.slow  # a local Ray in a subprocess (a minute on a busy machine)
def test_ctrl_c_during_a_ray_run_exits_130_and_keeps_finished_shards(data, tmp_path):
    import json
    import os
    import signal
    import subprocess
    import time

    weights, _ = data
    triples = make_triples(tmp_path / "t", gallery_names(ids=range(1, 41), per_id=6))  # 240 shards of one triple
    out = tmp_path / "f"
    command = [sys.executable, "-m", "train.extract", "--weights", str(weights), "--triples", str(triples), "--out",
               str(out), "--ray", "auto", "--actors", "1", "--threads", "1", "--batch-size", "1", "--shard-size", "1",
               "--no-progress"]
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(root)})
    try:
        deadline = time.monotonic() + 400
        while proc.poll() is None and time.monotonic() < deadline:  # until a shard is finished
            manifest = out / "manifest.json"
            if manifest.is_file() and json.loads(manifest.read_text())["count"] > 0:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted: finished shards are kept" in err
    manifest = read_manifest(out)
    assert not manifest["complete"] and 0 < manifest["count"] < 240
    kept = read_features(out, allow_incomplete=True)
    assert kept.features.shape[0] == manifest["count"] and np.isfinite(kept.features).all()
