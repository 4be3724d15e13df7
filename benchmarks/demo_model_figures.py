"""The bundled demo model's figures that depend on its weights, as its card and the docs quote them:
``python -m benchmarks.demo_model_figures [--weights W] [--out figures.json]`` (about a minute on 2 cores).

Prints JSON: ``bundled_gallery`` (the card's entry, ``tests/test_demo_model.py`` recomputes it),
``search_json`` (query 601's top ten in fp32 and bf16, docs/demo.md's sample answer and its bf16 note),
``registration`` (query 601's displacements found and LAM's mean arrow per modality, docs/demo.md) and
``tir_less`` (the TIR-less person query 601 with TIR zeroed in the query and gallery, or in the query
only, docs/demo.md). The test-split rows of the card are ``python -m train.evaluate`` runs: their
commands are in ``assets/demo_model.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from demo.explain import draw_explanation
from demo.features import extract_gallery_features
from demo.gallery import load_gallery
from demo.search import SearchEngine
from demo.text import result_json
from signal_core import load_checkpoint
from signal_core.data import build_transforms, load_triple
from signal_core.metrics import evaluate_rank, pairwise_distance
from signal_core.utils.atomic import write_json
from signal_core.viz import offset_pixels

ASSETS = Path(__file__).resolve().parents[1] / "assets"
QUERY = "000601_cam1_000.jpg"  # the query docs/demo.md quotes


def bundled_gallery(model, query, gallery) -> dict:
    """The card's ``bundled_gallery``: the 30 demo queries against the 210-triple demo gallery."""
    qf, gf = (extract_gallery_features(model, g, progress=False) for g in (query, gallery))
    labels = [([e.pid for e in g.entries], [e.camid for e in g.entries]) for g in (query, gallery)]
    (qp, qc), (gp, gc) = labels
    result = evaluate_rank(pairwise_distance(qf, gf), qp, gp, qc, gc).as_percent_dict()
    return {"queries": len(query), "gallery": len(gallery), **{k: round(v, 2) for k, v in result.items()}}


def search_json(model, gallery, triple: list[str]) -> dict:
    """Query 601's top ten (name, score) and its first match's parts, fp32 and bf16 (the model is left fp32)."""
    out = {}
    for precision in ("fp32", "bf16"):
        model.set_inference_precision(precision)
        try:
            engine = SearchEngine(model, gallery, extract_gallery_features(model, gallery, progress=False))
            answer = result_json(engine.search(*triple, top_k=10, camera=None, explain=False))
        finally:
            model.set_inference_precision("fp32")
        out[precision] = {"top10": [[m["name"], m["score"]] for m in answer["matches"]],
                          "first_parts": answer["matches"][0]["parts"]}
    return out


def explained(model, entry):
    """``entry``'s triple explained by ``model`` and drawn as the demo draws it: (explanation, drawings, LAM's
    mean arrow per modality in pixels of the model input)."""
    size, grid = tuple(model.cfg.image_size), tuple(model.cfg.grid_size)
    images = load_triple(entry.paths)
    batch = build_transforms(size, train=False)(images)
    with torch.no_grad():
        e = model.explain(*(t.unsqueeze(0) for t in batch), cam_ids=torch.tensor([entry.camid]))
    drawings = draw_explanation([np.asarray(i) for i in images], e, grid, size)
    arrows = [float(offset_pixels(e.rgb.reference_points.numpy(), e[m].sampled_positions[0].numpy(), grid,
                                  size).mean()) for m in ("rgb", "nir", "tir")]
    return e, drawings, arrows


def registration(model, entry) -> dict:
    """What the demo draws for ``entry``: the displacement found per modality and LAM's mean arrow (px)."""
    _, drawings, arrows = explained(model, entry)
    return {"model_registration": model.cfg.registration, "offset_scales": drawings.offset_scales,
            "displacement_px": {m: None if p["displacement"] is None else [round(float(v), 2) for v in
                                                                            p["displacement"]]
                                for m, p in zip(("rgb", "nir", "tir"), drawings.parts)},
            "lam_arrow_mean_px": [round(a, 2) for a in arrows]}


def tir_less(model, gallery, triple: list[str]) -> dict:
    """The TIR-less query 601: the kinds of its top ten with TIR zeroed in the query and gallery, or in the
    query only (the generator's identity kinds, from the demo assets' spec)."""
    from train.synthetic.identity import make_identity
    from train.synthetic.spec import SyntheticSpec

    spec = SyntheticSpec(**json.loads((ASSETS / "demo" / "demo.json").read_text())["source"]["synthetic_spec"])
    kind = {e.pid: make_identity(spec, e.pid).kind for e in gallery.entries}
    engine = SearchEngine(model, gallery, extract_gallery_features(model, gallery, progress=False))
    out = {}
    for name, gallery_too in (("query_and_gallery", True), ("query_only", False)):
        found = engine.search(*triple, top_k=10, explain=False, switched_on=("rgb", "nir"), gallery_too=gallery_too)
        kinds = [kind[m.pid] for m in found.matches]
        out[name] = {"persons": kinds.count("person"), "vehicles": kinds.count("vehicle"),
                     "identity_601": sum(m.pid == 601 for m in found.matches)}
    return out


def figures(weights: Path) -> dict:
    model = load_checkpoint(weights)
    query, gallery = load_gallery(ASSETS / "demo" / "query"), load_gallery(ASSETS / "demo" / "gallery")
    entry = next(e for e in query.entries if e.paths[0].endswith(QUERY))
    return {"weights": str(weights), "bundled_gallery": bundled_gallery(model, query, gallery),
            "search_json": search_json(model, gallery, list(entry.paths)),
            "registration": registration(model, entry), "tir_less": tir_less(model, gallery, list(entry.paths))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.demo_model_figures", description=__doc__.split("\n")[0])
    p.add_argument("--weights", type=Path, default=ASSETS / "demo_model.safetensors")
    p.add_argument("--out", help="also write the figures as JSON to this file")
    args = p.parse_args(argv)
    result = figures(args.weights)
    print(json.dumps(result, indent=1))
    if args.out:
        write_json(args.out, result, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
