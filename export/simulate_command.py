"""``neuromorph simulate``: run a checkpoint on Lava's simulator and compare it with the model, layer by layer.

Registered through ``neuromorph.cli.COMMAND_MODULES``. Imports nothing heavy at module level.
"""

from __future__ import annotations

import argparse
import sys

from neuromorph.command_line import (
    HelpFormatter,
    add_data_arguments,
    add_json_argument,
    emit,
    output_folder,
    parameter_default,
    positive_int,
)
from neuromorph.errors import NeuromorphError


def add_parser(subparsers) -> None:
    from export.lava_sim import PRECISIONS
    from export.parity import DEFAULT_PROFILES, simulate_checkpoint, simulate_model

    parser = subparsers.add_parser(
        "simulate", help="run a checkpoint on the Lava simulator and report its parity with the model",
        description="Run the first N test samples through Lava (Loihi2SimCfg): in fixed point the netx network that "
                    "`neuromorph export --format netx` writes (lava-dl netx, bit-accurate), in float plain Lava "
                    "Dense/Conv/LIF processes with the exact Norse mapping. Several samples run side by side as "
                    "independent copies in one compiled network, and rounds of them back to back with the state "
                    "reset between samples. Reports per layer the share of spike bins that agree with the model "
                    "(Lava's one-step delay per synaptic layer undone), spike counts, both accuracies and the energy "
                    "re-estimated from Lava's spikes next to the model's (same cost model). A checkpoint trained "
                    "with --loihi-exact agrees with its fixed-point run exactly.",
        formatter_class=HelpFormatter)
    parser.add_argument("checkpoint", help="checkpoint file or training output folder (what `neuromorph train` "
                                           "writes; the netx network is derived from it as `export` does)")
    add_data_arguments(parser)
    parser.add_argument("--samples", type=positive_int, default=parameter_default(simulate_checkpoint, "samples"),
                        metavar="N", help="first N test samples")
    parser.add_argument("--precision", choices=PRECISIONS, default=parameter_default(simulate_model, "precision"),
                        help="fixed: Loihi fixed point through netx; float: plain Lava float processes")
    parser.add_argument("--copies", type=positive_int, metavar="K",
                        help="samples side by side in one network (default: as many as fit, up to 32)")
    parser.add_argument("--batch", type=positive_int, default=64, metavar="B",
                        help="samples per compiled network (the progress bar moves per network)")
    parser.add_argument("--device-profile", action="append", dest="profiles", metavar="NAME|FILE",
                        help="device profile for the energy comparison; repeat for several "
                             f"(default: {' and '.join(DEFAULT_PROFILES)})")
    parser.add_argument("--out", type=output_folder, metavar="DIR",
                        help="also write DIR/parity.json and DIR/parity_raster.png")
    add_json_argument(parser, "the parity report")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from export.lava_sim import load_lava
    from export.parity import DEFAULT_PROFILES, JSON_NAME, RASTER_NAME, simulate_model
    from export.quantize import quantize
    from hw_models.energy_report import resolve_profiles
    from neuromorph.progress import progress_bar
    from neuromorph.run import open_run

    profiles = args.profiles or list(DEFAULT_PROFILES)
    resolve_profiles(profiles)  # refuse bad input before Lava starts (its import prints to stderr)
    run = open_run(args.checkpoint, args.dataset, args.data_root)
    x, labels = run.test_samples(args.samples)
    qnet = quantize(run.model, calibration=x) if args.precision == "fixed" else None
    try:  # before tqdm, which fixes the multiprocessing start method that Lava sets on import
        load_lava()
    except NeuromorphError:
        raise
    except Exception as error:  # noqa: BLE001 - a broken Lava install fails in many ways
        raise NeuromorphError(f"Lava could not be imported: {type(error).__name__}: {error}") from None
    bar = progress_bar(total=int(x.shape[1]), desc=f"Lava {args.precision}", unit="sample",
               disable=args.quiet or args.json, leave=False, file=sys.stderr)

    def progress(done: int) -> None:
        bar.update(done - bar.n)

    try:
        report, _ = simulate_model(run.model, x, labels, args.precision, run.dataset, qnet=qnet, copies=args.copies,
                                   batch=args.batch, profiles=profiles, out_dir=args.out, progress=progress,
                                   checkpoint=str(args.checkpoint))
    finally:
        bar.close()
    written = f"\nwritten: {args.out}/{JSON_NAME}  {args.out}/{RASTER_NAME}" if args.out else ""
    emit(args, report.format() + written, report.to_dict())
    return 0
