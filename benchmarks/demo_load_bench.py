"""Load on the running demo, as its visitors make it: concurrent API clients and a browser.

    python -m benchmarks.demo_load_bench                      # starts python app.py (bundled model) itself
    python -m benchmarks.demo_load_bench --url http://127.0.0.1:7860/ --clients 16 --searches 5
    python -m benchmarks.demo_load_bench --browser-clicks 20 --json out.json
    python -m benchmarks.demo_load_bench --large-gallery 100000   # a 100,000-triple feature folder gallery
    python -m benchmarks.demo_load_bench --precision bf16 --browser-clicks 0   # bf16 forced (auto picks it with AMX)

Clients: ``--clients`` gradio_client clients at once, each ``--searches`` ``/search`` calls with the
example queries (files uploaded with each call, as gradio_client does), then every image the
answer shows (result thumbnails, query overlays) fetched and decoded, as a page would; the clients
run on the same machine as the server and share its cores. Throughput
= searches / wall time from the first call to the last answer; an error is any exception or an
image that is not one. Browser: Chromium (Playwright, ``/usr/bin/chromium``) loads the page, sets a
query, and clicks Search ``--browser-clicks`` times, alternating two queries; click-to-results is
from the click until the status names the new search and every result image has loaded.
The machine (CPU model, cores, flags that matter, load average) is printed with the figures.

``--large-gallery N``: the demo serves a feature folder of N triples (as ``python -m train.extract``
writes) through the gallery index instead of the bundled gallery. It is made here from the bundled
model's features of the bundled gallery: each of its triples is copied N / 210 times with small
Gaussian noise on the feature (renormalised), rows pointing to the same images, so that the index
has N distinct vectors with realistic neighbourhoods.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.browser import demo_page, set_query

REPO = Path(__file__).resolve().parents[1]
QUERIES = REPO / "assets" / "demo" / "query"


def machine() -> dict:
    """CPU model, cores and the SIMD flags that decide CPU speed; load average at the call."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")
    return {"cpu": model, "cores": os.cpu_count(), "flags": [f for f in wanted if f in flags],
            "load_average": list(os.getloadavg())}


def query_triples(folder: Path = QUERIES, n: int = 8) -> list[tuple[str, str, str, str]]:
    """(rgb, nir, tir, camera) of the first ``n`` example queries."""
    names = sorted(p.name for p in (folder / "RGB").iterdir())[:n]
    return [(str(folder / "RGB" / f), str(folder / "NI" / f), str(folder / "TI" / f), f.split("_")[1][3:])
            for f in names]


def write_large_gallery(out: Path, size: int, noise: float = 0.02, seed: int = 0) -> Path:
    """A feature folder of ``size`` triples from the bundled gallery's features (see the module doc)."""
    import torch

    from demo.features import extract_gallery_features
    from demo.gallery import load_gallery
    from demo.options import DEFAULT_GALLERY, DEFAULT_WEIGHTS
    from demo.startup import load_model
    from signal_core.data import label_or_none
    from signal_core.retrieval.feature_store import FeatureWriter
    from signal_core.utils.hashing import sha256_file

    weights = REPO / DEFAULT_WEIGHTS
    model, _ = load_model(weights, None, torch.device("cpu"), "fp32")
    gallery = load_gallery(REPO / DEFAULT_GALLERY)
    base = torch.nn.functional.normalize(extract_gallery_features(model, gallery, progress=False), dim=1).numpy()
    rng = np.random.default_rng(seed)
    writer = FeatureWriter(out, {"sha256": sha256_file(weights), "path": str(weights)},
                           {"source": f"benchmark: {len(gallery)} bundled triples x noise", "normalised": True,
                            "feature_dim": int(base.shape[1]), "image_size": list(model.cfg.image_size)}, size)
    shard = 10_000
    for index, start in enumerate(range(0, size, shard)):
        rows = np.arange(start, min(size, start + shard)) % len(gallery)
        feats = base[rows] + rng.normal(0, noise, (len(rows), base.shape[1])).astype(np.float32)
        feats /= np.linalg.norm(feats, axis=1, keepdims=True)
        entries = [gallery.entries[r] for r in rows]
        writer.write_shard(index, feats, [{"name": f"{start + i:07d}_{e.name}", "paths": list(e.paths),
                                           "pid": label_or_none(e.pid), "camid": label_or_none(e.camid)}
                                          for i, e in enumerate(entries)])
    writer.finish()
    return out


