"""``neuromorph export``: write a checkpoint as a NIR graph or as lava-dl netx HDF5 (Loihi fixed point).

Registered through ``neuromorph.cli.COMMAND_MODULES``. Imports nothing heavy at module level.
"""

from __future__ import annotations

import argparse
import json
import sys

from neuromorph.errors import NeuromorphError

FORMATS = ("nir", "netx")


def add_parser(subparsers) -> None:
    from neuromorph.cli import add_data_arguments

    parser = subparsers.add_parser(
        "export", help="export a checkpoint to NIR or to lava-dl netx (Loihi fixed point)",
        description="NIR: the float network as a NIR graph (dt and units in its metadata), re-importable here and "
                    "by Norse. netx: Loihi fixed point (8-bit even weights, 12-bit decays), pooling folded into the "
                    "next layer, direct input computed on the host, readout as a never-spiking CUBA layer; prints "
                    "the quantization report (scales, weight error, and spike bins that differ from the float model "
                    "on --samples test inputs, from a numpy reference of Lava's arithmetic). Writes are atomic.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("checkpoint", help="checkpoint file or training output folder")
    parser.add_argument("--format", choices=FORMATS, required=True, help="output format")
    parser.add_argument("--out", required=True, metavar="FILE", help="file to write")
    parser.add_argument("--samples", type=int, default=16, metavar="N",
                        help="netx: test samples for the report's fixed-point vs float comparison (0 = none)")
    add_data_arguments(parser, dataset_default=None)
    parser.add_argument("--lava-check", type=int, default=0, metavar="N",
                        help="netx: also run the written file in Lava on N of the samples and check that the numpy "
                             "reference gives exactly Lava's spikes (about 10 s each)")
    parser.add_argument("--report", metavar="FILE", help="netx: also write the quantization report as JSON")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=run_export)


def _samples(ckpt, args, count: int):
    import torch

    from neuromorph.data import iterate_batches, load_split
    from neuromorph.encoders import encode

    dataset = args.dataset or ckpt.train_config.get("dataset", "mnist")
    split = load_split(dataset, train=False, root=args.data_root, limit=count)
    images, _ = next(iterate_batches(split, count, shuffle=False))
    if tuple(images.shape[1:]) != ckpt.spec.input_shape:
        raise NeuromorphError(f"{dataset} images are {tuple(images.shape[1:])}, the model takes "
                              f"{ckpt.spec.input_shape}")
    generator = torch.Generator().manual_seed(int(ckpt.train_config.get("seed", 0)))
    return encode(images, ckpt.spec, generator).contiguous()


def run_export(args: argparse.Namespace) -> int:
    from neuromorph.checkpoint import load_checkpoint

    if args.samples < 0 or args.lava_check < 0:
        raise NeuromorphError("--samples and --lava-check must be >= 0")
    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.build_model().eval()
    log = sys.stderr if args.json else sys.stdout
    if args.format == "nir":
        from export.nir_export import write_nir

        path = write_nir(model, args.out, description=f"neuromorph {ckpt.spec.name} from {args.checkpoint}, "
                                                      f"epoch {ckpt.epoch}")
        print(f"wrote NIR graph {path} (dt {ckpt.spec.dt_s} s, {ckpt.spec.time_steps} steps)", file=log)
        return 0

    from export.netx_export import netx_bytes
    from export.quantization_report import quantization_report, reference_inputs
    from export.quantize import quantize
    from neuromorph.io import atomic_write, write_json

    x = _samples(ckpt, args, args.samples) if args.samples else None
    qnet = quantize(model, calibration=x)  # the samples also calibrate the readout's scale
    data = netx_bytes(qnet)  # everything that can fail runs before anything is written
    report = quantization_report(model, qnet, x)
    path = atomic_write(args.out, lambda handle: handle.write(data))
    print(report.format(), file=log)
    if args.lava_check:
        _lava_check(path, qnet, reference_inputs(qnet, x[:, :args.lava_check]) if x is not None else None, log)
    if args.report:
        write_json(args.report, report.to_dict())
    print(f"wrote netx file {path} ({qnet.input_kind} input)", file=log)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    return 0


def _lava_check(path, qnet, inputs, log) -> None:
    import numpy as np

    from export.lava_runner import run_netx
    from export.loihi_reference import run_reference

    if inputs is None:
        raise NeuromorphError("--lava-check needs --samples > 0")
    reference = run_reference(qnet, inputs)
    for sample in range(inputs.shape[1]):
        lava = run_netx(path, qnet, inputs[:, sample])
        same = all(np.array_equal(r[:, sample], s[:, 0]) for r, s in zip(reference.spikes, lava.spikes, strict=True))
        same = same and np.array_equal(reference.readout_v[:, sample], lava.readout_v[:, 0])
        spikes = sum(int(s.sum()) for s in lava.spikes)
        print(f"Lava fixed_pt run, sample {sample}: {spikes} spikes; numpy reference "
              f"{'identical' if same else 'DIFFERS'}", file=log)
        if not same:
            raise NeuromorphError("the numpy reference does not match Lava on this network")
