"""The ``neuromorph`` command line.

Every error a user can cause ends in one line on stderr (``neuromorph: error: ...``) and a non-zero exit:
1 for a failed command, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from neuromorph.errors import NeuromorphError

EXIT_FAILURE = 1
EXIT_USAGE = 2

# Modules that add a subcommand: each has `add_parser(subparsers)` which registers it and sets `handler`.
# They must import nothing heavy at module level (no Lava, no lava-dl): handlers import what they need.
COMMAND_MODULES: list[str] = ["hw_models.energy_command", "export.cli", "export.simulate_command"]


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(EXIT_USAGE)


def int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_data_arguments(parser: argparse.ArgumentParser, dataset_default: str | None = "mnist") -> None:
    from neuromorph.data import DATA_ENV, DATASETS

    parser.add_argument("--dataset", choices=list(DATASETS), default=dataset_default,
                        help="dataset (default: %(default)s); cifar10 reads cifar-10-batches-py under --data-root")
    parser.add_argument("--data-root", metavar="DIR",
                        help=f"folder holding the datasets (default: ${DATA_ENV}, else ../shared/datasets when it "
                             "exists, read without downloading, else ~/.cache/neuromorph/datasets with download)")


def _build_parser() -> argparse.ArgumentParser:
    from neuromorph.penalties import LAMBDA_SCHEDULES, PENALTIES
    from neuromorph.spec import CELL_TYPES, ENCODER_KINDS, POOL_MODES, READOUT_REDUCTIONS

    parser = _Parser(prog="neuromorph", description="Train energy-efficient spiking neural networks with the "
                     "spiking synaptic penalty, and carry them to neuromorphic chips.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    train = sub.add_parser("train", help="train an SNN with an activity penalty",
                           description="Train an MLP or CNN of Norse LIF neurons with a non-spiking leaky-integrator "
                           "readout. The loss is cross-entropy + lambda * penalty (per sample). Writes "
                           "OUT/checkpoint.pt (weights + full model description) and OUT/metrics.json after "
                           "every epoch.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_data_arguments(train)
    train.add_argument("--train-limit", type=positive_int, metavar="N", help="train on the first N samples only")
    train.add_argument("--test-limit", type=positive_int, metavar="N", help="evaluate on the first N test samples")
    model = train.add_argument_group("model")
    model.add_argument("--model", choices=["mlp", "cnn"], default="mlp", help="architecture")
    model.add_argument("--hidden", type=int_list, default=None, metavar="H[,H...]",
                       help="hidden dense layer sizes (default: 400 for mlp, none for cnn)")
    model.add_argument("--channels", type=int_list, default=(16, 32), metavar="C[,C...]",
                       help="cnn: output channels of each conv layer")
    model.add_argument("--kernel", type=positive_int, default=5, help="cnn: conv kernel size")
    model.add_argument("--padding", type=int, default=0, help="cnn: conv zero padding")
    model.add_argument("--pool", type=int, default=2, help="cnn: pooling window after each conv (1 = none)")
    model.add_argument("--pool-mode", choices=POOL_MODES, default="avg", help="cnn: pooling of spikes")
    model.add_argument("--cell", choices=CELL_TYPES, default="lif", help="Norse LIFCell or LIFBoxCell")
    model.add_argument("--time-steps", "-T", type=positive_int, default=16, help="simulation steps T")
    model.add_argument("--dt", type=float, default=1e-3, help="time step in seconds")
    model.add_argument("--tau-mem-inv", type=float, default=100.0, help="inverse membrane time constant, 1/s")
    model.add_argument("--tau-syn-inv", type=float, default=200.0, help="inverse synaptic time constant, 1/s")
    model.add_argument("--v-th", type=float, default=1.0, help="firing threshold")
    model.add_argument("--readout", choices=READOUT_REDUCTIONS, default="max",
                       help="how readout voltages over time become logits")
    model.add_argument("--encoder", choices=ENCODER_KINDS, default="direct",
                       help="direct: image as constant current; poisson: rate-coded spikes")
    model.add_argument("--gain", type=float, default=1.0, help="direct encoder: current per unit pixel")
    model.add_argument("--max-rate", type=float, default=500.0, help="poisson encoder: rate of a white pixel, Hz")
    pen = train.add_argument_group("penalty")
    pen.add_argument("--penalty", choices=list(PENALTIES), default="synaptic",
                     help="; ".join(f"{p.name}: {p.summary}" for p in PENALTIES.values()))
    pen.add_argument("--lam", type=float, default=0.0,
                     help="penalty weight lambda (0 = off). It multiplies the per-sample penalty, so its scale depends "
                          "on the network's size: 1e-5..1e-4 suit the 784-400-10 MNIST MLP (see README)")
    pen.add_argument("--lam-schedule", choices=LAMBDA_SCHEDULES, default="constant",
                     help="ramp: lambda grows linearly to --lam over --ramp-epochs")
    pen.add_argument("--ramp-epochs", type=positive_int, default=1, help="epochs of the lambda ramp")
    pen.add_argument("--power", "-p", type=float, default=1.0, help="exponent p of the synaptic penalty")
    pen.add_argument("--device-profile", metavar="NAME|FILE",
                     help="device profile the energy penalty prices on (hw_models.profiles name or .toml/.json file)")
    opt = train.add_argument_group("optimization")
    opt.add_argument("--epochs", type=positive_int, default=5, help="number of epochs (total, also on resume)")
    opt.add_argument("--batch-size", type=positive_int, default=128, help="batch size")
    opt.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    opt.add_argument("--seed", type=int, default=0, help="seed for weights, shuffling and Poisson noise")
    opt.add_argument("--init-rate", type=float, default=0.05,
                     help="rescale initial weights so each hidden layer fires at this rate (0 = off)")
    opt.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    opt.add_argument("--loihi-exact", action="store_true",
                     help="train as Loihi fixed point computes (8-bit weights with the export's scales, integer "
                          "decays, straight-through gradients): the netx export then runs exactly as trained")
    opt.add_argument("--init-from", metavar="CHECKPOINT",
                     help="fine-tune this checkpoint (its model and weights; the model flags are ignored)")
    train.add_argument("--out", required=True, metavar="DIR", help="output folder")
    train.add_argument("--resume", action="store_true",
                       help="continue from OUT/checkpoint.pt (its model and settings; --epochs sets the end)")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.add_argument("--json", action="store_true", help="print the final epoch's metrics as JSON on stdout")
    train.set_defaults(handler=_cmd_train)

    evaluate = sub.add_parser("evaluate", help="accuracy, synaptic operations and spike rates of a checkpoint",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    evaluate.add_argument("checkpoint", help="checkpoint file or training output folder")
    add_data_arguments(evaluate, dataset_default=None)
    evaluate.add_argument("--limit", type=positive_int, metavar="N", help="first N test samples only")
    evaluate.add_argument("--batch-size", type=positive_int, default=256)
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument("--raster", metavar="PNG", help="also plot the spike raster of the first test sample")
    evaluate.set_defaults(handler=_cmd_evaluate)

    info = sub.add_parser("info", help="show a checkpoint's model description and training history")
    info.add_argument("checkpoint", help="checkpoint file or training output folder")
    info.add_argument("--json", action="store_true", help="print as JSON")
    info.set_defaults(handler=_cmd_info)
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(sub)
    return parser


def _spec_from_args(args: argparse.Namespace, input_shape: tuple[int, ...], num_classes: int):
    from neuromorph.spec import EncoderSpec, NeuronSpec, ReadoutSpec, cnn_spec, mlp_spec

    common: dict[str, Any] = dict(
        input_shape=input_shape, num_classes=num_classes, time_steps=args.time_steps, dt_s=args.dt,
        neuron=NeuronSpec(cell=args.cell, tau_mem_inv=args.tau_mem_inv, tau_syn_inv=args.tau_syn_inv,
                          v_th=args.v_th),
        readout=ReadoutSpec(tau_mem_inv=args.tau_mem_inv, tau_syn_inv=args.tau_syn_inv, reduce=args.readout),
        encoder=EncoderSpec(kind=args.encoder, gain=args.gain, max_rate_hz=args.max_rate),
    )
    if args.model == "mlp":
        return mlp_spec(hidden=args.hidden or (400,), **common)
    return cnn_spec(channels=args.channels, kernel_size=args.kernel, padding=args.padding, pool=args.pool,
                    pool_mode=args.pool_mode, hidden=args.hidden or (), **common)


def _cmd_train(args: argparse.Namespace) -> int:
    from neuromorph.data import dataset_info
    from neuromorph.plots import plot_training_curves
    from neuromorph.report import EPOCH_HEADERS, epoch_row, format_number, format_table
    from neuromorph.training import TrainConfig, train

    info = dataset_info(args.dataset)
    spec = _spec_from_args(args, info.input_shape, info.num_classes)
    config = TrainConfig(
        dataset=args.dataset, data_root=args.data_root, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, seed=args.seed, penalty=args.penalty, lam=args.lam, lam_schedule=args.lam_schedule,
        ramp_epochs=args.ramp_epochs, power=args.power, train_limit=args.train_limit, test_limit=args.test_limit,
        device=args.device, init_rate=args.init_rate, device_profile=args.device_profile,
        loihi_exact=args.loihi_exact, init_from=args.init_from,
    )
    log = sys.stderr if args.json else sys.stdout

    def on_epoch(record: dict[str, Any]) -> None:
        row = dict(zip(EPOCH_HEADERS, epoch_row(record), strict=True))
        print("  ".join(f"{k} {format_number(v)}" for k, v in row.items()), file=log, flush=True)

    result = train(spec, config, out_dir=args.out, progress=not args.quiet, on_epoch=on_epoch, resume=args.resume)
    print(format_table(EPOCH_HEADERS, [epoch_row(r) for r in result.history],
                       title=f"\n{result.model.spec.name} on {config.dataset}, penalty {config.penalty}"),
          file=log)
    plot_training_curves(result.history, Path(args.out) / "training.png",
                         title=f"{result.model.spec.name} on {config.dataset}, penalty {config.penalty}")
    print(f"checkpoint: {args.out}/checkpoint.pt   metrics: {args.out}/metrics.json   curves: {args.out}/training.png",
          file=log)
    if args.json:
        print(json.dumps(result.final, indent=2))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from neuromorph.checkpoint import load_checkpoint
    from neuromorph.data import load_split
    from neuromorph.report import format_table
    from neuromorph.training import evaluate, resolve_device

    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.build_model()
    dataset = args.dataset or ckpt.train_config.get("dataset", "mnist")
    split = load_split(dataset, train=False, root=args.data_root, limit=args.limit)
    result = evaluate(model, split, args.batch_size, resolve_device(args.device),
                      seed=int(ckpt.train_config.get("seed", 0)), progress=True)
    if args.raster:
        import torch

        from neuromorph.data import iterate_batches
        from neuromorph.encoders import encode
        from neuromorph.plots import plot_spike_raster

        images, labels = next(iterate_batches(split, 1))
        with torch.no_grad():
            out = model.cpu()(encode(images, ckpt.spec, torch.Generator().manual_seed(0)))
        plot_spike_raster(out.spikes, [s.name for s in model.sources], args.raster,
                          title=f"{ckpt.spec.name}, test sample 0 (label {int(labels[0])}, "
                                f"predicted {int(out.logits.argmax())})")
    if args.json:
        print(json.dumps({"dataset": dataset, **result.to_dict()}, indent=2))
        return 0
    print(f"{ckpt.spec.name} on {dataset} ({result.samples} test samples): accuracy "
          f"{100 * result.accuracy:.2f}%, loss {result.loss:.4f}, {result.synops_per_sample:,.0f} SynOps/sample")
    rows = [[name, result.spikes_per_sample[name], result.spike_rate[name], result.synops_per_layer[name]]
            for name in result.spike_rate]
    print(format_table(["layer", "spikes/sample", "rate/step", "SynOps/sample"], rows))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from neuromorph.checkpoint import load_checkpoint
    from neuromorph.report import EPOCH_HEADERS, epoch_row, format_table

    ckpt = load_checkpoint(args.checkpoint)
    if args.json:
        print(json.dumps({"spec": ckpt.spec.to_dict(), "train_config": ckpt.train_config, "epoch": ckpt.epoch,
                          "history": ckpt.history, "versions": ckpt.versions}, indent=2))
        return 0
    spec = ckpt.spec
    shapes = spec.layer_shapes()
    rows = [[i, type(layer).__name__, str(layer), "x".join(map(str, shape))]
            for i, (layer, shape) in enumerate(zip(spec.layers, shapes, strict=True))]
    print(format_table(["#", "type", "layer", "output"], rows,
                       title=f"{spec.name}: input {spec.input_shape}, T={spec.time_steps}, dt={spec.dt_s} s, "
                             f"{spec.neuron}, encoder {spec.encoder.kind}"))
    if ckpt.history:
        print(format_table(EPOCH_HEADERS, [epoch_row(r) for r in ckpt.history], title="\nhistory"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except NeuromorphError as error:
        sys.stderr.write(f"neuromorph: error: {error}\n")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        sys.stderr.write("neuromorph: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
