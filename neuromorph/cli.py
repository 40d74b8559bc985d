"""The ``neuromorph`` command line.

Every error a user can cause ends in one line on stderr (``neuromorph: error: ...``) and a non-zero exit:
1 for a failed command, 2 for bad usage, 141 when stdout's reader went away. Argument types, the data flags and
the way a command reports (:func:`neuromorph.command_line.emit`) live in :mod:`neuromorph.command_line`; opening a
checkpoint with its data in :mod:`neuromorph.run`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from neuromorph.command_line import (
    HelpFormatter,
    add_data_arguments,
    add_json_argument,
    emit,
    field_default,
    format_int_list,
    int_list,
    log_stream,
    output_file,
    output_folder,
    parameter_default,
    positive_int,
)
from neuromorph.errors import NeuromorphError

THREADS_HELP = ("torch threads on the CPU (default: one per core less one per core already busy, by the 1-minute "
                "load average, at least 1: on a busy machine torch's own default can make a step many times slower "
                "than one thread). On Linux, CPU runs keep freed memory for reuse instead of page-faulting "
                "large tensors in at every step (2x on a CNN); NEUROMORPH_MALLOC=system turns that off")

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 128 + 13  # killed by SIGPIPE, as Unix tools report a reader that went away (`| head`)

# Modules that add a subcommand: each has `add_parser(subparsers)` which registers it and sets `handler`.
# They must import nothing heavy at module level (no Lava, no lava-dl): handlers import what they need.
COMMAND_MODULES: list[str] = [
    "hw_models.energy_command", "hw_models.profiles_command", "export.cli", "export.simulate_command",
    "neuromorph.presets_command", "hw_models.sweep_command"]


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(EXIT_USAGE)


def _build_parser() -> argparse.ArgumentParser:
    from neuromorph.augment import AUGMENTATIONS
    from neuromorph.checkpoint import CHECKPOINT_NAME
    from neuromorph.config import TrainConfig
    from neuromorph.penalties import LAMBDA_SCHEDULES, PENALTIES
    from neuromorph.schedules import LR_SCHEDULES
    from neuromorph.spec import (
        CELL_TYPES,
        ENCODER_KINDS,
        POOL_MODES,
        READOUT_REDUCTIONS,
        SURROGATES,
        Conv,
        EncoderSpec,
        ModelSpec,
        NeuronSpec,
        ReadoutSpec,
        cnn_spec,
        mlp_spec,
    )
    def config(name: str) -> Any:
        return field_default(TrainConfig, name)

    parser = _Parser(prog="neuromorph", description="Train energy-efficient spiking neural networks with the "
                     "spiking synaptic penalty, and carry them to neuromorphic chips.", formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    train = sub.add_parser("train", help="train an SNN with an activity penalty",
                           description="Train an MLP or CNN of Norse LIF neurons with a non-spiking leaky-integrator "
                           "readout. The loss is cross-entropy + lambda * penalty (per sample). Writes "
                           f"OUT/{CHECKPOINT_NAME} (weights + full model description) and OUT/metrics.json after "
                           "every epoch.", formatter_class=HelpFormatter)
    add_data_arguments(train, dataset_default=config("dataset"))
    train.add_argument("--train-limit", type=positive_int, metavar="N", default=config("train_limit"),
                       help="train on the first N samples only")
    train.add_argument("--test-limit", type=positive_int, metavar="N", default=config("test_limit"),
                       help="evaluate on the first N test samples")
    model = train.add_argument_group("model")
    model.add_argument("--preset", metavar="NAME",
                       help="a named network with its training recipe (neuromorph presets lists them): it sets the "
                       "model and the dataset and optimization defaults; flags given here override the latter, "
                       "and --time-steps runs the preset's network at another T")
    builders = {"mlp": mlp_spec, "cnn": cnn_spec}
    model.add_argument("--model", choices=list(builders), default="mlp", help="architecture")
    hidden = {name: format_int_list(parameter_default(build, "hidden")) for name, build in builders.items()}
    model.add_argument("--hidden", type=int_list, default=None, metavar="H[,H...]",
                       help=f"hidden dense layer sizes (default: {hidden['mlp']} for mlp, {hidden['cnn']} for cnn)")
    channels = parameter_default(cnn_spec, "channels")
    model.add_argument("--channels", type=int_list, default=channels, metavar="C[,C...]",
                       help=f"cnn: output channels of each conv layer (default: {format_int_list(channels)})")
    model.add_argument("--kernel", type=positive_int, default=parameter_default(cnn_spec, "kernel_size"),
                       help="cnn: conv kernel size")
    model.add_argument("--padding", type=int, default=parameter_default(cnn_spec, "padding"),
                       help="cnn: conv zero padding")
    model.add_argument("--pool", type=int, default=parameter_default(cnn_spec, "pool"),
                       help="cnn: pooling window after each conv (1 = none)")
    model.add_argument("--pool-mode", choices=POOL_MODES, default=parameter_default(cnn_spec, "pool_mode"),
                       help="cnn: pooling of spikes")
    model.add_argument("--batch-norm", action="store_true", default=field_default(Conv, "batch_norm"),
                       help="BatchNorm of every hidden synaptic layer's current (over time steps and batch) in "
                       "training, folded into the weights and a bias for inference, energy and export (a bias on "
                       "a chip layer has no exact Loihi form: netx export and Loihi-exact training refuse it)")
    model.add_argument("--cell", choices=CELL_TYPES, default=field_default(NeuronSpec, "cell"),
                       help="Norse LIFCell or LIFBoxCell")
    model.add_argument("--surrogate", choices=SURROGATES, default=field_default(NeuronSpec, "surrogate"),
                       help="Norse threshold method (surrogate gradient); the compiled kernels run super, others "
                       "run Norse's cell step by step")
    model.add_argument("--alpha", type=float, default=field_default(NeuronSpec, "alpha"),
                       help="surrogate sharpness (Norse 1.1.0's super ignores it)")
    model.add_argument("--time-steps", "-T", type=positive_int, default=field_default(ModelSpec, "time_steps"),
                       help="simulation steps T")
    model.add_argument("--dt", type=float, default=field_default(ModelSpec, "dt_s"), help="time step in seconds")
    model.add_argument("--tau-mem-inv", type=float, default=field_default(NeuronSpec, "tau_mem_inv"),
                       help="inverse membrane time constant, 1/s (hidden layers and readout)")
    model.add_argument("--tau-syn-inv", type=float, default=field_default(NeuronSpec, "tau_syn_inv"),
                       help="inverse synaptic time constant, 1/s (hidden layers and readout)")
    model.add_argument("--v-th", type=float, default=field_default(NeuronSpec, "v_th"), help="firing threshold")
    model.add_argument("--readout", choices=READOUT_REDUCTIONS, default=field_default(ReadoutSpec, "reduce"),
                       help="how readout voltages over time become logits")
    model.add_argument("--encoder", choices=ENCODER_KINDS, default=field_default(EncoderSpec, "kind"),
                       help="direct: image as constant current; poisson: rate-coded spikes")
    model.add_argument("--gain", type=float, default=field_default(EncoderSpec, "gain"),
                       help="direct encoder: current per unit pixel")
    model.add_argument("--max-rate", type=float, default=field_default(EncoderSpec, "max_rate_hz"),
                       help="poisson encoder: rate of a white pixel, Hz")
    parser.train_parser, parser.model_flags = train, [a.dest for a in model._group_actions
                                                      if a.dest not in ("preset", "time_steps")]
    pen = train.add_argument_group("penalty")
    pen.add_argument("--penalty", choices=list(PENALTIES), default=config("penalty"),
                     help="; ".join(f"{p.name}: {p.summary}" for p in PENALTIES.values()))
    pen.add_argument("--lam", type=float, default=config("lam"),
                     help="penalty weight lambda (0 = off). It multiplies the per-sample penalty, so its scale depends "
                          "on the network's size: 1e-5..1e-4 suit the 784-400-10 MNIST MLP (see README)")
    pen.add_argument("--lam-schedule", choices=list(LAMBDA_SCHEDULES), default=config("lam_schedule"),
                     help="ramp: lambda grows linearly to --lam over --ramp-epochs")
    pen.add_argument("--ramp-epochs", type=positive_int, default=config("ramp_epochs"),
                     help="epochs of the lambda ramp")
    pen.add_argument("--power", "-p", type=float, default=config("power"), help="exponent p of the synaptic penalty")
    pen.add_argument("--device-profile", metavar="NAME|FILE", default=config("device_profile"),
                     help="device profile the energy penalty prices on (hw_models.profiles name or .toml/.json file)")
    opt = train.add_argument_group("optimization")
    opt.add_argument("--epochs", type=positive_int, default=config("epochs"),
                     help="number of epochs (total, also on resume)")
    opt.add_argument("--batch-size", type=positive_int, default=config("batch_size"), help="batch size")
    opt.add_argument("--lr", type=float, default=config("lr"), help="Adam learning rate (the peak of a schedule)")
    opt.add_argument("--lr-schedule", choices=list(LR_SCHEDULES), default=config("lr_schedule"),
                     help="learning rate per batch: constant, cosine annealing to 0 over the run, or one-cycle "
                     "(warm-up over 30 %% from lr/25, then annealing), as torch's OneCycleLR")
    opt.add_argument("--weight-decay", type=float, default=config("weight_decay"),
                     help="decoupled weight decay (AdamW) of the synaptic weights; 0 = plain Adam")
    opt.add_argument("--augment", choices=list(AUGMENTATIONS), default=config("augment"),
                     help="training-batch augmentation: random shifts of up to 2 px (4 px on 32 x 32 images), "
                     "and left-right flips with flip-crop (for natural images, not digits)")
    opt.add_argument("--seed", type=int, default=config("seed"), help="seed for weights, shuffling and Poisson noise")
    opt.add_argument("--init-rate", type=float, default=config("init_rate"),
                     help="rescale initial weights so each hidden layer fires at this rate (0 = off)")
    opt.add_argument("--device", default=config("device"), help="cpu, cuda or auto")
    opt.add_argument("--threads", type=positive_int, metavar="N", help=THREADS_HELP)
    opt.add_argument("--loihi-exact", action="store_true", default=config("loihi_exact"),
                     help="train as Loihi fixed point computes (8-bit weights with the export's scales, integer "
                          "decays, straight-through gradients): the netx export then runs exactly as trained")
    opt.add_argument("--init-from", metavar="CHECKPOINT", default=config("init_from"),
                     help="fine-tune this checkpoint (its model and weights; the model flags are ignored)")
    train.add_argument("--out", required=True, type=output_folder, metavar="DIR", help="output folder")
    train.add_argument("--resume", action="store_true",
                       help=f"continue from OUT/{CHECKPOINT_NAME} (its model and settings; --epochs sets the end)")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    add_json_argument(train, "the final epoch's metrics")
    train.set_defaults(handler=_cmd_train)

    evaluate = sub.add_parser("evaluate", help="accuracy, synaptic operations and spike rates of a checkpoint",
                              formatter_class=HelpFormatter)
    evaluate.add_argument("checkpoint", help="checkpoint file or training output folder")
    add_data_arguments(evaluate)
    evaluate.add_argument("--limit", type=positive_int, metavar="N", help="first N test samples only")
    evaluate.add_argument("--batch-size", type=positive_int, default=256, help="batch size")
    evaluate.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    evaluate.add_argument("--threads", type=positive_int, metavar="N", help=THREADS_HELP)
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_argument(evaluate, "the metrics")
    evaluate.add_argument("--raster", type=output_file, metavar="PNG",
                          help="also plot the spike raster of the first test sample")
    evaluate.set_defaults(handler=_cmd_evaluate)

    info = sub.add_parser("info", help="show a checkpoint's model description and training history",
                          formatter_class=HelpFormatter)
    info.add_argument("checkpoint", help="checkpoint file or training output folder")
    add_json_argument(info, "the model description, settings and history")
    info.set_defaults(handler=_cmd_info)
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(sub)
    return parser


def _spec_from_args(args: argparse.Namespace, input_shape: tuple[int, ...], num_classes: int):
    from neuromorph.spec import EncoderSpec, NeuronSpec, ReadoutSpec, cnn_spec, mlp_spec

    common: dict[str, Any] = dict(
        input_shape=input_shape, num_classes=num_classes, time_steps=args.time_steps, dt_s=args.dt,
        neuron=NeuronSpec(cell=args.cell, tau_mem_inv=args.tau_mem_inv, tau_syn_inv=args.tau_syn_inv,
                          v_th=args.v_th, surrogate=args.surrogate, alpha=args.alpha),
        readout=ReadoutSpec(tau_mem_inv=args.tau_mem_inv, tau_syn_inv=args.tau_syn_inv, reduce=args.readout),
        encoder=EncoderSpec(kind=args.encoder, gain=args.gain, max_rate_hz=args.max_rate),
        batch_norm=args.batch_norm,
    )
    if args.hidden is not None:  # else the builder's default
        common["hidden"] = args.hidden
    if args.model == "mlp":
        return mlp_spec(**common)
    return cnn_spec(channels=args.channels, kernel_size=args.kernel, padding=args.padding, pool=args.pool,
                    pool_mode=args.pool_mode, **common)


def _cmd_train(args: argparse.Namespace) -> int:
    from neuromorph.checkpoint import CHECKPOINT_NAME
    from neuromorph.data import dataset_info
    from neuromorph.devices import set_threads
    from neuromorph.distributed import is_main_process
    from neuromorph.plots import plot_training_curves
    from neuromorph.report import EPOCH_HEADERS, epoch_row, format_number, format_table
    from neuromorph.training import METRICS_NAME, TrainConfig, train

    set_threads(args.threads)
    info = dataset_info(args.dataset)
    if args.preset:
        from neuromorph.presets import get_preset

        spec = replace(get_preset(args.preset).spec(info.input_shape, info.num_classes), time_steps=args.time_steps)
    else:
        spec = _spec_from_args(args, info.input_shape, info.num_classes)
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)})
    log = log_stream(args)

    def on_epoch(record: dict[str, Any]) -> None:
        row = dict(zip(EPOCH_HEADERS, epoch_row(record), strict=True))
        print("  ".join(f"{k} {format_number(v)}" for k, v in row.items()), file=log, flush=True)

    result = train(spec, config, out_dir=args.out, progress=not args.quiet, on_epoch=on_epoch, resume=args.resume)
    if not is_main_process():  # under torchrun, rank 0 alone writes and prints
        return 0
    title = f"{result.model.spec.name} on {config.dataset}, penalty {config.penalty}"
    plot_training_curves(result.history, Path(args.out) / "training.png", title=title)
    table = format_table(EPOCH_HEADERS, [epoch_row(r) for r in result.history], title=f"\n{title}")
    emit(args, f"{table}\ncheckpoint: {args.out}/{CHECKPOINT_NAME}   metrics: {args.out}/{METRICS_NAME}   "
               f"curves: {args.out}/training.png", result.final)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from neuromorph.devices import resolve_device, set_threads
    from neuromorph.report import format_table
    from neuromorph.run import open_run
    from neuromorph.training import evaluate

    set_threads(args.threads)
    run = open_run(args.checkpoint, args.dataset, args.data_root)
    split = run.test_split(args.limit)
    result = evaluate(run.model, split, args.batch_size, resolve_device(args.device), seed=run.seed,
                      progress=not args.quiet)
    if args.raster:
        import torch

        from neuromorph.data import iterate_batches
        from neuromorph.encoders import encode
        from neuromorph.plots import plot_spike_raster

        images, labels = next(iterate_batches(split, 1))
        with torch.no_grad():
            out = run.model.cpu()(encode(images, run.spec, torch.Generator().manual_seed(0)))
        plot_spike_raster(out.spikes, [s.name for s in run.model.sources], args.raster,
                          title=f"{run.spec.name}, test sample 0 (label {int(labels[0])}, "
                                f"predicted {int(out.logits.argmax())})")
    rows = [[name, result.spikes_per_sample[name], result.spike_rate[name], result.synops_per_layer[name]]
            for name in result.spike_rate]
    text = (f"{run.spec.name} on {run.dataset} ({result.samples} test samples): accuracy "
            f"{100 * result.accuracy:.2f}%, loss {result.loss:.4f}, {result.synops_per_sample:,.0f} SynOps/sample\n"
            + format_table(["layer", "spikes/sample", "rate/step", "SynOps/sample"], rows))
    emit(args, text, {"dataset": run.dataset, **result.to_dict()})
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from neuromorph.checkpoint import load_checkpoint
    from neuromorph.report import EPOCH_HEADERS, epoch_row, format_table
    from neuromorph.structure import blocks

    ckpt = load_checkpoint(args.checkpoint)
    spec = ckpt.spec
    shapes = spec.layer_shapes()
    population = {index: block.name for block in blocks(spec) for index in range(*block.chain)}
    rows = [[i, type(layer).__name__, str(layer), "x".join(map(str, shape)), population[i]]
            for i, (layer, shape) in enumerate(zip(spec.layers, shapes, strict=True))]
    text = format_table(["#", "type", "layer", "output", "block"], rows,
                        title=f"{spec.name}: input {spec.input_shape}, T={spec.time_steps}, dt={spec.dt_s} s, "
                              f"{spec.neuron}, encoder {spec.encoder.kind}")
    if ckpt.history:
        text += "\n" + format_table(EPOCH_HEADERS, [epoch_row(r) for r in ckpt.history], title="\nhistory")
    emit(args, text, {"spec": spec.to_dict(), "train_config": ckpt.train_config, "epoch": ckpt.epoch,
                      "history": ckpt.history, "versions": ckpt.versions})
    return 0


def _apply_preset(parser: argparse.ArgumentParser, args: argparse.Namespace,
                  argv: Sequence[str] | None) -> argparse.Namespace:
    """``train --preset NAME``: the preset's dataset and recipe become the flags' defaults (flags given override
    them); a model flag given beside a preset is refused, since the preset is the model, except ``--time-steps``
    (the preset's network at another T; its default becomes the preset's T)."""
    from neuromorph.data import dataset_info
    from neuromorph.presets import get_preset

    preset = get_preset(args.preset)
    train = parser.train_parser
    changed = [dest for dest in parser.model_flags if getattr(args, dest) != train.get_default(dest)]
    if changed:
        flag = "--" + changed[0].replace("_", "-")
        raise NeuromorphError(f"--preset {preset.name} sets the model: {flag} cannot change it (drop the preset to "
                              "build your own)")
    info = dataset_info(preset.dataset)
    train.set_defaults(dataset=preset.dataset, time_steps=preset.spec(info.input_shape, info.num_classes).time_steps,
                       **preset.settings)
    return parser.parse_args(argv)


def _run(argv: Sequence[str] | None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "train" and args.preset:
            args = _apply_preset(parser, args, argv)
        return args.handler(args)
    except NeuromorphError as error:  # one line, even where it quotes a name with a line break in it
        sys.stderr.write(f"neuromorph: error: {str(error).replace(chr(13), ' ').replace(chr(10), ' ')}\n")
        return EXIT_FAILURE
    except BrokenPipeError:  # stdout's reader went away: main() ends quietly
        raise
    except OSError as error:  # the file system refused a path (name too long, a loop of links, ...): the user's to fix
        where = f": {str(error.filename)[:80]!r}" if error.filename else ""
        sys.stderr.write(f"neuromorph: error: {error.strerror or type(error).__name__}{where}\n")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        sys.stderr.write("neuromorph: interrupted\n")
        return 130


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush does not fail on the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is no file (an embedding or a test captures it): nothing to flush
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status: 0, 1 for a failed command, 2 for bad usage, 141 when stdout's reader went
    away (``neuromorph info RUN | head -1``)."""
    from neuromorph.devices import keep_freed_memory

    keep_freed_memory()  # large tensors reused instead of page-faulted in at every step (neuromorph.devices)
    try:
        try:
            return _run(argv)
        finally:
            if sys.stdout is not None:
                sys.stdout.flush()  # here, not at exit, so that a closed pipe is caught below
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
