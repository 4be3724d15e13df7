"""The benchmark spec (every knob of the generator) and the RGBNT201 names it writes."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from signal_core.modalities import FOLDERS

from .palette import PALETTE

GENERATOR = "signal-synthetic"
GENERATOR_VERSION = 1
SPLIT_DIRS = {"train": "train_171", "test": "test"}
MODALITY_DIRS = FOLDERS  # RGB/, NI/, TI/: the RGBNT201 layout
VIEWS = ("front", "back", "left", "right")
MAX_SIDE = 2048  # pixels: a 100000 x 100000 frame would need 30 GB before the first JPEG
# Each difficulty level's range [0, max]. Beyond it the images stop meaning anything: illumination 4 leaves
# the darkest camera's gain, brightness and gradient factors above 0.2 (at about 5.8 they reach 0: black
# frames, then overflow); noise 10 is a sensor sigma of about 0.16 of the full range; misalign_scale 0.5
# halves or 1.5-fold enlarges NIR / TIR (at 1 a frame shrinks to nothing); rotation 30 degrees.
LEVELS = {"viewpoint": 1.0, "illumination": 4.0, "night": 1.0, "clutter": 2.0, "misalign_scale": 0.5,
          "misalign_rotation": 30.0, "noise": 10.0}


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything that defines a synthetic benchmark; the same spec gives byte-identical files."""

    seed: int = 0  # master seed of every random stream
    train_ids: int = 600  # identities of the train split (pids 1..train_ids); a from-scratch ViT needs many
    test_ids: int = 100  # identities of the test split (pids train_ids+1..train_ids+test_ids)
    cameras: int = 4  # cameras (1..9: the RGBNT201 name keeps one camera digit)
    per_camera: int = 2  # images per identity and camera
    height: int = 128  # image height (pixels)
    width: int = 64  # image width (pixels)
    vehicle_fraction: float = 0.3  # fraction of vehicle-like identities (the rest are person-like)
    palette_size: int = 8  # shared clothing / body colours (first N of PALETTE, 3..12)
    colour_sets: int = 16  # 3-colour sets shared by identities (0: every identity draws its own colours)
    scene_pool: int = 12  # background scenes shared by all identities
    scenes_per_camera: int = 3  # scenes each camera sees (drawn from the pool)
    distractor_pool: int = 16  # distractor objects shared by all identities
    viewpoint: float = 1.0  # side change probability + scale / position / pose jitter; 0 = front, fixed
    illumination: float = 1.0  # per-camera colour cast / brightness / gamma / gradient; 0 = none
    night: float = 0.25  # fraction of night images (dark, noisy RGB); 0 = none
    clutter: float = 1.0  # background texture, shapes and distractors (0..2); 0 = plain background
    misalign: float = 3.0  # max NIR / TIR shift relative to RGB in pixels; 0 = aligned (no scale jitter either)
    misalign_scale: float = 0.04  # max relative NIR / TIR scale change (when misalign or rig_shift > 0)
    rig_shift: float = 0.0  # max fixed NIR / TIR shift of each camera rig in pixels (per axis); 0 = none
    misalign_rotation: float = 0.0  # max per-image NIR / TIR rotation in degrees; 0 = none
    noise: float = 1.0  # Gaussian sensor noise level (sigma ~ 4/255 x level); 0 = none
    jpeg_quality: int = 95  # JPEG quality of every written image

    def __post_init__(self) -> None:
        for ok, message in self._checks():
            if not ok:
                raise ValueError(f"SyntheticSpec: {message}")

    def _checks(self) -> list[tuple[bool, str]]:
        """(condition, message) pairs, in the order they are reported."""
        return [
            (self.train_ids >= 1 and self.test_ids >= 1, "train_ids and test_ids must be >= 1"),
            (self.train_ids + self.test_ids <= 999_999, "at most 999999 identities (6-digit pids)"),
            (1 <= self.cameras <= 9, "cameras must be in 1..9 (one digit in the file name)"),
            (1 <= self.per_camera <= 999, "per_camera must be in 1..999"),
            (32 <= self.height <= MAX_SIDE and 16 <= self.width <= MAX_SIDE,
             f"images must be from 32 x 16 to {MAX_SIDE} x {MAX_SIDE} (H x W)"),
            (0.0 <= self.vehicle_fraction <= 1.0, "vehicle_fraction must be in [0, 1]"),
            (3 <= self.palette_size <= len(PALETTE), f"palette_size must be in 3..{len(PALETTE)}"),
            (self.colour_sets >= 0, "colour_sets must be >= 0"),
            (self.scene_pool >= 1 and 1 <= self.scenes_per_camera <= self.scene_pool,
             "need scene_pool >= 1 and 1 <= scenes_per_camera <= scene_pool"),
            (self.distractor_pool >= 1, "distractor_pool must be >= 1"),
            *[(0.0 <= getattr(self, name) <= top, f"{name} must be in [0, {top:g}], got {getattr(self, name):g}")
              for name, top in LEVELS.items()],  # (NaN is in no range)
            (self.misalign >= 0 and self.rig_shift >= 0, "misalign and rig_shift must be >= 0"),
            (self.rig_shift + self.misalign <= min(self.height, self.width) / 2,
             "rig_shift + misalign must be at most half the image's shorter side"),
            (1 <= self.jpeg_quality <= 100, "jpeg_quality must be in 1..100"),
        ]

    @property
    def misaligned(self) -> bool:
        """Whether NIR / TIR are warped relative to RGB at all (shift, scale and rotation)."""
        return self.misalign > 0 or self.rig_shift > 0

    @classmethod
    def preset(cls, name: str, **changes) -> SyntheticSpec:
        """A named spec (``PRESETS``) with ``changes`` applied."""
        if name not in PRESETS:
            raise ValueError(f"unknown synthetic preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
        return cls(**{**PRESETS[name], **changes})

    def pids(self, split: str) -> range:
        """1-based identities of ``split`` ("train" or "test")."""
        if split == "train":
            return range(1, self.train_ids + 1)
        if split == "test":
            return range(self.train_ids + 1, self.train_ids + self.test_ids + 1)
        raise ValueError(f"unknown split {split!r}")

    def replace(self, **changes) -> SyntheticSpec:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)


def image_name(pid: int, camera: int, index: int) -> str:
    """RGBNT201 file name ``PPPPPP_camK_III.jpg``; ``camera`` 0-based here, written 1-based."""
    return f"{pid:06d}_cam{camera + 1}_{index:03d}.jpg"


# Named specs (``--preset``). "alignment": the misalignment of real RGB-NIR-TIR rigs (docs/alignment.md):
# each camera's NIR and TIR sensors sit up to 8 px (one patch of the 8-px-patch model of
# train/configs/alignment.yaml) off its RGB sensor, plus per-image jitter of 2 px, 4 % scale and
# 3 degrees, on heavier background clutter; small images and few identities, to fit a multi-seed
# ablation on a CPU.
PRESETS: dict[str, dict] = {
    "default": {},
    "alignment": dict(train_ids=150, test_ids=50, height=64, width=32, rig_shift=8.0, misalign=2.0,
                      misalign_scale=0.04, misalign_rotation=3.0, clutter=1.5),
}
