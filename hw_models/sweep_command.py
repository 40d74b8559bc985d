"""``neuromorph sweep``: a grid of (penalty, lambda, p, seed) points or a multi-objective search, as an Optuna study
that any number of workers share (neuromorph.sweep), each point priced on a device profile.

It lives here, above both the trainer and the cost model (neuromorph imports no pricing): it hands
:func:`neuromorph.sweep.point_trainer` the pricing function. Registered through
``neuromorph.cli.COMMAND_MODULES``; ``examples/penalty_sweep.py`` adds the paper's presets to the same flags.
Imports nothing heavy until it runs.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from neuromorph.command_line import (
    HelpFormatter,
    add_json_argument,
    emit,
    log_stream,
    non_negative_float,
    output_folder,
    positive_float,
    positive_int,
)
from neuromorph.errors import NeuromorphError


def parse_point(text: str) -> tuple[str, float, float]:
    """``PENALTY:LAMBDA[:P]`` -> ``(penalty, lambda, p)``; p defaults to 1."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(f"expected PENALTY:LAMBDA[:P], got {text!r}")
    try:
        return parts[0], float(parts[1]), float(parts[2]) if len(parts) == 3 else 1.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad number in {text!r}") from None


def search_penalty(text: str) -> str:
    """``PENALTY[:P]`` of the search space, checked against the penalties the trainer offers."""
    from neuromorph.penalties import PENALTIES

    name, _, power = text.partition(":")
    if name not in PENALTIES or name == "none":
        raise argparse.ArgumentTypeError(f"unknown penalty {name!r} to search; supported: "
                                         f"{', '.join(p for p in PENALTIES if p != 'none')}")
    if power:
        try:
            if not float(power) > 0:
                raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected PENALTY[:P] with P > 0, got {text!r}") from None
    return text


