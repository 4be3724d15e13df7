"""Unit tests of the demo package: decoding, gallery reading, missing modalities, overlays, the
feature cache (options and start-up: test_demo_startup.py). Tiny random models, generated images, no network."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from demo import text
from demo.feature_cache import FeatureCache, cache_key, gallery_fingerprint, model_fingerprint
from demo.features import InputTransform, extract_gallery_features, triple_batch
from demo.gallery import GalleryError, load_gallery, read_triples_folder
from demo.search import QueryError, SearchEngine
from signal_core.data import UNKNOWN
from signal_core.data.images import ImageDecodeError, decode_image
from signal_core.viz.overlays import explanation_overlay, grid_to_pixels, overlay_size
from tests.demo_helpers import make_checkpoint, make_triples_folder, write_png_header


# --- image decoding ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode,array", [
    ("L", np.arange(200, dtype=np.uint8).reshape(20, 10)),
    ("RGBA", np.full((20, 10, 4), 200, dtype=np.uint8)),
    ("I;16", (np.arange(200, dtype=np.uint16).reshape(20, 10) * 300)),
    ("1", np.eye(20, 10, dtype=bool)),
])
def test_decode_modes(tmp_path, mode, array):
    path = tmp_path / "img.png"
    Image.fromarray(array).save(path)
    assert Image.open(path).mode == mode
    out = decode_image(path)
    assert out.shape == (20, 10, 3) and out.dtype == np.uint8
    if mode == "I;16":  # stretched by min / max to the full 8-bit range
        assert out.min() == 0 and out.max() == 255


def test_decode_palette_and_arrays(tmp_path):
    Image.new("P", (7, 5), 3).save(tmp_path / "p.png")
    assert decode_image(tmp_path / "p.png").shape == (5, 7, 3)
    assert decode_image(np.linspace(0, 1, 30, dtype=np.float32).reshape(5, 6)).max() == 255
    assert decode_image(np.zeros((4, 4, 2), np.uint16)).shape == (4, 4, 3)


def test_decode_huge_image_is_downscaled(tmp_path):
    path = tmp_path / "huge.jpg"
    Image.new("RGB", (6000, 6000), (10, 200, 30)).save(path, quality=50)  # 36 Mpx: under the cap
    out = decode_image(path)
    assert max(out.shape[:2]) <= 2048 and out.shape[2] == 3
    assert abs(int(out[100, 100, 1]) - 200) < 10


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("size,message", [
    ((13000, 13000), "'big.png' has 169 Mpx, over the limit of 40 Mpx: downscale it first."),
    ((7000, 7000), "'big.png' has 49 Mpx (7000 x 7000), over the limit of 40 Mpx: downscale it first."),
])
def test_pixel_cap_is_checked_from_the_header(tmp_path, size, message):
    import time

    from signal_core.data.images import MAX_PIXELS

    path = write_png_header(tmp_path / "big.png", *size)
    assert path.stat().st_size < 2000 and Image.MAX_IMAGE_PIXELS == MAX_PIXELS == 40_000_000
    start = time.perf_counter()
    with pytest.raises(ImageDecodeError) as info:
        decode_image(path)
    assert str(info.value) == message and time.perf_counter() - start < 0.5  # refused before decoding
    with pytest.raises(ImageDecodeError, match=r"the array has 45 Mpx \(9000 x 5000\)"):
        decode_image(np.broadcast_to(np.zeros((1, 1), np.uint8), (5000, 9000)))


@pytest.mark.parametrize("content", [b"hello, not an image", b"\x89PNG\r\n\x1a\n broken", b""])
def test_decode_non_image_gives_clear_error(tmp_path, content):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageDecodeError, match="bad.png"):
        decode_image(path)
    with pytest.raises(ImageDecodeError, match="does not exist"):
        decode_image(tmp_path / "nope.png")


# --- gallery ----------------------------------------------------------------------------------
def test_triples_folder(tmp_path):
    root = make_triples_folder(tmp_path / "g", ids=(5,), per_id=2)
    (root / "RGB" / "other.png").write_bytes((root / "RGB" / "000005_cam1_000.png").read_bytes())
    for d in ("NI", "TI"):
        (root / d / "other.png").write_bytes((root / d / "000005_cam1_000.png").read_bytes())
    entries = read_triples_folder(root)
    assert [(e.pid, e.camid) for e in entries] == [(5, 0), (5, 1), (UNKNOWN, UNKNOWN)]  # the library's -1
    (root / "TI" / "other.png").unlink()
    with pytest.raises(GalleryError, match="other.png"):
        read_triples_folder(root)
    with pytest.raises(GalleryError, match="--dataset"):
        load_gallery(tmp_path)


# --- search and missing modalities -----------------------------------------------------------
def test_search_finds_itself(engine):
    entry = engine.gallery.entries[4]
    result = engine.search(*entry.paths, top_k=3, camera=str(entry.camid + 1))
    assert result.matches[0].index == 4 and result.matches[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert result.query_pid == entry.pid and result.matches[0].is_match
    assert "✓" in text.caption(result.matches[0]) and len(result.overlays) == 3
    assert result.overlays[0].shape == (*overlay_size(engine.image_size), 3)


def test_missing_modality_is_zeroed(engine):
    entry = engine.gallery.entries[0]
    result = engine.search(entry.paths[0], None, "", top_k=5)
    assert result.missing == ("nir", "tir") and "Missing modality" in text.summary(result, len(engine.gallery))
    images = engine.decode_query((entry.paths[0], None, None))
    batch = triple_batch(images, InputTransform(engine.image_size))
    assert torch.equal(batch["nir"], torch.zeros_like(batch["nir"])) and batch["rgb"].abs().sum() > 0
    expected = engine.model.extract_features(batch["rgb"], torch.zeros_like(batch["rgb"]),
                                             torch.zeros_like(batch["rgb"]))
    query = torch.nn.functional.normalize(expected, dim=1)[0]
    both_sides = extract_gallery_features(engine.model, engine.gallery, progress=False, missing="nt")
    scores = torch.nn.functional.normalize(both_sides, dim=1) @ query  # the gallery lost NIR and TIR too
    assert result.matches[0].similarity == pytest.approx(scores.max().item(), abs=1e-5)
    assert result.gallery_zeroed == ("nir", "tir")
    query_only = engine.search(entry.paths[0], None, "", top_k=5, gallery_too=False)
    assert query_only.matches[0].similarity == pytest.approx((engine.gallery_features @ query).max().item(), abs=1e-5)
    assert query_only.gallery_zeroed == () and "zeroed in the query only" in text.summary(query_only, 12)


def test_bad_queries(engine, tmp_path):
    with pytest.raises(QueryError, match="at least one image"):
        engine.search(None, None, None)
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    with pytest.raises(QueryError, match="NIR input: 'notes.txt' is not an image"):
        engine.search(engine.gallery.entries[0].paths[0], str(bad), None)
    first = engine.gallery.entries[0].paths[0]
    with pytest.raises(QueryError) as info:
        engine.search(first, None, None, camera="9")
    assert str(info.value) == (f"camera 9 given for the query '{Path(first).name}' does not exist for this model: "
                               "use a camera from 1 to 4, or 'unknown' (mean camera embedding).")
    for top_k in (3.7, 0, -2, 13, "abc", None, True):
        with pytest.raises(QueryError) as info:
            engine.search(first, None, None, top_k=top_k)
        assert str(info.value) == f"top k must be a whole number from 1 to 12, got {top_k!r}."
    assert len(engine.search(first, None, None, top_k=4.0).matches) == 4
    assert len(engine.search(first, None, None, top_k="12").matches) == 12


def test_zero_byte_and_truncated_thumbnails_are_written_again(engine):
    entry = engine.gallery.entries[1]
    path = Path(engine.thumbnails.path(1, entry))
    good = path.read_bytes()
    assert good[-2:] == b"\xff\xd9" and Image.open(path).size[1] == 128
    for damaged in (b"", good[: len(good) // 2]):
        path.write_bytes(damaged)
        assert engine.thumbnails.path(1, entry) == str(path) and path.read_bytes() == good


def test_read_only_cache_folder_falls_back_and_keeps_searching(assets, tmp_path, caplog, monkeypatch):
    from demo.served import ServedFolder
    from demo.startup import load_model

    weights, gallery_dir = assets
    model, _ = load_model(weights, None, torch.device("cpu"))
    blocker = tmp_path / "a-file"
    blocker.write_text("x")  # a cache folder under a file cannot be created, even by root
    served = ServedFolder(tmp_path / "served")
    engine = SearchEngine.from_gallery(model, load_gallery(gallery_dir), weights=weights,
                                       cache=FeatureCache(blocker / "cache"), progress=False, served=served)
    assert "cannot be written" in caplog.text and "could not write the gallery feature cache" in caplog.text
    assert engine.thumbnails.directory == served.directory / "thumbs"
    for _ in range(2):
        result = engine.search(*engine.gallery.entries[3].paths, top_k=5)
        thumbs = [Path(m.thumbnail) for m in result.matches]
        assert all(t.parent == served.directory / "thumbs" and t.stat().st_size > 0 for t in thumbs)
    # a folder that becomes unwritable while serving (chmod does not stop root: fail the write instead)
    import demo.thumbnails

    real_write = demo.thumbnails.atomic_write
    cache_dir = tmp_path / "cache"
    engine = SearchEngine.from_gallery(model, load_gallery(gallery_dir), weights=weights,
                                       cache=FeatureCache(cache_dir), progress=False, served=served)
    assert engine.thumbnails.directory.parent == cache_dir

    def refuse_cache_dir(path, write, suffix=".tmp"):
        if Path(path).parent.parent == cache_dir:
            raise PermissionError(13, "Permission denied", str(path))
        return real_write(path, write, suffix)

    monkeypatch.setattr(demo.thumbnails, "atomic_write", refuse_cache_dir)
    result = engine.search(*engine.gallery.entries[5].paths, top_k=3)
    assert all(Path(m.thumbnail).parent == served.directory / "thumbs" for m in result.matches)
    assert "Permission denied" in caplog.text


def test_served_folder_writes_once_atomically_and_prunes(tmp_path):
    import time

    from demo.served import ServedFolder

    served = ServedFolder(tmp_path / "out", max_age_s=60)
    image = np.random.default_rng(0).integers(0, 255, (40, 20, 3), dtype=np.uint8)
    first, again = served.save_png(image), served.save_png(image.copy())
    other = served.save_png(image[::-1])
    assert first == again != other and np.array_equal(np.asarray(Image.open(first)), image)
    assert sorted(p.suffix for p in served.directory.iterdir()) == [".png", ".png"]  # no temporaries
    os.utime(other, (time.time() - 120, time.time() - 120))
    assert served.prune() == 1 and Path(first).is_file() and not Path(other).exists()


def test_explain_entry(engine):
    drawings = engine.explain_entry(2)
    h, w = overlay_size(engine.image_size)
    assert len(drawings.kept) == 3 and all(o.shape == (h, w, 3) for o in drawings.kept)
    assert len(drawings.scores) == 3 and all(o.shape[0] == h and o.shape[1] > 2 * w for o in drawings.scores)


# --- overlays ---------------------------------------------------------------------------------
def test_overlay_shapes_and_colours():
    grid, size = (8, 4), (64, 32)
    image = np.zeros((64, 32, 3), np.uint8)
    intra = np.zeros(32, bool)
    intra[0] = True
    inter = np.zeros(32, bool)
    inter[31] = True
    out = explanation_overlay(image, grid, size, intra=intra, inter=inter)
    h, w = overlay_size(size)
    assert out.shape == (h, w, 3) and h >= 384 and h % 64 == 0
    assert out[5, 5, 1] > out[5, 5, 2]  # first patch: intra (green)
    assert out[-5, -5, 2] > out[-5, -5, 1]  # last patch: inter (blue)
    assert out[h // 2, w // 2].sum() == 0  # untouched
    arrows = explanation_overlay(None, grid, size, reference=np.array([[-1.0, -1.0]]),
                                 positions=np.array([[1.0, 1.0]]))
    assert arrows.shape == (h, w, 3)
    px = grid_to_pixels(np.array([[-1.0, -1.0], [1.0, 1.0]]), grid, (h, w))
    cell = h / 8
    assert px[0] == pytest.approx([cell / 2, cell / 2]) and px[1] == pytest.approx([w - cell / 2, h - cell / 2])


# --- feature cache ----------------------------------------------------------------------------
def _key(weights, gallery, cfg_json="{}"):
    return cache_key(model_fingerprint(weights, cfg_json), gallery_fingerprint(gallery), "fp32", "cpu", (64, 32))


def test_cache_hit_miss_rebuild(tmp_path):
    weights = make_checkpoint(tmp_path / "m.safetensors")
    gallery = load_gallery(make_triples_folder(tmp_path / "g", ids=(1, 2), per_id=2))
    cache = FeatureCache(tmp_path / "cache")
    calls = []

    def compute():
        calls.append(1)
        return torch.randn(len(gallery), 6)

    key = _key(weights, gallery)
    first, hit = cache.get_or_compute(key, len(gallery), compute)
    assert not hit and len(calls) == 1
    again, hit = cache.get_or_compute(key, len(gallery), compute)
    assert hit and len(calls) == 1 and torch.equal(first, again)
    assert not [p for p in cache.directory.iterdir() if p.name.endswith(".tmp")]

    # a changed gallery file (content and mtime) or model gives another key
    path = Path(gallery.entries[0].paths[1])
    path.write_bytes(path.read_bytes() + b"\0")
    os.utime(path, ns=(1, 1))
    assert _key(weights, load_gallery(tmp_path / "g")) != key
    make_checkpoint(weights, seed=1)
    assert _key(weights, gallery) != key
    assert _key(tmp_path / "m.safetensors", gallery, cfg_json='{"k1": 3}') != _key(weights, gallery)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip"])
def test_corrupt_cache_is_rebuilt(tmp_path, damage):
    cache = FeatureCache(tmp_path)
    feats = torch.randn(5, 8)
    path = cache.save("k" * 64, feats)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) - 7]
    elif damage == "garbage":
        data = bytearray(b"garbage" * 5)
    else:
        data[-3] ^= 0xFF  # a flipped bit in the tensor data: caught by the checksum
    path.write_bytes(bytes(data))
    assert cache.load("k" * 64, 5) is None
    rebuilt, hit = cache.get_or_compute("k" * 64, 5, lambda: feats)
    assert not hit and torch.equal(cache.load("k" * 64, 5), feats)


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    import safetensors.torch

    cache = FeatureCache(tmp_path)
    feats = torch.randn(3, 4)
    cache.save("a" * 64, feats)

    def broken(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(OSError):
        cache.save("a" * 64, torch.zeros(3, 4))
    assert torch.equal(cache.load("a" * 64, 3), feats)
    assert sorted(p.name for p in tmp_path.iterdir()) == [cache.path("a" * 64).name]


def test_engine_reuses_cache(assets, tmp_path):
    from demo.startup import load_model

    weights, gallery_dir = assets
    model, _ = load_model(weights, None, torch.device("cpu"))
    gallery = load_gallery(gallery_dir)
    cache = FeatureCache(tmp_path)
    first = SearchEngine.from_gallery(model, gallery, weights=weights, cache=cache, progress=False)
    second = SearchEngine.from_gallery(model, gallery, weights=weights, cache=cache, progress=False)
    assert not first.cache_hit and second.cache_hit
    assert torch.allclose(first.gallery_features, second.gallery_features)


def test_cache_write_failure_of_any_kind_keeps_the_features_in_memory(tmp_path, monkeypatch, caplog):
    """A full disk makes safetensors raise SafetensorError (not an OSError): the demo must go on."""
    import safetensors.torch
    from safetensors import SafetensorError

    def full_disk(*args, **kwargs):
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    feats = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    got, hit = FeatureCache(tmp_path / "cache").get_or_compute("k" * 64, 2, lambda: feats)
    assert torch.equal(got, feats) and not hit
    assert "could not write the gallery feature cache" in caplog.text and "SafetensorError" in caplog.text
    assert not list((tmp_path / "cache").glob("*.safetensors")) and not list((tmp_path / "cache").glob(".*"))


def test_messages_shorten_what_visitors_gave_and_escape_markdown():
    from signal_core.utils.messages import bounded, markdown_text, quoted, reason, shown

    long = "RGB/" + "a" * 300 + ".png"
    assert shown(long) == "RGB/" + "a" * 56 + "…" + "a" * 16 + ".png (308 characters)"
    assert len(quoted("x" * 30_000_000)) < 120 and quoted(3.7) == "3.7" and quoted("2") == "'2'"
    assert shown([1] * 10_000) == "[1, 1, 1, 1, 1, 1, ...]" and shown("a\nb\x00") == "a?b?"
    assert shown("x\u202egnp.exe") == "x?gnp.exe"  # a right-to-left override would show "exe.png"
    assert reason(OSError(36, "File name too long", "/srv/uploads/1f2e/RGB/x.png")) == "OSError: File name too long"
    assert markdown_text("<img src=x onerror=alert(1)>_*.png") == "&lt;img src=x onerror=alert(1)&gt;\\_\\*.png"
    assert len(bounded("y" * 5000)) == 1000


def test_engine_messages_are_short(engine, tmp_path):
    entry = engine.gallery.entries[0]
    with pytest.raises(QueryError) as info:
        engine.search(*entry.paths, top_k=3, camera="9" * 3_000_000)
    assert len(str(info.value)) < 300 and "(3000000 characters)" in str(info.value)
    with pytest.raises(QueryError) as info:
        engine.search(*entry.paths, top_k="k" * 1_000_000)
    assert len(str(info.value)) < 200


def test_scores_are_shown_with_the_decimals_that_tell_them_apart():
    """Scores spread over 0.01 or more keep 3 decimals; a model scoring every result 0.9996-0.9998 is shown with
    5 (1.000 everywhere would hide the ranks), never more than 6; the parts table follows the caption."""
    from demo.search import RankedMatch
    from signal_core.metrics.parts import PartScore

    def matches(*scores):
        return [RankedMatch(rank=i + 1, index=i, pid=3, camid=0, similarity=s, is_match=True,
                            parts={"rgb": PartScore(cosine=s, share=1.0, contribution=s)})
                for i, s in enumerate(scores)]

    assert text.score_decimals([0.91, 0.87, 0.62]) == 3
    assert text.score_decimals([0.999754, 0.999737, 0.999575]) == 5
    assert text.score_decimals([0.5, 0.5 + 1e-9]) == 6
    assert text.score_decimals([0.7]) == text.score_decimals([0.7, 0.7]) == text.score_decimals([]) == 3
    close = matches(0.999754, 0.999581)
    decimals = text.score_decimals([m.similarity for m in close])
    assert [text.caption(m, decimals).split(" · ")[2] for m in close] == ["0.99975", "0.99958"]
    assert "| 0.99975 |" in text.parts_table(close[0], decimals=decimals)
    assert text.caption(close[0]).split(" · ")[2] == "1.000"  # the default, 3 decimals
