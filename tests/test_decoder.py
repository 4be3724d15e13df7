"""One image decoder for every entry point: the same files give the same features through the
train.extract path, the train.evaluate path and the demo (a transparent RGBA PNG, an EXIF-rotated JPEG)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from signal_core import load_weights
from signal_core.data import TripleDataset, build_transforms, read_triples_folder
from signal_core.data.errors import DatasetError
from signal_core.data.images import ImageDecodeError, decode_image
from signal_core.data.transforms import load_image
from signal_core.retrieval.folder_features import encode_records
from signal_core.retrieval.split_features import extract_dataset_features
from tests.demo_helpers import make_checkpoint

EXIF_ORIENTATION = 0x0112
ROTATE_90_CW = 6  # EXIF: the stored pixels must be turned 90 degrees clockwise to be upright


def _rgba_png(path, seed):
    """A coloured figure on a fully transparent background whose hidden RGB is bright noise."""
    rng = np.random.default_rng(seed)
    rgba = np.zeros((96, 48, 4), np.uint8)
    rgba[..., :3] = rng.integers(150, 256, (96, 48, 3))  # what a plain convert("RGB") would show
    rgba[20:80, 12:36] = (*rng.integers(0, 256, 3), 255)
    Image.fromarray(rgba, "RGBA").save(path)


def _exif_rotated_jpeg(path, seed):
    """A 48 x 96 (W x H) figure stored sideways (96 x 48) with EXIF orientation 6."""
    rng = np.random.default_rng(seed)
    upright = np.zeros((96, 48, 3), np.uint8)
    upright[10:40] = rng.integers(0, 256, 3)
    upright[40:90, 8:40] = rng.integers(0, 256, 3)
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # sideways on disk
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATE_90_CW
    stored.save(path, quality=95, exif=exif)
    return upright


def _folder(root):
    for d in ("RGB", "NI", "TI"):
        (root / d).mkdir(parents=True)
        for i, name in enumerate(("000001_cam1_000.png", "000001_cam2_001.png")):
            _rgba_png(root / d / name, seed=10 * i + len(d))
        for i, name in enumerate(("000002_cam1_000.jpg", "000002_cam2_001.jpg")):
            _exif_rotated_jpeg(root / d / name, seed=20 * i + len(d))
    return root


def test_decoder_composites_alpha_and_applies_exif(tmp_path):
    _rgba_png(tmp_path / "a.png", 0)
    rgb = decode_image(tmp_path / "a.png")
    assert rgb.shape == (96, 48, 3) and rgb[:20].max() == 0  # transparent: black, not the hidden noise
    upright = _exif_rotated_jpeg(tmp_path / "b.jpg", 0)
    decoded = decode_image(tmp_path / "b.jpg")
    assert decoded.shape == upright.shape  # turned upright
    assert np.abs(decoded.astype(int) - upright).mean() < 4  # JPEG loss only


def test_features_identical_through_extract_evaluate_and_demo(tmp_path):
    from demo.features import extract_gallery_features
    from demo.gallery import load_gallery

    folder = _folder(tmp_path / "triples")
    model = load_weights(make_checkpoint(tmp_path / "model.safetensors")).eval()
    records = read_triples_folder(folder)
    extract = torch.from_numpy(encode_records(model, records, batch_size=4).features)  # train.extract, normalised
    loader = DataLoader(TripleDataset(records, build_transforms(model.cfg.image_size, train=False)), batch_size=4)
    evaluate = extract_dataset_features(model, loader, progress=False).feats  # train.evaluate
    gallery = load_gallery(folder)
    assert [e.paths for e in gallery.entries] == [tuple(r.paths) for r in records]
    demo = extract_gallery_features(model, gallery, batch_size=4, progress=False)  # the demo
    assert extract.shape == (4, model.cfg.feature_dim)
    unit = torch.nn.functional.normalize  # feature folders store L2-normalised features
    torch.testing.assert_close(unit(evaluate, dim=1), extract, rtol=0, atol=1e-6)
    torch.testing.assert_close(unit(demo, dim=1), extract, rtol=0, atol=1e-6)
    torch.testing.assert_close(demo, evaluate, rtol=0, atol=1e-6)


def _eps(path):
    """A tiny EPS file (what PIL's EPS plugin would hand to Ghostscript)."""
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n"
                     b"0 0 moveto 8 8 lineto stroke\nshowpage\n%%EOF\n")
    return path


@pytest.mark.parametrize("name, make", [
    ("figure.eps", _eps),
    ("renamed.png", _eps),  # the content decides, not the extension
    ("doc.pdf", lambda p: Image.new("RGB", (8, 8)).save(p, "PDF")),
    ("icon.ico", lambda p: Image.new("RGB", (16, 16)).save(p, "ICO")),
    ("anim.gif", lambda p: Image.new("P", (8, 8)).save(p, "GIF")),
])
def test_only_camera_and_dataset_formats_are_opened(tmp_path, monkeypatch, name, make):
    from PIL import EpsImagePlugin

    def ghostscript(*args, **kwargs):
        raise AssertionError("Ghostscript would have run")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", ghostscript)
    make(tmp_path / name)
    expected = (f"'{name}' is not an image file in a format read here (JPEG, PNG, BMP, TIFF, WebP or PPM / PGM): "
                "convert it to PNG or JPEG.")
    with pytest.raises(ImageDecodeError) as info:
        decode_image(tmp_path / name)
    assert str(info.value) == expected
    with pytest.raises(DatasetError, match="cannot be read .*not an image file in a format read here"):
        load_image(tmp_path / name)  # the command lines' datasets: the same decoder


@pytest.mark.parametrize("fmt, suffix", [("JPEG", "jpg"), ("PNG", "png"), ("BMP", "bmp"), ("TIFF", "tif"),
                                         ("WEBP", "webp"), ("PPM", "ppm")])
def test_the_accepted_formats_decode(tmp_path, fmt, suffix):
    Image.new("RGB", (12, 8), (200, 30, 10)).save(tmp_path / f"a.{suffix}", fmt)
    Image.new("L", (12, 8), 77).save(tmp_path / "g.pgm", "PPM")
    assert decode_image(tmp_path / f"a.{suffix}").shape == (8, 12, 3)
    assert decode_image(tmp_path / f"a.{suffix}")[0, 0, 0] > 150
    assert (decode_image(tmp_path / "g.pgm") == 77).all()
