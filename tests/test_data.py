"""Tests for signal_core.data: parsers (on tiny fake folders), transforms, Dataset and sampler."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms as T

from signal_core.data import DatasetError, IdentitySampler, TripleDataset, build_transforms, load_dataset, load_triple

COLOURS = ((200, 30, 30), (30, 200, 30), (30, 30, 200))  # RGB / NIR / TIR stand-ins


def _save(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (8, 16)) -> None:
    """Write a solid-colour jpg of size (W, H)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def make_rgbnt201(root: Path) -> Path:
    train = ["000001_cam1_0_00.jpg", "000001_cam2_0_01.jpg", "000005_cam3_0_00.jpg", "000009_cam1_1_00.jpg"]
    test = ["000201_cam2_0_00.jpg", "000202_cam4_0_00.jpg", "000202_cam1_0_01.jpg"]
    for split, names in (("train_171", train), ("test", test)):
        for name in names:
            for folder, colour in zip(("RGB", "NI", "TI"), COLOURS):
                _save(root / split / folder / name, colour)
    return root


def make_rgbnt100(root: Path) -> Path:
    splits = {"bounding_box_train": ["0007_c002_0001.jpg", "0003_c001_0001.jpg", "0003_c005_0002.jpg"],
              "query": ["0101_c003_0001.jpg"], "bounding_box_test": ["0101_c004_0002.jpg", "0102_c008_0001.jpg"]}
    for split, names in splits.items():
        for name in names:
            img = Image.new("RGB", (768, 8))
            for i, colour in enumerate(COLOURS):
                img.paste(colour, (256 * i, 0, 256 * (i + 1), 8))
            (root / "rgbir" / split).mkdir(parents=True, exist_ok=True)
            img.save(root / "rgbir" / split / name)
    return root


def make_msvr310(root: Path) -> Path:
    splits = {"bounding_box_train": ["0012_s001_v0_000.jpg", "0012_s001_v3_001.jpg", "0004_s007_v1_000.jpg"],
              "query3": ["0310_s100_v2_000.jpg"], "bounding_box_test": ["0310_s100_v5_001.jpg", "0305_s099_v7_000.jpg"]}
    for split, names in splits.items():
        for name in names:
            for folder, colour in zip(("vis", "ni", "th"), COLOURS):
                _save(root / split / name[:4] / folder / name, colour)
    return root


# ----------------------------------------------------------------------------------------- parsers
def test_rgbnt201_parse(tmp_path):
    ds = load_dataset("RGBNT201", make_rgbnt201(tmp_path))
    assert [(r.pid, r.camid) for r in ds.train] == [(0, 0), (0, 1), (1, 2), (2, 0)]  # 1,5,9 -> 0,1,2
    assert ds.num_train_pids == 3 and ds.num_train_cams == 3
    assert ds.query == ds.gallery and len(ds.query) == 3
    assert sorted((r.pid, r.camid) for r in ds.query) == [(201, 1), (202, 0), (202, 3)]
    r = ds.train[0]
    assert [Path(p).parent.name for p in r.paths] == ["RGB", "NI", "TI"] and r.sceneid == -1
    assert len({Path(p).name for p in r.paths}) == 1
    assert "train" in ds.summary() and "gallery" in ds.summary()


def test_rgbnt100_parse_and_crop(tmp_path):
    ds = load_dataset("rgbnt100", make_rgbnt100(tmp_path))
    assert [(r.pid, r.camid) for r in ds.train] == [(0, 0), (0, 4), (1, 1)]  # sorted names; 3,7 -> 0,1
    assert ds.num_train_pids == 2 and ds.num_train_cams == 3
    assert (len(ds.query), len(ds.gallery)) == (1, 2)
    assert [(r.pid, r.camid) for r in ds.gallery] == [(101, 3), (102, 7)]
    assert all(r.is_single_file for r in ds.train)
    panels = load_triple(ds.train[0].paths)
    assert [p.size for p in panels] == [(256, 8)] * 3
    for panel, colour in zip(panels, COLOURS):
        assert np.abs(np.asarray(panel, dtype=float).mean((0, 1)) - colour).max() < 8
    assert load_dataset("rgbnt100", tmp_path / "rgbir").train == ds.train  # rgbir/ itself accepted


