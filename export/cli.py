"""``neuromorph export``: write a checkpoint as a NIR graph or as lava-dl netx HDF5 (Loihi fixed point).
``neuromorph import-nir``: the other way, a NIR graph (from this project or another tool) as a checkpoint.

Registered through ``neuromorph.cli.COMMAND_MODULES``. Imports nothing heavy at module level.
"""

from __future__ import annotations

import argparse

from export.nir_targets import TARGET_NAMES, target_help
from neuromorph.command_line import (
    HelpFormatter,
    add_data_arguments,
    add_json_argument,
    emit,
    log_stream,
    output_checkpoint,
    output_file,
    positive_int,
)
from neuromorph.errors import NeuromorphError

FORMATS = ("nir", "netx")


def add_parser(subparsers) -> None:
    from export.nir_import import NIR_SOURCES
    from neuromorph.checkpoint import CHECKPOINT_NAME
    from neuromorph.data import DATASETS

    parser = subparsers.add_parser(
        "export", help="export a checkpoint to NIR or to lava-dl netx (Loihi fixed point)",
        description="NIR: the float network as a NIR graph (dt and units in its metadata), re-importable here "
                    "(import-nir); of this generic file Norse's from_nir reads the MLPs and the sum-pool CNNs, "
                    "not avg-pool CNNs, and maps the CubaLI readout to identity. With --for "
                    "norse|snntorch|spikingjelly the same network is rewritten exactly in the "
                    "form that framework's importer reads (its time step, its parameter convention, a never-firing "
                    "CubaLIF for the readout, the pool kind it maps), with one line on what the target cannot "
                    "represent; refused with one error line where the rewrite would not be exact. A Loihi-exact model "
                    "exports its effective weights on the 8-bit grid (said in the metadata). netx: Loihi fixed "
                    "point (8-bit even weights, 12-bit decays), pooling folded into the next layer, direct input "
                    "computed on the host, readout as a never-spiking CUBA layer; prints the quantization report "
                    "(scales, weight error, and spike bins that differ from the float model on --samples test inputs, "
                    "from a numpy reference of Lava's arithmetic). Writes are atomic.",
        formatter_class=HelpFormatter)
    parser.add_argument("checkpoint", help="checkpoint file or training output folder")
    parser.add_argument("--format", choices=FORMATS, required=True, help="output format")
    parser.add_argument("--out", required=True, type=output_file, metavar="FILE", help="file to write")
    parser.add_argument("--for", dest="nir_for", choices=TARGET_NAMES, default=TARGET_NAMES[0],
                        help=f"nir: the importer the file is for; {target_help()}")
    parser.add_argument("--samples", type=int, default=16, metavar="N",
                        help="netx: test samples for the report's fixed-point vs float comparison (0 = none)")
    add_data_arguments(parser)
    parser.add_argument("--lava-check", type=int, default=0, metavar="N",
                        help="netx: also run the written file in Lava on N of the samples and check that the numpy "
                             "reference gives exactly Lava's spikes (about 10 s each)")
    parser.add_argument("--report", type=output_file, metavar="FILE",
                        help="netx: also write the quantization report as JSON")
    add_json_argument(parser, "the netx quantization report")
    parser.set_defaults(handler=run_export)

    imports = subparsers.add_parser(
        "import-nir", help="turn a NIR graph (from neuromorph, Norse, snnTorch, ...) into a checkpoint",
        description="Read a NIR graph and write it as a neuromorph checkpoint, so that evaluate, energy, export "
                    "(netx) and simulate work on it, and `train --init-from` fine-tunes it. The graph must be a "
                    "feed-forward chain Input -> (Linear|Affine|Conv2d [-> pooling/flatten] -> CubaLIF|LIF)* -> "
                    "Linear|Affine -> CubaLI|LI -> Output (a CubaLIF or LIF with v_threshold = inf, which never "
                    "fires, is read as that readout); unsupported nodes are refused by name. Graphs written by "
                    "`neuromorph export --format nir` carry their time step and step count; for others give --dt "
                    "(and --time-steps), or --source with the exporter that wrote it (its dt, its known errors "
                    "fixed).", formatter_class=HelpFormatter)
    imports.add_argument("graph", metavar="FILE.nir", help="NIR file to read")
    imports.add_argument("--out", required=True, type=output_checkpoint, metavar="DIR",
                         help=f"folder for {CHECKPOINT_NAME} (or a file name ending in .pt)")
    imports.add_argument("--dt", type=float, metavar="SECONDS",
                         help="simulation time step (default: the graph's metadata dt_s; required without it)")
    imports.add_argument("--time-steps", type=positive_int, metavar="T",
                         help="time steps per sample (default: the graph's metadata, else 16)")
    imports.add_argument("--source", choices=list(NIR_SOURCES), default="neuromorph",
                         help="the tool whose exporter wrote the graph: "
                              + "; ".join(f"{name}: {row.note}" for name, row in NIR_SOURCES.items()))
    imports.add_argument("--dataset", choices=list(DATASETS),
                         help="dataset the network is for, recorded as the default of the other commands")
    add_json_argument(imports, "the imported model description")
    imports.set_defaults(handler=run_import)


