"""``neuromorph energy``: what a trained network would cost on a chip, and against the equivalent ANN.

Registered through ``neuromorph.cli.COMMAND_MODULES``; imports nothing heavy until it runs.
"""

from __future__ import annotations

import argparse

from neuromorph.command_line import (
    HelpFormatter,
    add_data_arguments,
    add_json_argument,
    emit,
    output_folder,
    positive_int,
)


def add_parser(subparsers) -> None:
    from hw_models.profiles import INPUT_DELIVERIES, STATIC_SCOPES

    parser = subparsers.add_parser(
        "energy", help="energy per inference on device profiles, against the equivalent ANN, and core mapping",
        description="Count the activity of a checkpoint on test data (synaptic operations, MACs of the analog input "
                    "layer, neuron updates, spikes, messages), price it on device profiles (each constant with its "
                    "source and kind), compare with the equivalent ANN, and map the network on Loihi 1/2 cores.",
        formatter_class=HelpFormatter)
    parser.add_argument("checkpoint", help="checkpoint file or training output folder")
    add_data_arguments(parser)
    parser.add_argument("--device-profile", action="append", metavar="NAME|FILE", dest="profiles",
                        help="device profile: a built-in name or a .toml/.json file; repeat for several "
                             "(default: every built-in profile with published constants)")
    parser.add_argument("--samples", type=positive_int, metavar="N", help="first N test samples (default: all)")
    parser.add_argument("--batch-size", type=positive_int, default=256, help="batch size")
    parser.add_argument("--device", default="cpu", help="where to run the model: cpu, cuda or auto")
    parser.add_argument("--seed", type=int, default=0, help="seed of the Poisson encoder's noise")
    parser.add_argument("--input-delivery", choices=INPUT_DELIVERIES, default="host-graded",
                        help="how a chip gets a direct (analog) input: host-graded (the host sends each non-zero pixel "
                             "as a graded spike every step), encoder (an on-chip encoding layer, one compartment per "
                             "pixel, on its own cores), none (not priced)")
    parser.add_argument("--static-scope", choices=STATIC_SCOPES, default="chip",
                        help="static energy charged: chip (the whole chip's leakage, paid whatever part is used) or "
                             "cores (the share of the cores the network uses); both are always reported")
    add_json_argument(parser, "the report")
    parser.add_argument("--out", type=output_folder, metavar="DIR",
                        help="also write DIR/energy.json and DIR/energy.png")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from hw_models.energy_report import energy_report, resolve_profiles
    from neuromorph.run import open_run

    profiles = resolve_profiles(args.profiles)  # refuse bad profiles before loading any data
    run = open_run(args.checkpoint, args.dataset, args.data_root)
    report = energy_report(run.model, dataset=run.dataset, profiles=profiles, samples=args.samples,
                           batch_size=args.batch_size, device=args.device, seed=args.seed,
                           split=run.test_split(args.samples), progress=not args.quiet and not args.json,
                           input_delivery=args.input_delivery, static_scope=args.static_scope)
    report.checkpoint = run.source
    written = report.write(args.out) if args.out else []
    emit(args, report.text() + ("\n\nwritten: " + "  ".join(str(p) for p in written) if written else ""),
         report.to_dict())
    return 0