def add_sweep_arguments(parser: argparse.ArgumentParser, out_required: bool = True) -> None:
    """The flags of a sweep (the ``sweep`` command's, and examples/penalty_sweep.py's beside its presets)."""
    from neuromorph.augment import AUGMENTATIONS
    from neuromorph.data import DATASETS
    from neuromorph.schedules import LR_SCHEDULES
    from neuromorph.sweep import OBJECTIVES, SEARCH_SAMPLERS

    data = parser.add_argument_group("data and model")
    data.add_argument("--dataset", choices=list(DATASETS), default="mnist", help="dataset")
    data.add_argument("--data-root", metavar="DIR", help="folder holding the datasets (as for neuromorph train)")
    data.add_argument("--model", choices=["mlp", "cnn"], default="mlp", help="architecture")
    data.add_argument("--preset", metavar="NAME",
                      help="a network of neuromorph presets with its recipe (its dataset, model, T, epochs, lr, "
                      "schedule, batch size, weight decay, augmentation; --epochs, --lr, --batch-size override)")
    data.add_argument("--sizes", type=positive_int, nargs="+",
                      help="hidden sizes (mlp, default 400) or conv channels (cnn, default 16 32)")
    data.add_argument("--time-steps", type=positive_int,
                      help="simulation steps T (default 16; with --preset: the preset's network at this T)")
    data.add_argument("--epochs", type=positive_int, help="epochs per point (default 5)")
    data.add_argument("--batch-size", type=positive_int, help="batch size (default 128)")
    data.add_argument("--lr", type=positive_float, help="Adam learning rate (default 1e-3)")
    data.add_argument("--lr-schedule", choices=list(LR_SCHEDULES), help="learning-rate schedule (default: the "
                      "preset's, else constant)")
    data.add_argument("--weight-decay", type=non_negative_float, metavar="W",
                      help="decoupled weight decay, AdamW (default: the preset's, else 0)")
    data.add_argument("--augment", choices=list(AUGMENTATIONS),
                      help="training-batch augmentation (default: the preset's, else none)")
    data.add_argument("--train-limit", type=positive_int, metavar="N", help="train on the first N samples only")
    data.add_argument("--test-limit", type=positive_int, metavar="N", help="evaluate on the first N test samples")
    data.add_argument("--profile", default="loihi1", help="device profile for the energy column and objective")
    data.add_argument("--device", default="auto", help="cpu, cuda or auto (a GPU when there is one)")
    data.add_argument("--threads", type=positive_int, metavar="N",
                      help="torch threads (default: one per idle core); run one worker per core with --threads 1")
    grid = parser.add_argument_group("grid")
    grid.add_argument("--points", nargs="+", type=parse_point, metavar="PENALTY:LAMBDA[:P]",
                      help="the points to run, each once per seed (with --search: run before the sampled trials)")
    grid.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of every point")
    grid.add_argument("--extra-seeds-within", type=float, metavar="POINTS",
                      help="once the first pass is complete, run --extra-seeds for the baseline (none:0) and for "
                           "the points whose mean accuracy lies within POINTS percentage points of the baseline's")
    grid.add_argument("--extra-seeds", type=int, nargs="+", default=[1, 2], help="seeds of --extra-seeds-within")
    search = parser.add_argument_group("multi-objective search")
    search.add_argument("--search", choices=SEARCH_SAMPLERS,
                        help="sample the points: maximize accuracy, minimize --objective (Pareto front: "
                             "study.best_trials)")
    search.add_argument("--trials", type=positive_int, help="with --search: trials in the study in all")
    search.add_argument("--objective", choices=list(OBJECTIVES), default="synops",
                        help="; ".join(f"{name}: {what}" for name, (_, what) in OBJECTIVES.items()))
    search.add_argument("--penalties", type=search_penalty, nargs="+", default=["spikes", "synaptic", "synaptic:2"],
                        metavar="PENALTY[:P]", help="with --search: the penalties it chooses among")
    search.add_argument("--lam-range", type=positive_float, nargs=2, default=[1e-7, 1e-4], metavar=("LOW", "HIGH"),
                        help="with --search: lambda, log-uniform, on the synaptic penalty's scale (times the mean "
                             "fan-out for the spike count, times p for the synaptic penalty)")
    study = parser.add_argument_group("study")
    study.add_argument("--storage", metavar="URL",
                       help="Optuna storage shared by the workers: sqlite:///FILE, postgresql://USER@HOST/DB, "
                            "mysql://... (default: sqlite in OUT/study.db)")
    study.add_argument("--study-name", help="study name in the storage (default: the name of the --out folder)")
    study.add_argument("--report-only", action="store_true",
                       help="train nothing: draw the table, results.json and plot from the study as it stands "
                       "(while workers run)")
    study.add_argument("--heartbeat", type=positive_int, default=60, metavar="S",
                       help="seconds between a running trial's heartbeats; one silent for 3 beats is retried")
    parser.add_argument("--out", required=out_required, type=output_folder, metavar="DIR",
                        help="folder for results.json, pareto.png, study.db and trials/<point>/")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep", help="a grid or multi-objective search of penalty settings, shared by many workers (Optuna)",
        description="Train a grid of PENALTY:LAMBDA[:P] points at each seed, or search lambda and the penalty for "
                    "the accuracy/SynOps (or energy) Pareto front, as an Optuna study. Start one worker per core "
                    "or machine with the same flags: each point runs once; a finished point is not trained again; "
                    "a killed worker's point is retried and resumes from its checkpoint.",
        formatter_class=HelpFormatter)
    add_sweep_arguments(parser)
    add_json_argument(parser, "results.json's content")
    parser.set_defaults(handler=run)


# TrainConfig settings a preset's recipe may hold that the sweep's own flags set
FLAG_SETTINGS = ("epochs", "lr", "batch_size")
# recipe settings that flags override, beside or without a preset (recorded in the study's settings.recipe)
RECIPE_FLAGS = ("lr_schedule", "weight_decay", "augment")


def apply_preset(args: argparse.Namespace) -> None:
    """``--preset NAME``: the preset's dataset, and its recipe where the flags left a setting unset; ``--sizes`` is
    refused beside it (the preset is the model), ``--time-steps`` runs the preset's network at another T."""
    if not getattr(args, "preset", None):
        return
    from neuromorph.presets import get_preset

    preset = get_preset(args.preset)
    if args.sizes:
        raise NeuromorphError(f"--preset {preset.name} sets the model: drop --sizes")
    args.dataset = preset.dataset
    for name in FLAG_SETTINGS:
        if getattr(args, name) is None and name in preset.settings:
            setattr(args, name, preset.settings[name])


