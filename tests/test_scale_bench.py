"""benchmarks/scale_bench.py's gallery part runs end to end and writes its figures (small sizes; not a timing test)."""
import json

from benchmarks.scale_bench import main


def test_scale_bench_gallery_part_writes_its_figures(tmp_path):
    out = tmp_path / "scale.json"
    assert main(["--skip", "extraction", "--rows", "600", "--dim", "32", "--queries", "20", "--latency-queries", "5",
                 "--out", str(out)]) == 0
    gallery = json.loads(out.read_text())["gallery"]
    assert gallery["rows"] == 600 and gallery["milvus_lite"]["recall@10"] == 1.0
    assert gallery["faiss_exact"]["recall@10"] == 1.0 and 0 < gallery["faiss_ivfpq"]["recall@10"] <= 1.0
    kinds = ("milvus_lite", "faiss_exact", "faiss_ivfpq")
    assert all(gallery[k]["p50_ms"] > 0 and gallery[k]["build_s"] > 0 for k in kinds)
    assert "load average" in gallery["uptime_before"]
