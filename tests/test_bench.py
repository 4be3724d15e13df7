"""The benchmark script runs end to end and writes its figures (tiny model; not a timing test)."""
import json

import pytest

from benchmarks.inference_bench import parse_args, run


@pytest.mark.slow
def test_bench_writes_all_figures(tmp_path):
    out = tmp_path / "bench.json"
    report = run(parse_args(["--preset", "tiny", "--out", str(out), "--repeats", "1", "--gemm-size", "256",
                             "--batch", "2", "--accuracy-triples", "8", "--demo-queries", "2"]))
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    cpu = report["cpu"]
    assert cpu["matmul_peak_gflops"]["fp32"] > 0 and cpu["auto_precision"] in ("fp32", "bf16")
    assert [r["precision"] for r in cpu["extract_features"]] == ["fp32", "bf16"]
    assert all(r["triples_per_s"] > 0 and r["gflop_per_triple"] > 0 for r in cpu["extract_features"])
    assert report["bf16_accuracy"]["triples"] == 8 and report["bf16_accuracy"]["cosine_min"] > 0.99
    assert report["ranking"]["gallery"] == 20000
    assert set(report["demo"]) == {"demo_model", "random_tiny"}
    assert report["demo"]["demo_model"]["n"] == 2


def test_keep_freed_memory_is_safe_to_call():
    import platform

    from signal_core.utils.allocator import keep_freed_memory

    applied = keep_freed_memory()
    assert isinstance(applied, bool) and (applied or platform.system() != "Linux" or not platform.libc_ver()[0])
