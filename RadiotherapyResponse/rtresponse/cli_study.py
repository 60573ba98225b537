"""``rtresponse study init|check|run``: a whole response study from one file (see docs/study.md)."""

from __future__ import annotations

import sys
from pathlib import Path




def _init(args) -> int:
    from .atomic import write_text
    from .errors import InputError
    from .studyrun import protocol_text
    from .studyrun.schema import check

    import yaml

    out = Path(args.out)
    if out.is_dir():
        raise InputError("--out is a folder; give a file name such as study.yaml", path=str(out))
    if out.exists() and not args.overwrite:
        raise InputError("--out exists; choose a new file, or pass --overwrite to replace it", path=str(out))
    text = protocol_text(args.method, args.manifest)
    check(yaml.safe_load(text), f"the {args.method} protocol")  # what we write always validates
    write_text(out, text)
    print(f"wrote {out}: the protocol of {args.method} et al.; run it with "
          f"`rtresponse study run {out} --out STUDY_DIR`")
    return 0


def _check(args) -> int:
    from .studyrun.schema import expand_features, load_study

    study = load_study(args.study)
    sets = [entry["name"] for entry in expand_features(study["features"])]
    print(f"{args.study}: valid; {len(study['labels'])} label(s), {len(sets)} feature set(s) "
          f"({', '.join(sets) or 'none'}), {len(study['analyses'])} analys{'is' if len(study['analyses']) == 1 else 'es'}")
    return 0


def _run(args) -> int:
    from . import progress
    from .studyrun.run import RUN_RECORD, run_study
    from .studyrun.schema import load_study

    study = load_study(args.study)
    out = Path(args.out)
    try:
        result = run_study(study, out, progress_factory=lambda stage: progress.Bar(stage, unit="item"),
                           study_file=str(Path(args.study).resolve()))
    except KeyboardInterrupt:
        print(f"rtresponse: study run stopped; the completed steps are kept in {out / 'cache'}: run the same "
              "command again to resume", file=sys.stderr)
        raise
    counts = {s: result.count(s) for s in ("computed", "reused", "failed", "skipped", "not supported")}
    print(f"steps: {counts['computed']} computed, {counts['reused']} reused from the cache"
          + "".join(f", {n} {s}" for s, n in counts.items() if n and s not in ("computed", "reused")))
    for step in result.steps:
        if step.status in ("failed", "skipped"):
            print(f"  {step.kind} {step.name}: {step.status}: {step.message}", file=sys.stderr)
    print(f"wrote {result.report}")
    if result.scene:
        print(f"wrote {result.scene}")
    print(f"wrote {out / RUN_RECORD}")
    return 0


def add_commands(commands) -> None:
    from .studyrun import METHODS

    study = commands.add_parser(
        "study", help="a whole study from one file: init (a paper's protocol), check, run (cached; the report)",
        description="Run a whole response study from one YAML file (docs/study.md lists every field and default).")
    sub = study.add_subparsers(dest="study_command", metavar="ACTION", required=True)

    init = sub.add_parser(
        "init", help="write the commented study file of a paper's protocol",
        description="Write a commented study file reproducing the protocol of one of the four papers (Tanaka: "
                    "deep-feature radiomics of early regression; Jeong: handcrafted MR radiomics + clinical, split; "
                    "Hua: residual tumour per regimen; Kutnar: PET/CT recurrence). Its cohort is the synthetic "
                    "sample cohort unless --manifest names yours.")
    init.add_argument("--method", required=True, choices=METHODS, help="the paper whose protocol to write")
    init.add_argument("--out", default="study.yaml", metavar="FILE", help="study file to write (default study.yaml)")
    init.add_argument("--manifest", metavar="CSV",
                      help="your cohort manifest (written as given; relative to the study file's folder)")
    init.add_argument("--overwrite", action="store_true", help="replace an existing --out file (default: refuse)")
    init.set_defaults(func=_init)

    check = sub.add_parser("check", help="validate a study file and print what it holds",
                           description="Validate a study file against the schema; errors name the field.")
    check.add_argument("study", type=Path, metavar="STUDY.yaml", help="the study file")
    check.set_defaults(func=_check)

    run = sub.add_parser(
        "run", help="run every step of a study file (cached, resumable) and write the report",
        description="Run every step of a study file: cohort, labels, feature sets, analyses, each cached in "
                    "DIR/cache by a key of its inputs and settings (a re-run, after an interruption or a changed "
                    "setting, recomputes only what changed; a failing patient is recorded and the others "
                    "complete). Then writes DIR/report.html (self-contained), DIR/figures (PNG, SVG), DIR/tables "
                    "(CSV), DIR/study.mrb (a 3D Slicer scene) and DIR/run.json (what each step did). DIR must be "
                    "new, empty, or a study folder of an earlier run (which the run resumes).")
    run.add_argument("study", type=Path, metavar="STUDY.yaml", help="the study file")
    run.add_argument("--out", required=True, metavar="DIR", help="the study folder (new, empty, or an earlier run's)")
    run.set_defaults(func=_run)