def start_demo(port: int, log_path: Path, gallery: Path | None = None,
               precision: str | None = None) -> subprocess.Popen:
    """``python app.py`` (bundled model and gallery, or ``gallery``; ``precision``: its ``--precision``, default
    auto) on ``port``; returns once the page answers."""
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    extra = [] if gallery is None else ["--gallery", str(gallery)]
    extra += [] if precision is None else ["--precision", precision]
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), *extra], cwd=REPO, env=env,
                            stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"app.py did not answer within 600 s; see {log_path}")


def _fetch_image(url: str) -> tuple[int, int]:
    with urllib.request.urlopen(url, timeout=60) as r:
        return Image.open(io.BytesIO(r.read())).size


def _image_urls(answer) -> list[str]:
    """Every image URL in a /search answer (gallery thumbnails and the image outputs)."""
    urls = []
    for value in answer:
        if isinstance(value, list):
            urls += [g["image"]["url"] for g in value if isinstance(g, dict) and isinstance(g.get("image"), dict)]
        elif isinstance(value, dict) and str(value.get("url", "")).startswith("http"):
            urls.append(value["url"])
    return urls


def run_clients(url: str, clients: int, searches: int, top_k: int = 10, ssl_verify: bool | None = None,
                fetch_images: bool = True) -> dict:
    """``clients`` gradio_client clients x ``searches`` searches, all at once; see the module doc.

    Args:
        fetch_images: also fetch and decode every image of each answer (as a page does).
        ssl_verify: gradio_client's option; default False for an http:// URL. gradio_client 2.x
            builds a new SSL context (loading the CA bundle) for each of its HTTP requests, TLS or
            not: about 250 ms of CPU per search, more than the server's, on the same 2 cores.
    """
    from gradio_client import Client, handle_file

    triples = query_triples()
    verify = not url.startswith("http://") if ssl_verify is None else ssl_verify
    # download_files=False: the answer holds URLs, fetched below as a page would
    pool = [Client(url, verbose=False, download_files=False, ssl_verify=verify, httpx_kwargs={"timeout": 300})
            for _ in range(clients)]

    def one(i: int) -> list[tuple[float, str | None]]:
        out = []
        for j in range(searches):
            rgb, nir, tir, cam = triples[(i + j) % len(triples)]
            start = time.perf_counter()
            try:
                answer = pool[i].predict(handle_file(rgb), handle_file(nir), handle_file(tir), top_k, cam,
                                         api_name="/search")
                error = None
                if fetch_images:
                    sizes = [_fetch_image(u) for u in _image_urls(answer)]
                    error = None if sizes and min(min(s) for s in sizes) > 0 else "no image in the answer"
            except Exception as exc:  # noqa: BLE001 - counted and reported
                error = f"{exc.__class__.__name__}: {exc}"
            out.append((time.perf_counter() - start, error))
        return out

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as ex:
        results = [r for batch in ex.map(one, range(clients)) for r in batch]
    wall = time.perf_counter() - start
    latencies = [1000 * t for t, _ in results]
    errors = [e for _, e in results if e]
    return {"clients": clients, "searches_per_client": searches, "ssl_verify": verify, "fetch_images": fetch_images,
            "searches": len(results), "wall_s": wall,
            "searches_per_s": len(results) / wall, "errors": len(errors), "first_errors": errors[:3],
            "latency_p50_ms": float(np.percentile(latencies, 50)),
            "latency_p95_ms": float(np.percentile(latencies, 95))}