def test_msvr310_parse(tmp_path):
    ds = load_dataset("MSVR310", make_msvr310(tmp_path))
    # folders sorted (0004, 0012); camid = name[11] with no offset; sceneid = name[6:9]
    assert [(r.pid, r.camid, r.sceneid) for r in ds.train] == [(0, 1, 7), (1, 0, 1), (1, 3, 1)]
    assert ds.num_train_pids == 2 and ds.num_train_cams == 3
    assert [(r.pid, r.camid, r.sceneid) for r in ds.query] == [(310, 2, 100)]
    assert len(ds.gallery) == 2 and {r.camid for r in ds.gallery} == {5, 7}
    assert [Path(p).parent.name for p in ds.train[0].paths] == ["vis", "ni", "th"]


# ------------------------------------------------------------------------------------------ errors
def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(DatasetError, match=r"(?s)nowhere. does not exist.*train_171/RGB"):
        load_dataset("rgbnt201", tmp_path / "nowhere")
    (tmp_path / "train_171").mkdir()
    with pytest.raises(DatasetError, match=r"test' does not exist"):
        load_dataset("rgbnt201", tmp_path)
    (tmp_path / "test").mkdir()
    with pytest.raises(DatasetError, match=r"train_171[/\\]RGB' does not exist"):
        load_dataset("rgbnt201", tmp_path)
    for m in ("RGB", "NI", "TI"):
        (tmp_path / "train_171" / m).mkdir()
    with pytest.raises(DatasetError, match="holds no image files"):
        load_dataset("rgbnt201", tmp_path)
    with pytest.raises(DatasetError, match="query3"):
        load_dataset("msvr310", tmp_path)
    with pytest.raises(DatasetError, match="rgbir"):
        load_dataset("rgbnt100", tmp_path)
    with pytest.raises(DatasetError, match="unknown dataset name"):
        load_dataset("market1501", tmp_path)


def test_missing_modality_file(tmp_path):
    make_rgbnt201(tmp_path)
    (tmp_path / "test" / "TI" / "000202_cam4_0_00.jpg").unlink()
    with pytest.raises(DatasetError, match=r"'.*TI[/\\]000202_cam4_0_00\.jpg' is missing"):
        load_dataset("rgbnt201", tmp_path)
    make_msvr310(tmp_path / "m")
    (tmp_path / "m" / "query3" / "0310" / "ni" / "0310_s100_v2_000.jpg").unlink()
    with pytest.raises(DatasetError, match=r"ni[/\\]0310_s100_v2_000\.jpg' is missing"):
        load_dataset("msvr310", tmp_path / "m")


def test_bad_file_names(tmp_path):
    make_rgbnt201(tmp_path / "a")
    for m in ("RGB", "NI", "TI"):
        _save(tmp_path / "a" / "train_171" / m / "person7.jpg", (0, 0, 0))
    with pytest.raises(DatasetError, match=r"cannot parse file name 'person7\.jpg'.*PPPPPP_camK"):
        load_dataset("rgbnt201", tmp_path / "a")
    make_rgbnt100(tmp_path / "b")
    Image.new("RGB", (768, 8)).save(tmp_path / "b" / "rgbir" / "query" / "car.jpg")
    with pytest.raises(DatasetError, match=r"'car\.jpg'.*\(\[-\\d\]\+\)_c"):
        load_dataset("rgbnt100", tmp_path / "b")
    (tmp_path / "b" / "rgbir" / "query" / "car.jpg").rename(tmp_path / "b" / "rgbir" / "query" / "-1_c001.jpg")
    with pytest.raises(DatasetError, match=r"'-1_c001\.jpg' has pid -1"):
        load_dataset("rgbnt100", tmp_path / "b")
    make_msvr310(tmp_path / "c")
    for m in ("vis", "ni", "th"):
        _save(tmp_path / "c" / "query3" / "0310" / m / "0310_s1_v2.jpg", (0, 0, 0))
    with pytest.raises(DatasetError, match=r"'0310_s1_v2\.jpg'.*VVVV_sSSS_vC"):
        load_dataset("msvr310", tmp_path / "c")


