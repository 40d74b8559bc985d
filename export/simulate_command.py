"""``neuromorph simulate``: run a checkpoint on Lava's simulator and compare it with the model, layer by layer.

Registered through ``neuromorph.cli.COMMAND_MODULES``. Imports nothing heavy at module level.
"""

from __future__ import annotations

import argparse
import json
import sys

from neuromorph.errors import NeuromorphError


def add_parser(subparsers) -> None:
    from export.lava_sim import PRECISIONS
    from neuromorph.cli import add_data_arguments, positive_int

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
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("checkpoint", help="checkpoint file or training output folder (what `neuromorph train` "
                                           "writes; the netx network is derived from it as `export` does)")
    add_data_arguments(parser, dataset_default=None)
    parser.add_argument("--samples", type=positive_int, default=100, metavar="N", help="first N test samples")
    parser.add_argument("--precision", choices=PRECISIONS, default="fixed",
                        help="fixed: Loihi fixed point through netx; float: plain Lava float processes")
    parser.add_argument("--copies", type=positive_int, metavar="K",
                        help="samples side by side in one network (default: as many as fit, up to 32)")
    parser.add_argument("--batch", type=positive_int, default=64, metavar="B",
                        help="samples per compiled network (the progress bar moves per network)")
    parser.add_argument("--device-profile", action="append", dest="profiles", metavar="NAME|FILE",
                        help="device profile for the energy comparison; repeat for several "
                             "(default: loihi1 and loihi1-calibrated)")
    parser.add_argument("--out", metavar="DIR", help="also write DIR/parity.json and DIR/parity_raster.png")
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from export.lava_sim import load_lava
    from export.parity import DEFAULT_PROFILES, JSON_NAME, RASTER_NAME, load_samples, simulate_model
    from export.quantize import quantize
    from hw_models.energy_report import resolve_profiles
    from neuromorph.checkpoint import load_checkpoint

    profiles = args.profiles or list(DEFAULT_PROFILES)
    resolve_profiles(profiles)  # refuse bad input before Lava starts (its import prints to stderr)
    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.build_model().eval()
    dataset = args.dataset or ckpt.train_config.get("dataset", "mnist")
    x, labels = load_samples(ckpt.spec, dataset, args.samples, args.data_root,
                             seed=int(ckpt.train_config.get("seed", 0)))
    qnet = quantize(model, calibration=x) if args.precision == "fixed" else None
    try:  # before tqdm, which fixes the multiprocessing start method that Lava sets on import
        load_lava()
    except NeuromorphError:
        raise
    except Exception as error:  # noqa: BLE001 - a broken Lava install fails in many ways
        raise NeuromorphError(f"Lava could not be imported: {type(error).__name__}: {error}") from None
    log = sys.stderr if args.json else sys.stdout
    bar = tqdm(total=int(x.shape[1]), desc=f"Lava {args.precision}", unit="sample",
               disable=args.quiet or args.json, leave=False, file=sys.stderr)

    def progress(done: int) -> None:
        bar.update(done - bar.n)

    try:
        report, _ = simulate_model(model, x, labels, args.precision, dataset, qnet=qnet, copies=args.copies,
                                   batch=args.batch, profiles=profiles, out_dir=args.out, progress=progress,
                                   checkpoint=str(args.checkpoint))
    finally:
        bar.close()
    print(report.format(), file=log)
    if args.out:
        print(f"written: {args.out}/{JSON_NAME}  {args.out}/{RASTER_NAME}", file=log)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    return 0
