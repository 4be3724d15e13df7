"""Procedural multi-modal ReID benchmark (RGB / NIR / TIR triples) in the RGBNT201 folder layout.

``python -m train.synthetic --out DIR`` writes the default benchmark (seed 0, 600 train + 100 test
identities, 4 cameras, 2 images per identity and camera, 128 x 64 images; about 25 s on one core,
73 MiB of JPEGs):

    DIR/train_171/{RGB,NI,TI}/PPPPPP_camK_III.jpg    PPPPPP = 1-based identity, K = 1-based camera,
    DIR/test/{RGB,NI,TI}/PPPPPP_camK_III.jpg         III = image index within (identity, camera)
    DIR/synthetic.json                               the full spec + per-image metadata (written last)

``signal_core.data.load_dataset("rgbnt201", DIR)`` reads it (query = gallery = test set, camera
protocol). Train and test identities are disjoint (train 1..N, test N+1..N+M).

What the benchmark tests (the three things Signal is about) and why a colour histogram fails:

* Objects: each identity is person-like (head, hair, torso, arms, legs, shoes, optional hat, chest
  logo, shoulder bag or backpack) or vehicle-like (body, cabin, windows, wheels, lights, plate,
  optional roof box and decal). Every part has its own colour and texture (plain / stripes / checks /
  dots, with orientation and period). Colours come from a small shared palette, and identities are
  grouped into "colour sets" of three colours: the identities of one set have the SAME colours,
  arranged differently over the parts, so identity lies in the spatial arrangement, not in the
  global colour distribution. Surfaces carry per-image folds / shading and fine grain.
* NIR: per-part reflectance drawn independently from the RGB colour, with its own texture (a plain
  RGB shirt can be striped in NIR); skin and vegetation are bright, glass dark, plates retro-reflective.
* TIR: per-identity heat pattern (warm skin, clothing heat by insulation, hot engine / wheels /
  exhaust for vehicles, plus a few smooth warm blobs per identity); cool background, hot lamps; blurry.
* Background: every camera sees a few scenes from a POOL shared by all identities (walls, ground,
  windows, poles, bushes, lamps, each with its own NIR reflectance and TIR heat), plus distractor
  objects (poles, bins, signs, bikes, lamps, car fronts, other pedestrians) from a shared pool that
  partially overlap or occlude the object. Background is camera-specific, so matching on it matches
  the camera, not the identity: this is the interference that token selection should remove.
* Misalignment: NIR and TIR are shifted and scaled by a few pixels relative to RGB, independently
  per image (what local deformable alignment should absorb).

Difficulty switches (``SyntheticSpec`` field = CLI flag; level 0 disables that difficulty):

* ``viewpoint`` (``--viewpoint``, default 1): probability that a camera sees an identity from a
  random side (front / back / left / right; parts such as the backpack, logo or face are visible
  only from some sides), and the amount of scale, position, pose (leg spread, arm swing) and shear
  jitter, and per-image cloth folds. 0: always front, centred, fixed scale, neutral pose, fixed folds.
* ``illumination`` (``--illumination``, default 1): per-camera RGB colour cast, brightness, gamma
  and a brightness gradient (plus small per-image jitter); NIR gain and TIR offset vary a little.
  0: no change.
* ``night`` (``--night``, default 0.25): fraction of images taken at night: RGB dark, blue-cast and
  noisy, NIR unchanged (active illumination), TIR unchanged. 0: no night image.
* ``clutter`` (``--clutter``, default 1, up to 2): background scenes (texture contrast and number
  of shapes) and distractor objects (about 1.2 x level per image, some in front of the object).
  0: plain uniform background, no distractors.
* ``misalign`` (``--misalign``, default 3 pixels) and ``misalign_scale`` (``--misalign-scale``,
  default 0.04): NIR and TIR shift (uniform in +-misalign px per axis) and scale (1 +- misalign_scale)
  relative to RGB, independent per image and modality. ``misalign 0`` disables both.
* ``rig_shift`` (``--rig-shift``, default 0) and ``misalign_rotation`` (``--misalign-rotation``, default
  0): a fixed NIR / TIR shift per camera rig (uniform in +-rig_shift px per axis, the same for every
  image of that camera) and a per-image rotation in degrees. ``--preset alignment`` sets them (see
  ``spec.PRESETS`` and docs/alignment.md); every image's warp is recorded in ``synthetic.json``
  (``nir_shift`` / ``tir_shift``, and ``*_scale`` / ``*_rotation`` when these are on).
* ``noise`` (``--noise``, default 1): Gaussian sensor noise in every modality (sigma about 4 / 255 x
  level). 0: none (night images keep their own low-light noise, part of the night switch).

Determinism: identity appearance depends only on (seed, pid); the random draws of one image come from
``numpy.random.SeedSequence([seed, aspect, split, pid, camera, index])``, one stream per aspect
(pose, placement, background, night, noise, misalignment...), so results never depend on the order
of generation, and switching one difficulty does not change the draws of the others. The same spec
gives byte-identical files (JPEG via ``cv2.imencode``, fixed quality).

``--demo-assets OUT`` also exports a small query / gallery set from the test split for the demo, and
``--sheet PNG`` a contact sheet of a few identities.

Modules, by stage (each imports only the ones above it):

    palette, streams, spec     colours and texture kinds; named random streams; the spec and file names
    identity                   per-identity part styles and shape (a function of seed and pid)
    canvas, person, vehicle    drawing primitives; the person and vehicle drawings on a label canvas
    appearance                 an identity's canonical RGB / NIR / TIR render
    scene, distractors, camera background scenes; distractor objects; per-camera view, light, geometry
    render                     one frame: placement, background, compositing, light, night, misalignment, noise
    writer, demo_export, sheet the dataset on disk; demo query / gallery folders; a contact sheet
    cli (+ __main__)           ``python -m train.synthetic``
"""
from .appearance import render_object
from .camera import view_of
from .cli import main
from .demo_export import export_demo_assets
from .identity import Identity, PartStyle, make_identity
from .render import Frame, render_frame
from .sheet import contact_sheet
from .spec import (
                   GENERATOR,
                   GENERATOR_VERSION,
                   MODALITY_DIRS,
                   SPLIT_DIRS,
                   VIEWS,
                   SyntheticSpec,
                   image_name,
)
from .writer import encode_jpeg, generate, read_spec

__all__ = [
                   "GENERATOR",
                   "GENERATOR_VERSION",
                   "MODALITY_DIRS",
                   "SPLIT_DIRS",
                   "VIEWS",
                   "Frame",
                   "Identity",
                   "PartStyle",
                   "SyntheticSpec",
                   "contact_sheet",
                   "encode_jpeg",
                   "export_demo_assets",
                   "generate",
                   "image_name",
                   "main",
                   "make_identity",
                   "read_spec",
                   "render_frame",
                   "render_object",
                   "view_of",
]
