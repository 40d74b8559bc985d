"""The main job: train a spiking MLP on MNIST with and without the spiking synaptic penalty, and compare.

    make demo                      # same as: .venv/bin/python examples/demo.py --out runs/demo

Leaves in OUT: baseline/ and synaptic/ (each a checkpoint.pt and metrics.json), and summary.json.
A few minutes on a laptop CPU (two trainings of 3 epochs on the 60,000 MNIST images).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neuromorph.data import load_split
from neuromorph.errors import NeuromorphError
from neuromorph.io import write_json
from neuromorph.report import format_table
from neuromorph.spec import mlp_spec
from neuromorph.training import TrainConfig, train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/demo", help="output folder (default: %(default)s)")
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    parser.add_argument("--data-root", help="dataset folder (default: as `neuromorph train`)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lam", type=float, default=3e-5, help="weight of the synaptic penalty")
    parser.add_argument("--train-limit", type=int, help="train on the first N images only (quick runs)")
    parser.add_argument("--test-limit", type=int, help="evaluate on the first N test images only")
    parser.add_argument("--hidden", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    out = Path(args.out)
    spec = mlp_spec(hidden=(args.hidden,), time_steps=16)
    train_split = load_split(args.dataset, True, args.data_root, args.train_limit)
    test_split = load_split(args.dataset, False, args.data_root, args.test_limit)
    print(f"neuromorph demo: 784-{args.hidden}-10 spiking MLP (Norse LIF, T={spec.time_steps}) on {args.dataset}, "
          f"{len(train_split)} training / {len(test_split)} test images, {args.epochs} epochs each\n")
    runs = {}
    for name, penalty, lam in (("baseline", "none", 0.0), ("synaptic", "synaptic", args.lam)):
        print(f"[{name}] penalty {penalty}, lambda {lam:g}", flush=True)
        config = TrainConfig(dataset=args.dataset, data_root=args.data_root, epochs=args.epochs, seed=args.seed,
                             penalty=penalty, lam=lam)
        result = train(spec, config, out_dir=out / name, train_split=train_split, test_split=test_split,
                       on_epoch=lambda r: print(f"  epoch {r['epoch']}: test accuracy {100 * r['test_accuracy']:.2f}%"
                                                f", {r['synops_per_sample']:,.0f} SynOps/sample", flush=True))
        runs[name] = result.final
    base, pen = runs["baseline"], runs["synaptic"]
    rows = [[name, f"{100 * r['test_accuracy']:.2f}%", r["synops_per_sample"],
             " ".join(f"{v:.4f}" for v in r["spike_rate"].values()),
             f"{base['synops_per_sample'] / r['synops_per_sample']:.2f}x"] for name, r in runs.items()]
    print("\n" + format_table(["run", "test acc", "SynOps/sample", "spike rate/step", "SynOps reduction"], rows))
    print(f"\nThe synaptic penalty cut synaptic operations {base['synops_per_sample'] / pen['synops_per_sample']:.1f}x "
          f"for {100 * (base['test_accuracy'] - pen['test_accuracy']):+.2f} points of accuracy lost.")
    write_json(out / "summary.json", {"dataset": args.dataset, "spec": spec.to_dict(), "runs": runs})
    print(f"Files: {out}/baseline/, {out}/synaptic/ (checkpoint.pt, metrics.json), {out}/summary.json")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except NeuromorphError as error:
        sys.exit(f"demo: error: {error}")
