"""What ``--ray`` asks of a Ray cluster, checked before it waits on it: the address answers as Ray within
``RAY_TIMEOUT_S`` seconds, and one actor's request fits on one of its nodes.

``ray.init`` retries an address for minutes when nothing, or something other than Ray, answers there,
and Ray keeps an actor that asks for more CPUs than any node has pending forever. So:

- :func:`check_ray_address`: the address takes a TCP connection, completes a gRPC handshake and answers
  a Ray call (the head's GCS ``GetClusterId``; a ``ray://`` client server's ``ClusterInfo`` ping), each
  within ``RAY_TIMEOUT_S`` (``$SIGNAL_RAY_TIMEOUT``, default 10 s); else one line, "HOST:PORT is not a Ray
  cluster ..." (or "cannot reach ...").
- :func:`check_actor_fits`: an actor on CPUs asks for ``threads`` CPUs, which one node must have.
"""
from __future__ import annotations

import os
import socket

RAY_TIMEOUT_S = float(os.environ.get("SIGNAL_RAY_TIMEOUT", "10"))
_HELP = "start it (ray start --head) or check the address, or use --ray auto for a local Ray"


def split_address(address: str) -> tuple[str, int, bool]:
    """``(host, port, is_ray_client)`` of ``host:port`` or ``ray://host:port`` (default ports 6379 / 10001)."""
    client = address.startswith("ray://")
    host, _, port = address.removeprefix("ray://").rstrip("/").rpartition(":")
    if not host:
        host, port = port, "10001" if client else "6379"
    if not port.isdigit() or not host or not 0 < int(port) < 65536:
        raise ValueError(f"--ray '{address}' is not a Ray address; give host:6379 (the head node), "
                         "ray://host:10001 (Ray client) or auto.")
    return host, int(port), client


def check_ray_address(address: str, timeout_s: float | None = None) -> None:
    """Raise ``ValueError`` (one line) unless ``address`` answers as a Ray cluster within ``timeout_s`` per step."""
    timeout_s = RAY_TIMEOUT_S if timeout_s is None else timeout_s
    host, port, client = split_address(address)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise ValueError(f"cannot reach the Ray cluster at '{address}' ({exc.strerror or type(exc).__name__}); "
                         f"{_HELP}.") from None
    problem = _ray_answer_problem(host, port, client, timeout_s)
    if problem:
        raise ValueError(f"{host}:{port} is not a Ray cluster ({problem}); {_HELP} (waits at most "
                         f"$SIGNAL_RAY_TIMEOUT = {timeout_s:g} s per step).")


def _ray_answer_problem(host: str, port: int, client: bool, timeout_s: float) -> str | None:
    """Why ``host:port`` does not answer as Ray (None: it does, possibly asking for a token)."""
    import grpc

    channel = grpc.insecure_channel(f"{host}:{port}")
    try:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            return f"it accepts connections but no gRPC handshake within {timeout_s:g} s"
        try:
            _ping(channel, client, timeout_s)
        except grpc.RpcError as exc:
            code = exc.code()
            if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                return None  # a Ray that wants a token: ray.init says so
            what = "a Ray client server (ray://)" if client else "a Ray head node (GCS)"
            return f"it does not answer as {what}: {code.name}"
        return None
    finally:
        channel.close()


def _ping(channel, client: bool, timeout_s: float) -> None:
    """One Ray call that needs no cluster id or session: raises ``grpc.RpcError`` when it is not answered."""
    if client:
        from ray.core.generated import ray_client_pb2, ray_client_pb2_grpc

        request = ray_client_pb2.ClusterInfoRequest(type=ray_client_pb2.ClusterInfoType.PING)
        ray_client_pb2_grpc.RayletDriverStub(channel).ClusterInfo(request, timeout=timeout_s)
    else:
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=timeout_s)


def local_cpus() -> int:
    """The CPUs this process may run on (what a local Ray is given when ``num_cpus`` is not set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_actor_fits(threads: int, node_cpus: int, where: str) -> None:
    """Raise ``ValueError`` when an actor of ``threads`` CPUs cannot start on any node (Ray would wait forever).

    Args:
        node_cpus: the CPUs of the largest node.
        where: what has them ("this machine gives Ray", "the largest node of the Ray cluster has").
    """
    if threads > node_cpus:
        raise ValueError(f"--threads {threads}: each Ray actor would ask for {threads} CPUs, and {where} "
                         f"{node_cpus}; give --threads {max(1, node_cpus)} or fewer (--actors runs several).")