def test_rgbnt100_wrong_width(tmp_path):
    Image.new("RGB", (700, 8)).save(tmp_path / "x.jpg")
    with pytest.raises(DatasetError, match="700x8.*expected 768 wide"):
        load_triple((str(tmp_path / "x.jpg"),) * 3)
    with pytest.raises(DatasetError, match="does not exist"):
        load_triple((str(tmp_path / "y.jpg"),) * 3)


# -------------------------------------------------------------------------------------- transforms
def _noise_image(seed: int = 0, size=(10, 20)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def test_transform_shapes_and_parity_with_torchvision_v1():
    img = _noise_image()
    out = build_transforms((16, 8), train=False)((img, img, img))
    assert [tuple(t.shape) for t in out] == [(3, 16, 8)] * 3 and out[0].dtype == torch.float32
    ref = T.Compose([T.Resize((16, 8)), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])(img)
    torch.testing.assert_close(out[0], ref, atol=1e-5, rtol=0)
    train = build_transforms((16, 8), train=True, erasing_prob=0.0)
    v1 = T.Compose([T.Resize((16, 8), interpolation=3), T.RandomHorizontalFlip(0.5), T.Pad(10),
                    T.RandomCrop((16, 8)), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
    for seed in range(3):
        torch.manual_seed(seed)
        ours = train((img, img, img))[0]
        torch.manual_seed(seed)
        torch.testing.assert_close(ours, v1(img), atol=1e-5, rtol=0)


def test_paired_shares_draw_independent_does_not():
    img = _noise_image(1)
    paired = build_transforms((16, 8), train=True, paired=True, erasing_prob=1.0)
    indep = build_transforms((16, 8), train=True, paired=False, erasing_prob=1.0)
    differs = False
    for seed in range(5):
        torch.manual_seed(seed)
        a, b, c = paired((img, img, img))
        assert a.shape == (3, 16, 8) and torch.equal(a, b) and torch.equal(a, c)
        torch.manual_seed(seed)
        a, b, c = indep((img, img, img))
        differs |= not (torch.equal(a, b) and torch.equal(a, c))
    assert differs


def test_random_erasing_one_box_of_noise():
    img = Image.new("RGB", (8, 16), (255, 255, 255))  # normalises to exactly 1.0 everywhere
    train = build_transforms((16, 8), train=True, padding=0, erasing_prob=1.0)
    erased = 0
    for seed in range(20):
        torch.manual_seed(seed)
        out = train((img, img, img))[0]
        mask = (out != 1.0).any(0)
        if mask.any():
            erased += 1
            h, w = len(mask.any(1).nonzero()), len(mask.any(0).nonzero())
            assert mask.sum() == h * w  # one rectangle
            assert 0.02 * 128 * 0.5 <= h * w <= 128 / 3 * 1.5 and h < 16 and w < 8
    assert erased >= 10
    plain = build_transforms((16, 8), train=True, padding=0, erasing_prob=0.0)
    assert all(torch.equal(t, torch.ones(3, 16, 8)) for t in plain((img, img, img)))


# ---------------------------------------------------------------------------------------- dataset
def test_triple_dataset_items_and_collate(tmp_path):
    ds = load_dataset("rgbnt100", make_rgbnt100(tmp_path))
    data = TripleDataset(ds.train, build_transforms((8, 16), train=False))
    item = data[2]
    assert set(item) == {"rgb", "nir", "tir", "pid", "camid", "sceneid", "index", "path"}
    assert item["rgb"].shape == (3, 8, 16) and (item["pid"], item["camid"], item["index"]) == (1, 1, 2)
    assert item["rgb"][0].mean() > 0.4 and item["nir"][1].mean() > 0.4 and item["tir"][2].mean() > 0.4
    batch = next(iter(DataLoader(data, batch_size=3)))
    assert batch["tir"].shape == (3, 3, 8, 16) and batch["pid"].tolist() == [0, 0, 1]
    assert len(batch["path"]) == 3 and data.pids == [0, 0, 1]


# ---------------------------------------------------------------------------------------- sampler
PIDS = [0] * 5 + [1] * 3 + [2] * 1 + [3] * 8 + [4] * 4 + [5] * 2 + [6] * 6 + [7] * 3


def test_sampler_batches_are_p_ids_times_k():
    s = IdentitySampler(PIDS, batch_size=6, num_instances=3, seed=1)
    batches = s.epoch_batches()
    assert batches and len(list(s)) == len(s) == 6 * len(batches)
    for b in batches:
        counts = Counter(PIDS[i] for i in b)
        assert len(b) == 6 and len(counts) == 2 and set(counts.values()) == {3}
    # authors' estimate: sum of max(n, K) rounded down to multiples of K
    assert s.estimated_length == 3 + 3 + 3 + 6 + 3 + 3 + 6 + 3


def test_sampler_deterministic_and_resumable():
    a = IdentitySampler(PIDS, 6, 3, seed=7)
    b = IdentitySampler(PIDS, 6, 3, seed=7)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    b.set_epoch(3)
    fresh = IdentitySampler(PIDS, 6, 3, seed=7)
    fresh.set_epoch(3)
    assert list(b) == list(fresh)
    assert list(IdentitySampler(PIDS, 6, 3, seed=8)) != list(IdentitySampler(PIDS, 6, 3, seed=7))


def test_sampler_distributed_ranks_disjoint_equal():
    pids = [i // 4 for i in range(4 * 12)]
    full = IdentitySampler(pids, 8, 2, seed=3, world_size=2)
    ranks = [IdentitySampler(pids, 8, 2, seed=3, rank=r, world_size=2) for r in range(2)]
    for s in ranks:
        s.set_epoch(5)
    lists = [list(s) for s in ranks]
    assert len(lists[0]) == len(lists[1]) == len(ranks[0]) > 0
    assert not set(lists[0]) & set(lists[1])
    assert ranks[0].local_batch_size == 4
    for b in ranks[1].epoch_batches():
        assert sorted(Counter(pids[i] for i in b).values()) == [2, 2]
    glob = full._global_batches(5)
    assert ranks[0].epoch_batches() == glob[0::2][:len(glob) // 2]


def test_sampler_errors():
    with pytest.raises(ValueError, match="multiple of world_size x num_instances"):
        IdentitySampler(PIDS, 7, 3)
    with pytest.raises(ValueError, match="only 8 identities"):
        IdentitySampler(PIDS, 30, 3)


def test_16bit_thermal_images_are_stretched_like_the_demo_decoder(tmp_path):
    """A 16-bit TIR PNG is stretched by its min / max (PIL's own conversion would clip it to white)."""
    import numpy as np
    from PIL import Image

    from signal_core.data.images import decode_image
    from signal_core.data.transforms import load_image

    values = (np.arange(64 * 32).reshape(64, 32) * 20).astype(np.uint16)  # 0 .. 40940
    Image.fromarray(values).save(tmp_path / "tir.png")
    loaded = np.asarray(load_image(tmp_path / "tir.png"))
    assert loaded.shape == (64, 32, 3) and loaded.min() == 0 and loaded.max() == 255
    assert np.array_equal(loaded, decode_image(str(tmp_path / "tir.png")))
