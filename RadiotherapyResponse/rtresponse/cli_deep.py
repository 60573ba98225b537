"""Command-line parts of the deep-learning features: ``features --kind deep2d``, ``gradcam``, ``labels``,
``weights``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import options
from .errors import RTResponseError
from .inputs import read_table
from .outputs import FILE, FOLDER, Output, writes

WEIGHT_CHOICES = "imagenet, random, or a weights file"
# the options of `features` only deep2d uses (left out of a handcrafted run's provenance)
DEEP_OPTIONS = ("model", "weights", "device", "batch_size", "amp", "top_k", "context", "size_mm", "level", "width",
                "zscore_from", "no_zscore", "weights_folder")
# handcrafted-only options of `features` (left out of a deep2d run's provenance)
HANDCRAFTED_OPTIONS = ("preset", "params", "perturbations")
IMPLAUSIBLE_RATE = 0.1  # a regression-rate threshold above 10 %/day (0.1 per day) is most likely a percentage
GRADCAM_TABLE = "gradcam.csv"  # in the gradcam command's folder: patient_id, file, preview, weights, status


def _weights(value: str):
    return None if value == "random" else value


def add_network_options(group) -> None:
    """The network, its weights and the slice preprocessing: options of ``features --kind deep2d`` and ``gradcam``."""
    group.add_argument("--model", default="inception_resnet_v2",
                       help="network of the zoo (see `rtresponse weights list`; default inception_resnet_v2)")
    group.add_argument("--weights", default="imagenet",
                       help=f"{WEIGHT_CHOICES} (random: seeded random weights, for testing only; default imagenet)")
    group.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default auto (GPU if any)")
    group.add_argument("--context", default="mask", choices=("mask", "keep"),
                       help="beyond the paper: 'keep' keeps the tissue around the GTV (default mask, as the paper)")
    group.add_argument("--size-mm", type=options.POSITIVE, default=100.0, help="crop size in mm (default 100)")
    group.add_argument("--level", type=options.FINITE, default=50.0, help="window level in HU (default 50)")
    group.add_argument("--width", type=options.POSITIVE, default=350.0, help="window width in HU (default 350)")
    group.add_argument("--weights-folder", type=Path, help="where ImageNet weights are looked for")


def add_feature_options(features: argparse.ArgumentParser) -> None:
    """Options of ``rtresponse features`` that only the deep kinds use."""
    deep = features.add_argument_group("deep2d (Tanaka et al.: frozen ImageNet CNN on the max-area GTV slice)")
    add_network_options(deep)
    deep.add_argument("--batch-size", type=options.COUNT, default=16, help="slices per network batch (default 16)")
    deep.add_argument("--amp", action="store_true", help="mixed precision (bfloat16; float16 on GPUs without bfloat16)")
    deep.add_argument("--top-k", type=options.COUNT, default=1,
                      help="beyond the paper: average the features of the k largest GTV slices (default 1)")
    deep.add_argument("--zscore-from", type=Path,
                      help="z-score with these statistics (the .zscore.csv written with a training cohort)")
    deep.add_argument("--no-zscore", action="store_true",
                      help="write the network's raw outputs (default: z-scored over this cohort, as the paper; "
                           "no OUT.zscore.csv is written)")


def zscore_path(out: Path) -> Path:
    """The statistics file written beside a feature table: ``F.csv`` -> ``F.zscore.csv``."""
    return out.with_name(out.stem + ".zscore.csv")


def deep_features(args, progress) -> "tuple":
    """Run ``features --kind deep2d``; returns (table, extra files written: the z-score statistics, unless
    ``--no-zscore``).

    The table and the z-score statistics carry a ``weights`` column ("random (seed 0)" or the weights file and
    the start of its SHA-256); the run's provenance gets the network, the weights record, the preprocessing,
    the device and the statistics file used.
    """
    from . import provenance
    from .atomic import atomic_path
    from .cohort import load_manifest
    from .features.deep2d import WEIGHTS, extract_cohort

    if len(args.image) != 1:
        raise RTResponseError("deep2d takes one --image (the CT)")
    if args.no_zscore and args.zscore_from:
        raise RTResponseError("--no-zscore and --zscore-from exclude each other: give one")
    provenance.note(args, "unused", list(HANDCRAFTED_OPTIONS) + ([] if args.weights == "random" else ["seed"]))
    statistics, made_with = None, None
    if args.zscore_from:
        statistics = read_table(args.zscore_from, "the z-score statistics")
        statistics = statistics.set_index(statistics.columns[0])
        if WEIGHTS in statistics.columns:
            made_with = sorted(set(statistics[WEIGHTS].dropna().astype(str)))
            statistics = statistics.drop(columns=WEIGHTS)
        provenance.note(args, "zscore_from", {"file": args.zscore_from,
                                              "sha256": provenance.sha256_file(args.zscore_from),
                                              "weights": made_with})
    table = extract_cohort(load_manifest(args.manifest), image=args.image[0], mask=args.mask, model=args.model,
                           weights=_weights(args.weights), device=args.device, batch_size=args.batch_size,
                           amp=args.amp, size_mm=args.size_mm, level=args.level, width=args.width,
                           context=args.context, top_k=args.top_k, seed=args.seed,
                           weights_folder=args.weights_folder, standardize=not args.no_zscore,
                           statistics=statistics, progress=progress, n_jobs=args.jobs,
                           execution=args.scheduler or None)
    label = str(table[WEIGHTS].iloc[0])
    if made_with and made_with != [label]:
        print(f"rtresponse: warning: the z-score statistics {args.zscore_from} were made with weights "
              f"{', '.join(made_with)}; these features with {label}", file=sys.stderr)
    if label.startswith("random"):
        print(f"rtresponse: warning: {label} weights: features for testing only, not for analysis",
              file=sys.stderr)
    if args.no_zscore:
        return table, []
    stats_file = zscore_path(args.out)
    with atomic_path(stats_file) as tmp:
        table.attrs["zscore"].assign(**{WEIGHTS: label}).to_csv(tmp)
    return table, [stats_file]


def _map_file(pid: str, taken: set) -> str:
    """``<patient>_gradcam.nrrd``, the patient id made safe as a file name and unique among ``taken`` (lower case);
    its preview is the same name ending ``.png``."""
    base = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(pid)) or "patient"
    name, n = f"{base}_gradcam.nrrd", 1
    while name.lower() in taken:
        n += 1
        name = f"{base}_{n}_gradcam.nrrd"
    taken.add(name.lower())
    return name


def _check_preview(args) -> None:
    """Previews need Matplotlib: say so before any computing (or --no-preview)."""
    if args.no_preview:
        return
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RTResponseError("the PNG previews need Matplotlib (pip install matplotlib); or pass --no-preview") \
            from None


def _gradcam(args) -> int:
    """``rtresponse gradcam``: a Grad-CAM map per patient (NRRD on the patient's image grid) and gradcam.csv."""
    import pandas as pd

    from . import provenance
    from .atomic import atomic_path
    from .cohort import load_manifest
    from .execution import Execution
    from .features.deep2d import gradcam_cohort, model_spec, weights_provenance
    from .features.deep2d.extraction import device_record, network_record, weights_column
    from .imageio import write_image
    from .progress import Bar
    from .settings import resolve_device

    _check_preview(args)
    spec, weights = model_spec(args.model), _weights(args.weights)
    provenance.note(args, "unused", [] if weights is None else ["seed"])
    cohort = load_manifest(args.manifest)
    bar, rows, taken, seen, record = Bar("computing Grad-CAM maps"), [], set(), {}, {}

    def keep(pid, image, crop, values):  # what the network saw, for the preview
        seen[pid] = (image, crop, values)

    runner = Execution(args.scheduler or None)  # one task per patient, here or on the cluster
    try:
        for pid, heat, status in gradcam_cohort(
                cohort, image=args.image, mask=args.mask, model=spec.name, weights=weights,
                target=args.unit, device=args.device, size_mm=args.size_mm, level=args.level, width=args.width,
                context=args.context, seed=args.seed, weights_folder=args.weights_folder, patients=args.patient,
                progress=bar, on_map=None if args.no_preview else keep, execution=runner):
            file = _map_file(pid, taken) if heat is not None else ""
            preview = ""
            if heat is not None:
                write_image(heat, args.out / file)
                if pid in seen:
                    if not record:  # the network is built by now: its weights file exists
                        record.update(weights_provenance(spec, weights, args.seed, args.weights_folder))
                    preview = _write_preview(args, cohort, pid, *seen.pop(pid), spec.name,
                                             weights_column(record), args.out / file.replace(".nrrd", ".png"))
            rows.append({"patient_id": pid, "file": file, "preview": preview, "status": status})
        provenance.note(args, "execution", runner.describe())
    finally:
        runner.close()
        bar.close()
    table = pd.DataFrame(rows, columns=["patient_id", "file", "preview", "status"]).set_index("patient_id")
    failed = table[table["status"] != "ok"]
    if len(failed) == len(table):
        raise RTResponseError(f"no Grad-CAM map could be made: {failed['status'].iloc[0]}" if len(table)
                              else "no patient in the manifest")
    record = record or weights_provenance(spec, weights, args.seed, args.weights_folder)
    table.insert(2, "weights", weights_column(record))
    provenance.note(args, "network", network_record(spec))
    provenance.note(args, "weights", record)
    provenance.note(args, "device", device_record(resolve_device(args.device)))
    provenance.note(args, "target", "the strongest output unit of each slice" if args.unit is None
                    else f"output unit {args.unit}")
    with atomic_path(args.out / GRADCAM_TABLE) as tmp:
        table.to_csv(tmp)
    previews = int((table["preview"] != "").sum())
    print(f"wrote {args.out}: {len(table) - len(failed)} Grad-CAM map(s) of {len(table)} patient(s)"
          + (f" with {previews} PNG preview(s)" if previews else "") + f"; {len(failed)} failed")
    for pid, status in failed["status"].items():
        print(f"  {pid}: {status}", file=sys.stderr)
    if weights is None:
        print(f"rtresponse: warning: {table['weights'].iloc[0]} weights: maps for testing only, not for analysis",
              file=sys.stderr)
    return 0


def _write_preview(args, cohort, pid, image, crop, values, network: str, weights_label: str, path: Path) -> str:
    """OUT/<patient>_gradcam.png: the slice as the network saw it, the map, the GTV's contour; its file name."""
    from .previews import write_gradcam_preview

    gtv = cohort.read_mask(pid, args.mask, image=args.image, reference=image)
    detail = (f"slice {crop.slice_index} of the {crop.grid_spacing_mm:g} mm grid; window {args.level:g}/"
              f"{args.width:g} HU; context {args.context}")
    write_gradcam_preview(path, crop, values, gtv, pid, network, weights_label, detail)
    return path.name


def rate_text(rate: float) -> str:
    """A regression rate in the unit ``--threshold`` takes, and in %/day: ``0.01691 per day (1.691 %/day)``."""
    return f"{rate:.4g} per day ({rate * 100:.4g} %/day)"


def check_rate(value: float | None, option: str = "--threshold") -> None:
    """One warning line on stderr when a rate threshold is implausible as a fraction per day (a percentage?)."""
    if value is not None and abs(value) > IMPLAUSIBLE_RATE:
        print(f"rtresponse: warning: {option} {value:g} is a fraction of the initial volume per day, "
              f"{value * 100:g} %/day: implausible for tumour regression; did you mean {value / 100:g} "
              f"({value:g}/100)?", file=sys.stderr)


def _labels(args) -> int:
    from .atomic import atomic_path
    from .cli import note_library_record
    from .cohort import load_manifest
    from .labels import label_cohort

    from .cli import _Progress

    check_rate(args.threshold)
    bar = _Progress("reading GTV volumes")
    try:
        table = label_cohort(load_manifest(args.manifest), initial=args.initial, boost=args.boost, days=args.days,
                             threshold=args.threshold, min_volume_cc=args.min_volume_cc, image=args.image,
                             execution=args.scheduler or None, progress=bar)
    finally:
        bar.close()
    note_library_record(args, table)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp)
    ok = table["status"] == "ok"
    source = "given" if args.threshold is not None else "the median rate"
    print(f"wrote {args.out}: {int(ok.sum())} labelled patient(s) ({int(table['regression'].sum())} regressing), "
          f"{int((~ok).sum())} excluded; threshold {rate_text(table.attrs['threshold'])}, {source}")
    for pid, status in table.loc[~ok, "status"].items():
        print(f"  {pid}: {status}", file=sys.stderr)
    return 0