def run_export(args: argparse.Namespace) -> int:
    from neuromorph.run import open_run

    if args.samples < 0 or args.lava_check < 0:
        raise NeuromorphError("--samples and --lava-check must be >= 0")
    run = open_run(args.checkpoint, args.dataset, args.data_root)
    ckpt, model = run.checkpoint, run.model
    log = log_stream(args)
    if args.format == "nir":
        return _export_nir(args, ckpt, model)
    if args.nir_for != TARGET_NAMES[0]:
        raise NeuromorphError("--for applies to --format nir only")

    from export.netx_export import netx_bytes
    from export.quantization_report import quantization_report, reference_inputs
    from export.quantize import quantize
    from neuromorph.io import atomic_write, write_json

    x = run.test_samples(args.samples)[0].contiguous() if args.samples else None
    qnet = quantize(model, calibration=x)  # the samples also calibrate the readout's scale
    data = netx_bytes(qnet)  # everything that can fail runs before anything is written
    report = quantization_report(model, qnet, x)
    path = atomic_write(args.out, lambda handle: handle.write(data))
    print(report.format(), file=log)
    if args.lava_check:
        _lava_check(path, qnet, reference_inputs(qnet, x[:, :args.lava_check]) if x is not None else None, log)
    if args.report:
        write_json(args.report, report.to_dict())
    emit(args, f"wrote netx file {path} ({qnet.input_kind} input)", report.to_dict())
    return 0


def _export_nir(args: argparse.Namespace, ckpt, model) -> int:
    from export.nir_targets import NIR_TARGETS, write_nir_for

    description = f"neuromorph {ckpt.spec.name} from {args.checkpoint}, epoch {ckpt.epoch}"
    path, limits = write_nir_for(model, args.out, args.nir_for, description)
    target = NIR_TARGETS.get(args.nir_for)
    dt = target.dt_s if target else ckpt.spec.dt_s
    weights = "; Loihi-exact: weights on its 8-bit grid" if ckpt.spec.fixed_point is not None else ""
    lines = [f"wrote NIR graph {path} for {args.nir_for} (dt {dt} s, {ckpt.spec.time_steps} steps{weights})"]
    if target:
        lines += [f"load: {target.load}", f"cannot represent: {limits}"]
    emit(args, "\n".join(lines), {"path": str(path), "for": args.nir_for, "dt_s": dt, "limits": limits,
                                  "load": target.load if target else ""})
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


def _fit_input(model, expected: tuple[int, ...], dataset: str):
    """Give a graph that takes flat vectors (as most MLP exports do) the dataset's image shape and a Flatten."""
    import dataclasses
    import math

    from neuromorph.models import build_model
    from neuromorph.spec import Flatten

    spec = model.spec
    if tuple(spec.input_shape) == expected:
        return model
    if len(spec.input_shape) != 1 or spec.input_shape[0] != math.prod(expected):
        raise NeuromorphError(f"{dataset} images are {expected}, the graph takes {tuple(spec.input_shape)}")
    fitted = build_model(dataclasses.replace(spec, input_shape=expected, layers=(Flatten(), *spec.layers)))
    fitted.load_state_dict(model.state_dict())  # the flatten is a pass-through: the weights keep their names
    return fitted.eval()


def run_import(args: argparse.Namespace) -> int:
    import math
    from pathlib import Path

    from export.nir_import import from_nir_source, read_nir
    from neuromorph.checkpoint import CHECKPOINT_NAME, Checkpoint, save_checkpoint
    from neuromorph.config import TrainConfig

    if args.dt is not None and not (math.isfinite(args.dt) and args.dt > 0):
        raise NeuromorphError(f"--dt must be a positive number of seconds, got {args.dt}")
    model, notes = from_nir_source(read_nir(args.graph), args.source, dt_s=args.dt, time_steps=args.time_steps)
    for note in notes:
        print(note, file=log_stream(args))
    dataset = {}
    if args.dataset:
        from neuromorph.data import dataset_info

        model = _fit_input(model, tuple(dataset_info(args.dataset).input_shape), args.dataset)
        dataset = {"dataset": args.dataset}
    config = TrainConfig(imported_from=str(args.graph), **dataset)
    ckpt = Checkpoint(spec=model.spec, model_state=model.state_dict(), train_config=config.to_dict())
    ckpt.build_model()  # refuses NaN or infinite weights before anything is written
    out = Path(args.out)
    path = save_checkpoint(out if out.suffix == ".pt" else out / CHECKPOINT_NAME, ckpt)
    spec = model.spec
    layers = " -> ".join(type(layer).__name__.lower() for layer in spec.layers)
    emit(args, f"imported {args.graph}: {layers}, input {list(spec.input_shape)}, {spec.num_classes} classes, "
               f"{spec.neuron.cell} neurons, dt {spec.dt_s} s, {spec.time_steps} steps\nwrote checkpoint {path}",
         {"checkpoint": str(path), "spec": spec.to_dict()})
    return 0
