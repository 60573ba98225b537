"""The ``rtresponse`` command line: cohort validation, sample data, the demo.

Bad input ends with one line ``rtresponse: error: ...`` on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from . import __version__
from .errors import RTResponseError

EXIT_BAD_INPUT = 2


class _Progress:
    """A tqdm bar fed by ``progress(done, total)`` callbacks (quiet when not on a terminal)."""

    def __init__(self, description: str):
        self.description = description
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.description, unit="patient", file=sys.stderr,
                            disable=not sys.stderr.isatty())
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _validate(args) -> int:
    from .cohort import validate_manifest

    progress = _Progress("reading images")
    try:
        problems = validate_manifest(args.manifest, read_images=not args.quick, progress=progress)
    finally:
        progress.close()
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {args.manifest}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{args.manifest}: no problems found")
    return 0


def _sample_data(args) -> int:
    from . import sampledata

    options = {}
    if args.kind == "synthetic":
        options = {"n_patients": args.patients, "seed": args.seed, "signal": args.signal}
        progress = _Progress("writing patients")
        options["progress"] = progress
    else:
        progress = None
        options = {"sdist": args.sdist, "cache": args.cache}
    try:
        manifest = sampledata.write(args.kind, args.out, **options)
    finally:
        if progress:
            progress.close()
    print(manifest)
    return 0


def _demo(args) -> int:
    from .demo import run

    progress = _Progress("writing patients")
    try:
        result = run(args.out, n_patients=args.patients, seed=args.seed, progress=progress)
    finally:
        progress.close()
    print(result.summary.read_text(), end="")
    print(f"wrote {result.scene}")
    return 0


def _features(args) -> int:
    from .atomic import atomic_path
    from .cohort import load_manifest

    if args.kind != "handcrafted":
        raise RTResponseError(f"feature kind '{args.kind}' is not available yet")
    from .features.handcrafted import STATUS, extract_cohort

    cohort = load_manifest(args.manifest)
    progress = _Progress("extracting features")
    try:
        table = extract_cohort(cohort, image=args.image, mask=args.mask, settings=args.params or args.preset,
                               n_jobs=args.jobs, perturbations=args.perturbations, random_state=args.seed,
                               progress=progress)
    finally:
        progress.close()
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp)
    failed = table[table[STATUS] != "ok"]
    features = len([c for c in table.columns if c != STATUS])
    print(f"wrote {args.out}: {len(table)} row(s) x {features} feature(s); {len(failed)} failed")
    for index, status in failed[STATUS].items():
        print(f"  {index}: {status}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtresponse",
        description="Radiotherapy response prediction from planning CT, MR and FDG-PET/CT "
                    "(the library behind the RadiotherapyResponse 3D Slicer extension).")
    parser.add_argument("--version", action="version", version=f"rtresponse {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    validate = commands.add_parser(
        "validate", help="check a cohort manifest and print every problem (exit code 2 if any)",
        description="Check a cohort manifest: columns, patient ids, files, readable images, empty masks, "
                    "mask geometry. Prints one line per problem; exit code 2 when there is any.")
    validate.add_argument("--manifest", required=True, type=Path, help="cohort manifest CSV")
    validate.add_argument("--quick", action="store_true", help="check structure and files only; do not read images")
    validate.set_defaults(func=_validate)

    sample = commands.add_parser(
        "sample-data", help="write a sample cohort (synthetic, or PyRadiomics' real cases) with its manifest",
        description="Write a sample cohort and its manifest.csv into --out. 'synthetic' is generated (seeded, "
                    "with a planted image signal); 'pyradiomics' is PyRadiomics' five real MR/CT cases, fetched "
                    "once from PyPI into the user cache and verified by checksum.")
    sample.add_argument("--kind", required=True, choices=("synthetic", "pyradiomics"))
    sample.add_argument("--out", required=True, type=Path, help="output folder")
    sample.add_argument("--patients", type=int, default=24, help="synthetic: number of patients (default 24)")
    sample.add_argument("--seed", type=int, default=0, help="synthetic: random seed (default 0)")
    sample.add_argument("--signal", type=float, default=1.0,
                        help="synthetic: strength of the planted image-outcome signal (0 = none; default 1)")
    sample.add_argument("--sdist", type=Path, help="pyradiomics: use this downloaded pyradiomics_bhklab-3.1.4.tar.gz")
    sample.add_argument("--cache", type=Path, help="pyradiomics: cache folder (default ~/.cache/rtresponse/...)")
    sample.set_defaults(func=_sample_data)

    features = commands.add_parser(
        "features", help="extract features for every patient of a cohort into a CSV",
        description="Extract features for every patient of a manifest: one row per patient (index patient_id), "
                    "one column per feature, and a 'status' column ('ok' or why that patient failed; the others "
                    "complete). With several --image, columns are prefixed with the image name.")
    features.add_argument("--kind", required=True, choices=("handcrafted",), help="feature family")
    features.add_argument("--manifest", required=True, type=Path, help="cohort manifest CSV")
    features.add_argument("--image", required=True, action="append",
                          help="image name (the NAME of an image_NAME column); repeat for several sequences")
    features.add_argument("--mask", required=True, help="mask name (the NAME of a mask_NAME column)")
    features.add_argument("--preset", default="pyradiomics-default",
                          help="handcrafted: preset name (ct-tanaka, mr-jeong, pyradiomics-default)")
    features.add_argument("--params", type=Path, help="handcrafted: a PyRadiomics parameter file (overrides --preset)")
    features.add_argument("--perturbations", type=int, default=0,
                          help="also extract on N perturbed masks per patient (long table for robustness/ICC)")
    features.add_argument("--seed", type=int, default=0, help="random seed of the perturbations")
    features.add_argument("--jobs", type=int, default=1, help="patients in parallel (default 1)")
    features.add_argument("--out", required=True, type=Path, help="output CSV")
    features.set_defaults(func=_features)

    demo = commands.add_parser(
        "demo", help="make the synthetic cohort, a Slicer scene (scene.mrb) and a summary",
        description="Make the synthetic sample cohort in OUT/cohort, build a scene with its first patient's "
                    "volumes and contours and the cohort's clinical table, and write OUT/scene.mrb and "
                    "OUT/summary.md.")
    demo.add_argument("--out", required=True, type=Path, help="output folder")
    demo.add_argument("--patients", type=int, default=8, help="number of synthetic patients (default 8)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except RTResponseError as error:
        print(f"rtresponse: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("rtresponse: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
