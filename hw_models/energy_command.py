"""``neuromorph energy``: what a trained network would cost on a chip, and against the equivalent ANN.

Registered through ``neuromorph.cli.COMMAND_MODULES``; imports nothing heavy until it runs.
"""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers) -> None:
    from neuromorph.cli import add_data_arguments, positive_int

    parser = subparsers.add_parser(
        "energy", help="energy per inference on device profiles, against the equivalent ANN, and core mapping",
        description="Count the activity of a checkpoint on test data (synaptic operations, MACs of the analog input "
                    "layer, neuron updates, spikes, messages), price it on device profiles (each constant with its "
                    "source and kind), compare with the equivalent ANN, and map the network on Loihi 1/2 cores.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("checkpoint", help="checkpoint file or training output folder")
    add_data_arguments(parser, dataset_default=None)
    parser.add_argument("--device-profile", action="append", metavar="NAME|FILE", dest="profiles",
                        help="device profile: a built-in name or a .toml/.json file; repeat for several "
                             "(default: every built-in profile with published constants)")
    parser.add_argument("--samples", type=positive_int, metavar="N", help="first N test samples (default: all)")
    parser.add_argument("--batch-size", type=positive_int, default=256)
    parser.add_argument("--device", default="cpu", help="where to run the model: cpu, cuda or auto")
    parser.add_argument("--seed", type=int, default=0, help="seed of the Poisson encoder's noise")
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    parser.add_argument("--out", metavar="DIR", help="also write DIR/energy.json and DIR/energy.png")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from hw_models.energy_report import energy_report, resolve_profiles
    from neuromorph.checkpoint import load_checkpoint

    profiles = resolve_profiles(args.profiles)  # refuse bad profiles before loading any data
    ckpt = load_checkpoint(args.checkpoint)
    dataset = args.dataset or ckpt.train_config.get("dataset", "mnist")
    report = energy_report(ckpt.build_model(), dataset=dataset, profiles=profiles, samples=args.samples,
                           data_root=args.data_root, batch_size=args.batch_size, device=args.device, seed=args.seed,
                           progress=not args.quiet and not args.json)
    report.checkpoint = str(args.checkpoint)
    if args.out:
        written = report.write(args.out)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.text())
        if args.out:
            print("\nwritten: " + "  ".join(str(p) for p in written))
    return 0
