"""The main job: the whole neuromorph workflow on MNIST, from training to the Lava simulator.

    make demo          # same as: .venv/bin/python examples/demo.py --out runs/demo

1. train a spiking MLP (Norse LIF cells) with the spiking synaptic penalty, then fine-tune it Loihi-exact
   (quantization-aware: it computes as Loihi fixed point does);
2. estimate its chip energy per inference on every built-in device profile, against the equivalent ANN;
3. export it to NIR and to lava-dl netx (Loihi fixed point), with the quantization report;
4. run it on the Lava simulator in fixed point (netx) and in floating point (plain Lava processes), and compare
   layer by layer with the trained model: the parity report.

Everything lands in OUT (default runs/demo):

    train/      checkpoint.pt, metrics.json, training.png   the float network trained with the synaptic penalty
    exact/      checkpoint.pt, metrics.json, training.png   the same, fine-tuned Loihi-exact (what is exported)
    energy/     energy.json, energy.png                     chip energy per inference, SNN against ANN per device
    model.nir, model.net, quantization.json                 NIR graph, netx HDF5 and its quantization report
    lava_fixed/, lava_float/   parity.json, parity_raster.png   Lava runs against the model
    summary.json                                            the headline figures of all of the above

A few minutes on a laptop CPU. --quick trains on a slice of the data (for CI and smoke tests).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from neuromorph.errors import NeuromorphError
from neuromorph.io import write_json
from neuromorph.report import format_table


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/demo", help="output folder (default: %(default)s)")
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    parser.add_argument("--data-root", help="dataset folder (default: as `neuromorph train`)")
    parser.add_argument("--hidden", type=int, default=400, help="hidden LIF neurons (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=3, help="float training epochs (default: %(default)s)")
    parser.add_argument("--exact-epochs", type=int, default=1, help="Loihi-exact fine-tuning epochs (default: 1)")
    parser.add_argument("--lam", type=float, default=3e-5, help="weight of the synaptic penalty")
    parser.add_argument("--lava-samples", type=int, default=100, help="test samples run on Lava (default: 100)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke-test run: 2,000 training / 500 test images, 64 hidden, 30 Lava samples")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.hidden, args.lava_samples = 64, min(args.lava_samples, 30)
    train_limit, test_limit = (2000, 500) if args.quick else (None, None)

    from export.netx_export import netx_bytes
    from export.nir_export import write_nir
    from export.parity import load_samples, simulate_model
    from export.quantization_report import quantization_report
    from export.quantize import quantize
    from hw_models.energy_report import energy_report
    from neuromorph.checkpoint import load_checkpoint
    from neuromorph.data import load_split
    from neuromorph.io import atomic_write
    from neuromorph.plots import plot_training_curves
    from neuromorph.spec import mlp_spec
    from neuromorph.training import TrainConfig, train

    started = time.perf_counter()
    out = Path(args.out)
    spec = mlp_spec(hidden=(args.hidden,), time_steps=16)
    train_split = load_split(args.dataset, True, args.data_root, train_limit)
    test_split = load_split(args.dataset, False, args.data_root, test_limit)
    summary: dict = {"dataset": args.dataset, "train_images": len(train_split), "test_images": len(test_split)}

    def progress(r):
        print(f"  epoch {r['epoch']}: test accuracy {100 * r['test_accuracy']:.2f}%, "
              f"{r['synops_per_sample']:,.0f} SynOps/sample ({r['train_seconds']:.0f} s)", flush=True)

    banner(f"1. train: 784-{args.hidden}-10 spiking MLP, synaptic penalty lambda {args.lam:g}, {args.epochs} epochs "
           f"on {len(train_split):,} {args.dataset} images")
    float_run = train(spec, TrainConfig(dataset=args.dataset, data_root=args.data_root, epochs=args.epochs,
                                        seed=args.seed, penalty="synaptic", lam=args.lam),
                      out_dir=out / "train", train_split=train_split, test_split=test_split, on_epoch=progress)
    plot_training_curves(float_run.history, out / "train" / "training.png", "float training, synaptic penalty")
    print(f"  Loihi-exact fine-tuning, {args.exact_epochs} epoch(s): the network now computes as Loihi fixed point")
    exact_config = TrainConfig(dataset=args.dataset, data_root=args.data_root, epochs=args.exact_epochs,
                               seed=args.seed, penalty="synaptic", lam=args.lam, loihi_exact=True,
                               init_from=str(out / "train"))
    exact_run = train(spec, exact_config, out_dir=out / "exact", train_split=train_split, test_split=test_split,
                      on_epoch=progress)
    plot_training_curves(exact_run.history, out / "exact" / "training.png", "Loihi-exact fine-tuning")
    summary["float"] = {k: float_run.final[k] for k in ("test_accuracy", "synops_per_sample", "spike_rate")}
    summary["loihi_exact"] = {k: exact_run.final[k] for k in ("test_accuracy", "synops_per_sample", "spike_rate")}
    model = load_checkpoint(out / "exact").build_model().eval()

    banner("2. chip energy per inference (test set), SNN against the equivalent ANN")
    report = energy_report(model, dataset=args.dataset, split=test_split)
    report.write(out / "energy")
    rows = [[e.profile, e.dynamic_j, e.static_j, e.total_j, e.ann.energy_j, e.ann.profile, f"{e.snn_to_ann:.3g}"]
            for e in report.estimates]
    print(format_table(["device", "dynamic J", "static J", "SNN J", "ANN J", "ANN on", "SNN/ANN"], rows))
    loihi = report.estimate("loihi1")
    mapping = report.mappings["loihi1"]
    print(f"  on Loihi 1: {mapping.total_cores} cores, {mapping.chips} chip(s); static power is "
          f"{100 * loihi.static_j / loihi.total_j:.0f}% of the energy per inference "
          f"(plot: {out / 'energy' / 'energy.png'})")
    summary["energy"] = report.to_dict()["summary"]

    banner("3. export: NIR graph and lava-dl netx (Loihi fixed point)")
    nir_path = write_nir(model, out / "model.nir", description="neuromorph demo, Loihi-exact MLP")
    x_cal, _ = load_samples(model.spec, args.dataset, 32, args.data_root, seed=args.seed)
    qnet = quantize(model, calibration=x_cal)
    data = netx_bytes(qnet)
    netx_path = atomic_write(out / "model.net", lambda handle: handle.write(data))
    quant = quantization_report(model, qnet, x_cal)
    write_json(out / "quantization.json", quant.to_dict())
    print(quant.format())
    print(f"  wrote {nir_path} and {netx_path}")

    banner(f"4. Lava simulator: {args.lava_samples} test samples, fixed point (netx) and floating point")
    x, labels = load_samples(model.spec, args.dataset, args.lava_samples, args.data_root, seed=args.seed)
    float_model = load_checkpoint(out / "train").build_model().eval()
    x_float, _ = load_samples(float_model.spec, args.dataset, args.lava_samples, args.data_root, seed=args.seed)
    summary["lava"] = {}
    for precision, net, inputs in (("fixed", model, x), ("float", float_model, x_float)):
        parity, run = simulate_model(net, inputs, labels, precision, args.dataset, out_dir=out / f"lava_{precision}")
        what = "the Loihi-exact model" if precision == "fixed" else "the float-trained model"
        print(f"\n{precision} point, against {what}:")
        print(parity.format())
        summary["lava"][precision] = parity.to_dict()
    summary["seconds"] = time.perf_counter() - started
    write_json(out / "summary.json", summary)
    banner(f"done in {summary['seconds']:.0f} s; everything is in {out}/ (see the list in examples/demo.py)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except NeuromorphError as error:
        sys.exit(f"demo: error: {error}")