def build_spec(args: argparse.Namespace):
    from neuromorph.data import dataset_info
    from neuromorph.spec import cnn_spec, mlp_spec

    info = dataset_info(args.dataset)
    if getattr(args, "preset", None):
        from neuromorph.presets import get_preset

        spec = get_preset(args.preset).spec(info.input_shape, info.num_classes)
        return replace(spec, time_steps=args.time_steps) if args.time_steps else spec
    common: dict[str, Any] = dict(input_shape=info.input_shape, num_classes=info.num_classes,
                                  time_steps=args.time_steps or 16)
    if args.model == "mlp":
        return mlp_spec(hidden=tuple(args.sizes or (400,)), **common)
    return cnn_spec(channels=tuple(args.sizes or (16, 32)), **common)


def settings_from_args(args: argparse.Namespace, spec):
    """The sweep's fixed settings (what its study records and checks) from the flags."""
    from neuromorph.config import TrainConfig
    from neuromorph.sweep import SweepSettings

    recipe = {}
    if getattr(args, "preset", None):
        from neuromorph.presets import get_preset

        recipe = {k: v for k, v in get_preset(args.preset).settings.items() if k not in FLAG_SETTINGS}
    recipe.update({name: getattr(args, name) for name in RECIPE_FLAGS if getattr(args, name, None) is not None})
    # a setting at training's own default is left out, so that --augment none reads back a study made without one
    defaults = TrainConfig()
    recipe = {name: value for name, value in recipe.items() if value != getattr(defaults, name)}
    return SweepSettings(
        spec=spec.to_dict(), dataset=args.dataset, epochs=args.epochs or 5, batch_size=args.batch_size or 128,
        lr=args.lr or 1e-3, recipe=recipe,
        train_limit=args.train_limit, test_limit=args.test_limit, profile=args.profile, objective=args.objective,
        mode=args.search or "grid", penalties=tuple(args.penalties) if args.search else (),
        lam_range=tuple(args.lam_range) if args.search else ())


def study_name(args: argparse.Namespace) -> str:
    return args.study_name or Path(args.out).absolute().name


def pricer(dataset: str, profile: str, test_split, device: str):
    """Energy per inference of a trained point on ``profile`` (hw_models' cost model, on the test split)."""
    from hw_models.energy_report import energy_report

    def price(model, point) -> dict[str, Any]:
        estimate = energy_report(model, dataset=dataset, profiles=[profile], split=test_split, device=device,
                                 seed=point.seed).estimates[0]
        return {"energy_j": estimate.total_j, "dynamic_j": estimate.dynamic_j, "static_j": estimate.static_j,
                "ann_j": estimate.ann.energy_j, "profile": profile}

    return price


def run(args: argparse.Namespace, title: str | None = None) -> int:
    """Run a worker of the sweep the flags describe, then report from the study (table, results.json, plot)."""
    from sqlalchemy.exc import SQLAlchemyError

    from neuromorph import sweep

    url = args.storage or sweep.default_storage(args.out)
    try:
        return _run(args, url, title)
    except SQLAlchemyError as error:
        raise NeuromorphError(f"study storage {sweep.redact(url)}: {sweep._first_line(error)}") from None


def _plan(args: argparse.Namespace, settings, fan_out: float):
    from neuromorph.sweep import BASELINE, Plan, Point

    if args.search is None and not args.points:
        raise NeuromorphError("give --points (a grid) or --search with --trials")
    if args.search is not None and args.trials is None:
        raise NeuromorphError("--search needs --trials N")
    if args.search is None and args.trials is not None:
        raise NeuromorphError("--trials is for --search")
    if args.extra_seeds_within is not None:
        if args.search is not None:
            raise NeuromorphError("--extra-seeds-within is for a grid, not --search")
        if not any(penalty == BASELINE for penalty, _, _ in args.points):
            raise NeuromorphError("--extra-seeds-within needs the baseline point none:0 among --points")
    seeds = list(dict.fromkeys(args.seeds))
    points = [Point(penalty, lam, power, seed) for penalty, lam, power in (args.points or []) for seed in seeds]
    for point in dict.fromkeys(p.setting for p in points):
        from neuromorph.config import TrainConfig

        TrainConfig(penalty=point[0], lam=point[1], power=point[2])  # refuse a bad point before any training
    low, high = args.lam_range
    if args.search and not low < high:
        raise NeuromorphError(f"--lam-range needs LOW < HIGH, got {low:g} {high:g}")
    return Plan(settings, points, trials=args.trials, search_seed=seeds[0], fan_out=fan_out,
                extra_seeds=tuple(s for s in dict.fromkeys(args.extra_seeds) if s not in seeds),
                extra_within=args.extra_seeds_within)


