"""Small query / gallery folders for the demo, copied from the test split of a generated benchmark."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np

from signal_core.utils.atomic import write_json

from .spec import MODALITY_DIRS
from .writer import read_spec


def export_demo_assets(data_root: str | Path, out_dir: str | Path, num_ids: int = 30, query_camera: int | None = None,
                       overwrite: bool = True) -> dict:
    """Small query / gallery folders from the TEST split of a generated (or any RGBNT201-layout) set.

    ``num_ids`` identities, evenly spaced over the sorted test ids; per identity one query triple
    (the first image of ``query_camera`` (1-based), default its first camera) and all its other
    triples in the gallery. Writes ``out_dir/{query,gallery}/{RGB,NI,TI}/<original name>`` and
    ``out_dir/demo.json``.

    Returns:
        {"ids", "query", "gallery", "bytes", "out_dir"}.
    """
    from signal_core.data import load_dataset

    data_root, out_dir = Path(data_root), Path(out_dir)
    test = load_dataset("rgbnt201", data_root).gallery
    pids = sorted({r.pid for r in test})
    if not 1 <= num_ids <= len(pids):
        raise ValueError(f"num_ids must be in 1..{len(pids)} (test identities), got {num_ids}")
    chosen = sorted({pids[round(i)] for i in np.linspace(0, len(pids) - 1, num_ids)})
    for sub in ("query", "gallery"):
        if (out_dir / sub).exists():
            if not overwrite:
                raise FileExistsError(f"'{out_dir / sub}' exists")
            shutil.rmtree(out_dir / sub)
    queries, gallery = _split_query_gallery(test, chosen, query_camera)
    total = _copy_triples(out_dir, {"query": queries, "gallery": gallery})
    spec_file = Path(data_root) / "synthetic.json"  # record the benchmark's spec, not a machine path
    source = ({"synthetic_spec": dataclasses.asdict(read_spec(data_root))} if spec_file.is_file()
              else {"dataset_folder": Path(data_root).name})
    manifest = {"source": source, "ids": chosen, "query": [Path(r.paths[0]).name for r in queries],
                "gallery": [Path(r.paths[0]).name for r in gallery]}
    write_json(out_dir / "demo.json", manifest, indent=1, sort_keys=True)
    total += (out_dir / "demo.json").stat().st_size
    return {"ids": len(chosen), "query": len(queries), "gallery": len(gallery), "bytes": total, "out_dir": str(out_dir)}


def _split_query_gallery(test: list, chosen: list[int], query_camera: int | None) -> tuple[list, list]:
    """Per chosen identity: its first triple of the query camera as query, all the others as gallery."""
    by_pid: dict[int, list] = {}
    for r in sorted(test, key=lambda r: Path(r.paths[0]).name):
        by_pid.setdefault(r.pid, []).append(r)
    queries, gallery = [], []
    for pid in chosen:
        recs = by_pid[pid]
        cams = sorted({r.camid for r in recs})
        cam = cams[0] if query_camera is None or (query_camera - 1) not in cams else query_camera - 1
        q = next(r for r in recs if r.camid == cam)
        queries.append(q)
        gallery.extend(r for r in recs if r is not q)
    return queries, gallery


def _copy_triples(out_dir: Path, subsets: dict[str, list]) -> int:
    """Copy each subset's triples to ``out_dir/<subset>/{RGB,NI,TI}/``; returns the bytes written."""
    total = 0
    for sub, recs in subsets.items():
        for mod in MODALITY_DIRS:
            (out_dir / sub / mod).mkdir(parents=True, exist_ok=True)
        for r in recs:
            for mod, src in zip(MODALITY_DIRS, r.paths):
                dst = out_dir / sub / mod / Path(src).name
                shutil.copyfile(src, dst)
                total += dst.stat().st_size
    return total