_RESULTS_READY = """([previous]) => {
  const status = document.querySelector('#status');
  const imgs = [...document.querySelectorAll('#results .thumbnail-item img')];
  return status && status.innerText !== previous && imgs.length > 0
    && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""


def run_browser(url: str, clicks: int) -> dict:
    """Click-to-results in Chromium, ``clicks`` searches alternating two example queries."""
    triples = query_triples(n=2)
    times = []
    with demo_page(url) as page:
        for i in range(clicks + 1):  # the first search warms up (not timed)
            set_query(page, triples[i % 2][:3])
            page.wait_for_timeout(300)  # let the uploads settle: not part of the click
            previous = page.locator("#status").inner_text()
            start = time.perf_counter()
            page.click("#search-button")
            page.wait_for_function(_RESULTS_READY, arg=[previous], timeout=60_000, polling="raf")
            if i:
                times.append(1000 * (time.perf_counter() - start))
    return {"clicks": clicks, "p50_ms": statistics.median(times), "p95_ms": float(np.percentile(times, 95)),
            "min_ms": min(times), "max_ms": max(times)}


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running demo (default: start python app.py on --port)")
    parser.add_argument("--port", type=int, default=7899)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--searches", type=int, default=5, help="searches per client")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the client load this many times")
    parser.add_argument("--browser-clicks", type=int, default=20, help="0: no browser measurement")
    parser.add_argument("--no-fetch", action="store_true", help="API calls only: do not fetch the answers' images")
    parser.add_argument("--ssl-verify", action="store_true",
                        help="gradio_client's default SSL context per request even for http:// "
                             "(costly; see run_clients)")
    parser.add_argument("--large-gallery", type=int, metavar="N",
                        help="serve a feature folder of N triples made from the bundled gallery (see above)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "auto"),
                        help="the started demo's --precision (default: its own, auto)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    proc = None
    url = args.url
    scratch = tempfile.TemporaryDirectory(prefix="demo-load-bench-")
    gallery = None
    if args.large_gallery:
        start = time.perf_counter()
        gallery = write_large_gallery(Path(scratch.name) / "features", args.large_gallery)
        took = time.perf_counter() - start
        print(f"feature folder of {args.large_gallery} triples written in {took:.0f} s", flush=True)
    if url is None:
        start = time.perf_counter()
        proc = start_demo(args.port, Path(tempfile.gettempdir()) / f"demo_load_bench_{args.port}.log", gallery,
                          args.precision)
        print(f"demo started in {time.perf_counter() - start:.0f} s", flush=True)
        url = f"http://127.0.0.1:{args.port}/"
    try:
        figures = {"machine": machine(), "url": url, "gallery_size": args.large_gallery or "bundled",
                   "precision": args.precision or "demo default", "clients": []}
        run_clients(url, 2, 2)  # warm-up: model, caches, thumbnails (--rounds 0: browser only)
        for _ in range(args.rounds):
            figures["clients"].append(run_clients(url, args.clients, args.searches,
                                                  ssl_verify=True if args.ssl_verify else None,
                                                  fetch_images=not args.no_fetch))
            c = figures["clients"][-1]
            print(f"{c['clients']} clients x {c['searches_per_client']}{'' if c['fetch_images'] else ' (API only)'}: "
                  f"{c['searches_per_s']:.2f} searches/s, "
                  f"{c['errors']} errors, latency p50 {c['latency_p50_ms']:.0f} ms p95 {c['latency_p95_ms']:.0f} ms",
                  flush=True)
        if args.browser_clicks:
            figures["browser"] = b = run_browser(url, args.browser_clicks)
            print(f"browser click-to-results: p50 {b['p50_ms']:.0f} ms, p95 {b['p95_ms']:.0f} ms "
                  f"({b['clicks']} clicks)", flush=True)
        figures["machine"]["load_average_after"] = list(os.getloadavg())
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        scratch.cleanup()
    print(json.dumps(figures["machine"]))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return figures


if __name__ == "__main__":
    main()