def budget_line(spec, settings, plan, train_samples: int, test_samples: int) -> str:
    """The grid's compute budget, estimated before it starts from a few training steps measured here
    (:mod:`neuromorph.budget`; random images, so real data's spike rates may move it either way)."""
    from neuromorph.budget import estimate_grid, estimate_run, measure_step_seconds
    from neuromorph.config import TrainConfig

    config = TrainConfig(dataset=settings.dataset, batch_size=settings.batch_size, lr=settings.lr,
                         penalty="synaptic", lam=1e-9, **settings.recipe)
    timing = measure_step_seconds(spec, config, steps=3, warmup=1)
    run = estimate_run(timing, settings.epochs, train_samples, test_samples)
    count = len(plan.points) if plan.trials is None else plan.trials
    extra = ""
    if plan.extra_within is not None and plan.extra_seeds:
        extra = f" (+ {run.seconds / 3600:.2f} h per extra seed of a point near the baseline)"
    return (f"budget: {count} run(s) x {run.seconds / 60:.1f} min = {estimate_grid([run] * count):.2f} CPU hours "
            f"estimated from {timing.train_seconds_per_sample * 1e3:.2f} ms per training sample with "
            f"{timing.threads} thread(s) here{extra}")


def _run(args: argparse.Namespace, url: str, title: str | None) -> int:
    from neuromorph import sweep
    from neuromorph.data import load_split
    from neuromorph.devices import resolve_device, set_threads
    from neuromorph.io import write_json

    log_to = log_stream(args)

    def log(text: str) -> None:
        print(text, file=log_to, flush=True)

    set_threads(args.threads)
    device = str(resolve_device(args.device))
    from hw_models.energy_report import resolve_profiles

    resolve_profiles([args.profile])  # a bad profile is refused before any training
    apply_preset(args)
    spec = build_spec(args)
    settings = settings_from_args(args, spec)
    epochs = settings.epochs
    plan = _plan(args, settings, sweep.mean_fan_out(spec))
    name = study_name(args)
    storage = sweep.open_storage(url, heartbeat_s=args.heartbeat)
    study = sweep.open_study(storage, name, settings)
    train_split = load_split(args.dataset, True, args.data_root, args.train_limit)
    test_split = load_split(args.dataset, False, args.data_root, args.test_limit)
    out = Path(args.out)
    log(f"{spec.name} on {args.dataset}: study {name!r} in {sweep.redact(url)}, "
        + (f"{len(plan.points)} grid point(s)" if not args.search else f"{args.search} search of {args.trials} trials")
        + f", {epochs} epochs each, {len(train_split)} training / {len(test_split)} test images")
    if not args.report_only:
        log(budget_line(spec, settings, plan, len(train_split), len(test_split)))
        run_point = sweep.point_trainer(spec, settings, train_split, test_split, device,
                                        pricer(args.dataset, args.profile, test_split, device), args.data_root, log)
        ran = sweep.run_worker(study, plan, run_point, out, sweep.machine_info(device), log)
        log(f"this worker ran {ran} trial(s)")

    records = sweep.study_records(study)
    if not records:
        emit(args, "no point finished yet", None)
        return 0
    groups = sweep.summarize(records.values())
    document = sweep.results_document(study, records, groups, url)
    write_json(out / sweep.RESULTS_FILE, document)
    title = title or f"{spec.name} on {args.dataset}"
    sweep.plot_pareto(groups, out / sweep.PLOT_FILE, f"{title}: accuracy against cost", args.profile)
    failed = [t for t in study.get_trials(deepcopy=False)
              if t.state.name == "FAIL" and "error" in t.user_attrs and t.user_attrs["key"] not in records]
    text = sweep.report_text(groups, args.profile, f"\n{title}, {epochs} epochs, T={spec.time_steps}, "
                                                   f"{len(train_split)} training / {len(test_split)} test images")
    text += "".join(f"\nfailed: trial {t.number} {t.user_attrs['key']}: {t.user_attrs['error']}" for t in failed)
    if args.search:
        text += "\nPareto front (study.best_trials): " + ", ".join(
            f"trial {t['trial']} {t['key']}" for t in document["best_trials"])
    emit(args, f"{text}\nresults: {out / sweep.RESULTS_FILE}   plot: {out / sweep.PLOT_FILE}", document)
    return 0
