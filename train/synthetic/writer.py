"""Writing a benchmark: every frame as JPEG in the RGBNT201 layout, then ``synthetic.json`` (last)."""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from signal_core.utils.atomic import write_json

from .identity import make_identity
from .render import render_frame
from .spec import (
    GENERATOR,
    GENERATOR_VERSION,
    MODALITY_DIRS,
    SPLIT_DIRS,
    VIEWS,
    SyntheticSpec,
    image_name,
)


def encode_jpeg(img: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an RGB ``[H,W,3]`` or grey ``[H,W]`` uint8 image (deterministic)."""
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("cv2.imencode failed")
    return buf.tobytes()


def _prepare_out(out_dir: Path, overwrite: bool) -> None:
    """Refuse to write over a dataset, or remove a previously generated one when ``overwrite``."""
    owned = [out_dir / d for d in SPLIT_DIRS.values()] + [out_dir / "synthetic.json"]
    if any(p.exists() for p in owned):
        if not overwrite:
            raise FileExistsError(f"'{out_dir}' already holds a dataset (train_171/, test/ or synthetic.json); "
                                  "pass overwrite=True (--overwrite) to replace a generated one")
        if not (out_dir / "synthetic.json").is_file():
            raise FileExistsError(f"'{out_dir}' holds train_171/ or test/ but no synthetic.json: not a generated "
                                  "benchmark, refusing to delete it")
        (out_dir / "synthetic.json").unlink()
        for d in owned[:-1]:
            shutil.rmtree(d, ignore_errors=True)


def generate(spec: SyntheticSpec, out_dir: str | Path, progress: bool = True, overwrite: bool = False) -> dict:
    """Write the benchmark of ``spec`` into ``out_dir`` (RGBNT201 layout + synthetic.json).

    Returns:
        A summary: counts, bytes written, seconds, night images, views.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _prepare_out(out_dir, overwrite)
    jobs = [(split, pid, cam, i) for split in ("train", "test") for pid in spec.pids(split)
            for cam in range(spec.cameras) for i in range(spec.per_camera)]
    for split in SPLIT_DIRS.values():
        for mod in MODALITY_DIRS:
            (out_dir / split / mod).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    frames, total_bytes = {}, 0
    for split, pid, cam, i in tqdm(jobs, desc="synthetic", unit="triple", disable=not progress):
        fr = render_frame(spec, split, pid, cam, i)
        name = image_name(pid, cam, i)
        for mod, img in zip(MODALITY_DIRS, (fr.rgb, fr.nir, fr.tir)):
            data = encode_jpeg(img, spec.jpeg_quality)
            (out_dir / SPLIT_DIRS[split] / mod / name).write_bytes(data)
            total_bytes += len(data)
        frames[f"{SPLIT_DIRS[split]}/{name}"] = fr.meta
    seconds = time.perf_counter() - start
    summary = _summary(spec, list(frames.values()), total_bytes)
    payload = {"generator": GENERATOR, "version": GENERATOR_VERSION, "spec": dataclasses.asdict(spec),
               "layout": "RGBNT201", "summary": summary, "frames": frames}
    write_json(out_dir / "synthetic.json", payload, indent=1, sort_keys=True)
    return {**summary, "seconds": seconds, "out_dir": str(out_dir)}


def _summary(spec: SyntheticSpec, metas: list[dict], total_bytes: int) -> dict:
    """Counts of a written benchmark (stored in synthetic.json)."""
    return {
        "train_ids": spec.train_ids, "test_ids": spec.test_ids, "cameras": spec.cameras,
        "train_triples": spec.train_ids * spec.cameras * spec.per_camera,
        "test_triples": spec.test_ids * spec.cameras * spec.per_camera,
        "night_images": sum(m["night"] for m in metas),
        "vehicle_ids": sum(make_identity(spec, p).kind == "vehicle" for s in ("train", "test") for p in spec.pids(s)),
        "views": {v: sum(m["view"] == v for m in metas) for v in VIEWS},
        "image_bytes": total_bytes,
    }


def read_spec(data_root: str | Path) -> SyntheticSpec:
    """The spec stored in ``data_root/synthetic.json``."""
    payload = json.loads((Path(data_root) / "synthetic.json").read_text())
    return SyntheticSpec(**payload["spec"])
