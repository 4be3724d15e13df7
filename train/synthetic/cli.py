"""``python -m train.synthetic --out DIR [...]``: generate a benchmark, optionally demo assets and a sheet."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..cli import command_main, command_parser
from ..flags import output_file, output_folder, real, whole
from .demo_export import export_demo_assets
from .sheet import contact_sheet
from .spec import PRESETS, SyntheticSpec
from .writer import generate


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _preset_name(argv) -> str:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default="default")
    name = pre.parse_known_args(argv)[0].preset
    return name if name in PRESETS else "default"  # the full parser reports an unknown one


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options; every spec field has a flag whose default is the chosen preset's (a whole or
    finite number, not negative, checked here; the spec checks its own ranges)."""
    d = SyntheticSpec.preset(_preset_name(argv))
    p = command_parser("python -m train.synthetic",
                                description="Generate the procedural RGB / NIR / TIR ReID benchmark (RGBNT201 layout). "
                                            "Every difficulty level 0 disables that difficulty.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, type=output_folder,
                   help="output folder (gets train_171/, test/, synthetic.json)")
    p.add_argument("--preset", default="default", choices=sorted(PRESETS),
                   help="named spec whose values the other flags default to (alignment: camera-rig shifts)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a benchmark (demo assets) generated before in --out (--demo-assets): only the files "
                        "its synthetic.json (demo.json) lists are removed; any other file there stops the run")
    p.add_argument("--seed", type=whole(0), default=d.seed, help="master seed")
    p.add_argument("--train-ids", type=whole(0), default=d.train_ids, help="train identities")
    p.add_argument("--test-ids", type=whole(0), default=d.test_ids, help="test identities")
    p.add_argument("--cameras", type=whole(0), default=d.cameras, help="cameras (1..9)")
    p.add_argument("--per-camera", type=whole(0), default=d.per_camera, help="images per identity and camera")
    p.add_argument("--height", type=whole(0), default=d.height, help="image height")
    p.add_argument("--width", type=whole(0), default=d.width, help="image width")
    p.add_argument("--vehicle-fraction", type=real(0), default=d.vehicle_fraction,
                   help="fraction of vehicle identities")
    p.add_argument("--palette-size", type=whole(0), default=d.palette_size, help="shared colours (3..12)")
    p.add_argument("--colour-sets", type=whole(0), default=d.colour_sets,
                   help="3-colour sets shared by identities (0: free colours per identity)")
    p.add_argument("--viewpoint", type=real(0), default=d.viewpoint,
                   help="[0,1] probability of a random side per camera + scale/position/pose jitter")
    p.add_argument("--illumination", type=real(0), default=d.illumination,
                   help="[0,4] per-camera RGB colour cast / brightness / gamma / gradient strength")
    p.add_argument("--night", type=real(0), default=d.night, help="[0,1] fraction of night images (dark noisy RGB)")
    p.add_argument("--clutter", type=real(0), default=d.clutter,
                   help="[0,2] background scenes and distractor objects (0: plain background)")
    p.add_argument("--misalign", type=real(0), default=d.misalign, help="max NIR/TIR shift vs RGB (pixels)")
    p.add_argument("--misalign-scale", type=real(0), default=d.misalign_scale,
                   help="[0,0.5] max relative NIR/TIR scale change (used when --misalign or --rig-shift > 0)")
    p.add_argument("--rig-shift", type=real(0), default=d.rig_shift,
                   help="max fixed NIR/TIR shift per camera rig (pixels, per axis)")
    p.add_argument("--misalign-rotation", type=real(0), default=d.misalign_rotation,
                   help="[0,30] max per-image NIR/TIR rotation (degrees)")
    p.add_argument("--noise", type=real(0), default=d.noise,
                   help="[0,10] sensor noise level (sigma about 0.016 x level)")
    p.add_argument("--jpeg-quality", type=whole(0), default=d.jpeg_quality, help="JPEG quality")
    p.add_argument("--demo-assets", metavar="OUT", type=output_folder,
                   help="also export query/gallery demo folders from the test split")
    p.add_argument("--demo-ids", type=whole(1), default=30, help="identities in the demo export")
    p.add_argument("--sheet", metavar="PNG", type=output_file,
                   help="also write a contact sheet of a few test identities")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def spec_from_args(args: argparse.Namespace) -> SyntheticSpec:
    """The spec of the parsed options (raises ValueError when invalid)."""
    names = {f.name for f in dataclasses.fields(SyntheticSpec)}
    return SyntheticSpec(**{k: v for k, v in vars(args).items() if k in names})


def run(args: argparse.Namespace) -> None:
    """Generate what the flags ask for and print a summary of each part."""
    spec = spec_from_args(args)
    summary = generate(spec, args.out, progress=not args.no_progress, overwrite=args.overwrite)
    size = _dir_bytes(Path(args.out))
    print(f"wrote {summary['train_triples']} train + {summary['test_triples']} test triples "
          f"({summary['train_ids']} + {summary['test_ids']} ids, {summary['cameras']} cameras, "
          f"{summary['vehicle_ids']} vehicles, {summary['night_images']} night) to {args.out}: "
          f"{size / 2**20:.1f} MiB in {summary['seconds']:.1f} s")
    if args.demo_assets:
        demo = export_demo_assets(args.out, args.demo_assets, num_ids=args.demo_ids, overwrite=args.overwrite)
        print(f"demo assets: {demo['ids']} ids, {demo['query']} queries, {demo['gallery']} gallery triples, "
              f"{demo['bytes'] / 2**20:.2f} MiB in {demo['out_dir']}")
    if args.sheet:
        print(f"contact sheet: {contact_sheet(spec, args.sheet)}")


def main(argv=None) -> int:
    """Run the CLI; returns the exit status (2 with ``error: ...`` on stderr for bad input)."""
    return command_main(parse_args, run, argv)