def _weights_command(args) -> int:
    from .features.deep2d import MODELS, find_weights, model_spec
    from .settings import default_weights_folder

    folder = args.weights_folder or default_weights_folder()
    if args.action == "list":
        print(f"weights folder: {folder}")
        for name, spec in MODELS.items():
            found = find_weights(spec, folder)
            state = f"found {found}" if found else "missing" if spec.weights else "none published"
            print(f"{spec.describe()}\n    ImageNet weights: {state}")
        return 0
    if not args.names:
        raise RTResponseError(f"name the network(s) to {args.action}")
    for name in args.names:
        spec = model_spec(name)
        print(_download(spec, folder) if args.action == "download" else find_weights(spec, folder) or f"{name}: missing")
    return 0


def _download(spec, folder):
    from .features.deep2d import download_weights

    try:
        return download_weights(spec, folder)
    except RTResponseError:
        raise
    except Exception as error:  # noqa: BLE001 - urllib, huggingface_hub and OS errors alike: no download
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise RTResponseError(f"cannot download the ImageNet weights of '{spec.name}' ({reason}); without internet "
                              f"access put the file {spec.weights.get('file')} into {folder / spec.name} by hand") \
            from None


def add_commands(commands) -> None:
    gradcam = commands.add_parser(
        "gradcam", help="Grad-CAM maps of a deep-feature network on each patient's max-area GTV slice",
        description="For every patient of a manifest (or each --patient): where the network of `features --kind "
                    "deep2d` looks on the largest GTV slice (Grad-CAM, values 0..1, on that slice of the patient's "
                    "image grid, 0 elsewhere). Writes OUT/<patient>_gradcam.nrrd per patient, a PNG preview "
                    "OUT/<patient>_gradcam.png (the slice as the network saw it, the map over it, the GTV's contour, "
                    "the network and whether its weights are real or random) and OUT/gradcam.csv (patient_id, "
                    "file, preview, weights, status: 'ok' or why that patient has no map).")
    gradcam.add_argument("--manifest", required=True, type=Path, help="cohort manifest CSV")
    gradcam.add_argument("--image", required=True, help="image name (the NAME of an image_NAME column; the CT)")
    gradcam.add_argument("--mask", required=True, help="mask name (the NAME of a mask_NAME column)")
    gradcam.add_argument("--patient", action="append", help="only this patient (repeatable; default all)")
    gradcam.add_argument("--unit", type=options.integer(0, 999),
                         help="explain this output unit (0-999; default the strongest unit of each slice)")
    gradcam.add_argument("--seed", type=options.SEED, default=0, help="random seed of --weights random (default 0)")
    add_network_options(gradcam.add_argument_group("network and preprocessing (as features --kind deep2d)"))
    gradcam.add_argument("--no-preview", action="store_true",
                         help="no PNG previews (default: OUT/<patient>_gradcam.png per map; needs Matplotlib)")
    gradcam.add_argument("--out", required=True, type=Path, help="output folder")
    from .cli import add_scheduler_option

    add_scheduler_option(gradcam, "the maps, one task per patient (the slice and its map come back; the volumes "
                                  "and previews are made here): ")
    gradcam.set_defaults(func=_gradcam)
    writes(gradcam, Output("out", FOLDER))

    labels = commands.add_parser(
        "labels", help="tumour-regression labels from planning and boost GTVs (Tanaka et al.)",
        description="Regression rate = (initial GTV - boost GTV) / initial GTV / treatment days, a fraction per "
                    "day (the CSV's rate column; x 100 for %/day); patients above the median rate (or --threshold, "
                    "also a fraction per day) regress. GTVs under --min-volume-cc are excluded.")
    labels.add_argument("--manifest", required=True, type=Path, help="cohort manifest CSV")
    labels.add_argument("--initial", default="GTVp", help="mask name of the planning GTV (default GTVp)")
    labels.add_argument("--boost", default="GTVp_boost", help="mask name of the boost GTV (default GTVp_boost)")
    labels.add_argument("--days", default="treatment_days",
                        help="clinical column of treatment days before the boost (default treatment_days)")
    labels.add_argument("--image", default="CT", help="image of the planning GTV (default CT)")
    labels.add_argument("--threshold", type=options.RATE,
                        help="rate threshold as a fraction of the initial GTV per day, e.g. 0.01691 for 1.691 %%/day "
                             "(default: the median rate; printed in both units)")
    labels.add_argument("--min-volume-cc", type=options.NON_NEGATIVE, default=5.0, help="exclude smaller GTVs (default 5 cm3)")
    labels.add_argument("--out", required=True, type=Path, help="output CSV")
    from .cli import add_scheduler_option

    add_scheduler_option(labels, "the patients' GTV volumes, one task per patient: ")
    labels.set_defaults(func=_labels)
    writes(labels, Output("out", FILE))

    weights = commands.add_parser(
        "weights", help="list, locate or download the ImageNet weights of the deep-feature networks",
        description="list: every network of the zoo and whether its ImageNet weights are on this computer. "
                    "where NAME: the file that would be used. download NAME: fetch the published weights "
                    "(needs internet access) into the weights folder.")
    weights.add_argument("action", choices=("list", "where", "download"))
    weights.add_argument("names", nargs="*", help="network names")
    weights.add_argument("--weights-folder", type=Path, help="default $RTRESPONSE_WEIGHTS or the cache's weights")
    weights.set_defaults(func=_weights_command)
