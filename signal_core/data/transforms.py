"""Image loading (incl. the RGBNT100 side-by-side split) and the authors' train / test transforms.

Authors' pipelines (``make_dataloader.py``), applied INDEPENDENTLY to each modality:

* train: Resize(H, W, bicubic) -> RandomHorizontalFlip(0.5) -> Pad(10) -> RandomCrop(H, W)
  -> ToTensor -> Normalize(0.5, 0.5) -> RandomErasing(0.5, mode='pixel')
  (their timm-style erasing: one box, area 0.02-1/3, aspect log-uniform in [0.3, 1/0.3], 10 tries,
  per-pixel N(0, 1) fill: exactly torchvision's ``v2.RandomErasing(value="random")`` draw)
* test: Resize(H, W, bilinear) -> ToTensor -> Normalize(0.5, 0.5)

``paired=True`` (opt-in, not the authors') shares one random draw (flip, crop offset, erasing box
and fill) across the three modalities, keeping them pixel-aligned: torchvision v2 transforms draw
their parameters once when given several images together.

``rig_shift=M`` (opt-in, not the authors'; training only) then moves NIR's and TIR's content each by its
own random integer displacement, uniform in [-M, M] px per axis, the uncovered border filled by
reflection (as the synthetic generator's rig shift): a misaligned rig simulated per triple, the
augmentation baseline of a model without registration (docs/alignment.md).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageFile
from torch import Tensor
from torchvision.transforms import v2

from .errors import DatasetError
from .images import ImageDecodeError, decode_image

ImageFile.LOAD_TRUNCATED_IMAGES = True  # as the authors: a few dataset JPEGs are truncated

ImageTriple = tuple[Image.Image, Image.Image, Image.Image]
TensorTriple = tuple[Tensor, Tensor, Tensor]
PANEL_WIDTH = 256  # RGBNT100: [RGB | NI | TI] panels of 256 columns each (768 x 128 image)
NORM_MEAN = (0.5, 0.5, 0.5)
NORM_STD = (0.5, 0.5, 0.5)


def load_image(path: str | Path) -> Image.Image:
    """Open an image file as a 3-channel 8-bit RGB PIL image, through the one decoder of every entry
    point (:func:`signal_core.data.images.decode_image`): EXIF orientation applied, alpha composited on
    black, grey / palette / CMYK converted, 16- and 32-bit images stretched by their min / max. For the
    datasets' plain 8-bit files this is PIL's ``convert("RGB")``, as in the authors' code.

    Raises:
        DatasetError: if the file is missing or cannot be decoded.
    """
    if not Path(path).is_file():
        raise DatasetError(f"image file '{path}' does not exist; re-check the dataset folder "
                           "(was it moved after parsing?)")
    try:
        return Image.fromarray(decode_image(path))
    except ImageDecodeError as err:
        raise DatasetError(f"image file '{path}' cannot be read ({err}); replace or remove it") from None


def split_panels(img: Image.Image, path: str | Path = "<image>") -> ImageTriple:
    """Split an RGBNT100 768-wide image into its (RGB, NI, TI) 256-wide panels.

    The authors crop absolute boxes ``(0,0,256,128)``, ``(256,0,512,128)``, ``(512,0,768,128)``;
    we crop the same columns over the full height (identical for the 768 x 128 dataset images).

    Raises:
        DatasetError: if the image is not 768 pixels wide.
    """
    if img.width != 3 * PANEL_WIDTH:
        raise DatasetError(f"RGBNT100 image '{path}' is {img.width}x{img.height} (W x H); expected "
                           f"{3 * PANEL_WIDTH} wide = [RGB | NI | TI] panels of {PANEL_WIDTH} columns")
    return tuple(img.crop((i * PANEL_WIDTH, 0, (i + 1) * PANEL_WIDTH, img.height))  # type: ignore[return-value]
                 for i in range(3))


def load_triple(paths: Sequence[str]) -> ImageTriple:
    """Load the (RGB, NIR, TIR) images of one record.

    Args:
        paths: three paths; three identical paths mean one RGBNT100 side-by-side image.

    Returns:
        Three RGB-mode PIL images.
    """
    if len(paths) != 3:
        raise DatasetError(f"a record needs exactly 3 image paths (RGB, NIR, TIR), got {len(paths)}: {paths}")
    if paths[0] == paths[1] == paths[2]:
        return split_panels(load_image(paths[0]), paths[0])
    return tuple(load_image(p) for p in paths)  # type: ignore[return-value]


class TripleTransform:
    """Apply a torchvision v2 pipeline to the three modalities, independently or with one shared draw.

    Args:
        pipeline: a v2 transform from PIL image(s) to normalised tensor(s).
        paired: share the random draw across the three modalities.
    """

    def __init__(self, pipeline: Callable, paired: bool = False) -> None:
        self.pipeline = pipeline
        self.paired = paired

    def __call__(self, images: Sequence[Image.Image]) -> TensorTriple:
        """Transform (RGB, NIR, TIR) PIL images into three ``[3, H, W]`` float tensors."""
        out = self.pipeline(tuple(images)) if self.paired else tuple(self.pipeline(img) for img in images)
        return tuple(t.as_subclass(Tensor) for t in out)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"TripleTransform(paired={self.paired}, pipeline={self.pipeline})"


def shift_content(image: Tensor, dx: int, dy: int) -> Tensor:
    """[C, H, W] with its content moved by (dx, dy) px, ``out(p + d) = image(p)``; the uncovered border is
    filled by reflection. A zero displacement returns ``image`` itself."""
    if dx == 0 and dy == 0:
        return image
    h, w = image.shape[-2:]
    m = max(abs(dx), abs(dy))
    padded = F.pad(image[None], (m, m, m, m), mode="reflect")[0]
    return padded[:, m - dy:m - dy + h, m - dx:m - dx + w]


class RigShiftTransform:
    """A :class:`TripleTransform` followed by a random rig shift of NIR and TIR (module docstring).

    Args:
        inner: the transform of the three modalities.
        max_shift: the largest displacement per axis, in pixels (> 0).
        generator: the random source (None: torch's global one, reseeded per data-loader worker).
    """

    def __init__(self, inner: TripleTransform, max_shift: int, generator: torch.Generator | None = None) -> None:
        self.inner, self.max_shift, self.generator = inner, int(max_shift), generator

    def __call__(self, images: Sequence[Image.Image]) -> TensorTriple:
        rgb, nir, tir = self.inner(images)
        shifts = torch.randint(-self.max_shift, self.max_shift + 1, (2, 2), generator=self.generator).tolist()
        return rgb, shift_content(nir, *shifts[0]), shift_content(tir, *shifts[1])

    def __repr__(self) -> str:
        return f"RigShiftTransform(max_shift={self.max_shift}, inner={self.inner})"


def _to_normalised_tensor(mean: Sequence[float], std: Sequence[float]) -> list:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]


def build_train_transform(image_size: tuple[int, int], paired: bool = False, flip_prob: float = 0.5,
                          padding: int = 10, erasing_prob: float = 0.5,
                          mean: Sequence[float] = NORM_MEAN, std: Sequence[float] = NORM_STD) -> TripleTransform:
    """The authors' training augmentation (see module docstring).

    Args:
        image_size: (H, W) of the network input.
        paired: share flip / crop / erasing across modalities (default False = authors).
        flip_prob: horizontal-flip probability (``INPUT.PROB``).
        padding: zero padding before the random crop (``INPUT.PADDING``).
        erasing_prob: random-erasing probability (``INPUT.RE_PROB``); 0 disables it.
        mean: normalisation mean.
        std: normalisation std.
    """
    size = [int(image_size[0]), int(image_size[1])]
    erasing = ([v2.RandomErasing(erasing_prob, scale=(0.02, 1 / 3), ratio=(0.3, 1 / 0.3), value="random")]
               if erasing_prob > 0 else [])
    pipeline = v2.Compose([
        v2.Resize(size, interpolation=v2.InterpolationMode.BICUBIC),
        v2.RandomHorizontalFlip(flip_prob),
        v2.Pad(padding),
        v2.RandomCrop(size),
        *_to_normalised_tensor(mean, std),
        *erasing,
    ])
    return TripleTransform(pipeline, paired)


def build_test_transform(image_size: tuple[int, int], mean: Sequence[float] = NORM_MEAN,
                         std: Sequence[float] = NORM_STD) -> TripleTransform:
    """The authors' evaluation transform: bilinear resize to (H, W), to tensor, normalise."""
    size = [int(image_size[0]), int(image_size[1])]
    pipeline = v2.Compose([v2.Resize(size, interpolation=v2.InterpolationMode.BILINEAR),
                           *_to_normalised_tensor(mean, std)])
    return TripleTransform(pipeline)


def build_transforms(image_size: tuple[int, int], train: bool, paired: bool = False, rig_shift: int = 0,
                     **kwargs) -> TripleTransform | RigShiftTransform:
    """Train or test transform; ``kwargs`` go to :func:`build_train_transform` (or mean / std for test);
    ``rig_shift`` > 0 (training only) adds :class:`RigShiftTransform` of that many pixels at most.

    Raises:
        ValueError: ``rig_shift`` outside [0, half the shorter image side), or given for the test transform.
    """
    limit = min(int(image_size[0]), int(image_size[1])) // 2
    if not 0 <= rig_shift < limit:
        raise ValueError(f"rig_shift_augment must be from 0 to {limit - 1} px for {image_size[0]} x {image_size[1]} "
                         f"inputs (reflection needs less than half the shorter side), got {rig_shift}.")
    if not train:
        if rig_shift:
            raise ValueError("rig_shift is a training augmentation; the test transform has none.")
        return build_test_transform(image_size, **kwargs)
    transform = build_train_transform(image_size, paired=paired, **kwargs)
    return RigShiftTransform(transform, rig_shift) if rig_shift else transform
