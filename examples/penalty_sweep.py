"""Sweep lambda for each penalty and tabulate test accuracy against synaptic operations per sample.

Each (penalty, p, lambda, seed) point is one training run; finished points are stored in the results JSON and not
trained again when the script is re-run (resumable). Example (the table in the training issue's closing note):

    python examples/penalty_sweep.py --dataset mnist --model mlp --epochs 5 \\
        --points none:0 synaptic:1e-6 synaptic:1e-5 synaptic:3e-5 synaptic:1e-4 --out runs/mnist_mlp_sweep

A point is ``PENALTY:LAMBDA`` or ``PENALTY:LAMBDA:P`` (p, the synaptic penalty's exponent, defaults to 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from neuromorph.data import dataset_info, load_split
from neuromorph.errors import NeuromorphError
from neuromorph.io import write_json
from neuromorph.report import format_table
from neuromorph.spec import cnn_spec, mlp_spec
from neuromorph.training import TrainConfig, train


def parse_point(text: str) -> tuple[str, float, float]:
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(f"expected PENALTY:LAMBDA[:P], got {text!r}")
    try:
        return parts[0], float(parts[1]), float(parts[2]) if len(parts) == 3 else 1.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad number in {text!r}") from None


def point_key(penalty: str, lam: float, power: float, seed: int) -> str:
    return f"{penalty}:lam={lam:g}:p={power:g}:seed={seed}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--data-root")
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    parser.add_argument("--points", nargs="+", type=parse_point, required=True, help="PENALTY:LAMBDA[:P] ...")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--time-steps", type=int, default=16)
    parser.add_argument("--train-limit", type=int)
    parser.add_argument("--test-limit", type=int)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True, help="folder for results.json and one run folder per point")
    args = parser.parse_args(argv)

    out = Path(args.out)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text())["points"] if results_path.is_file() else {}
    info = dataset_info(args.dataset)
    build = mlp_spec if args.model == "mlp" else cnn_spec
    spec = build(input_shape=info.input_shape, num_classes=info.num_classes, time_steps=args.time_steps)
    train_split = load_split(args.dataset, True, args.data_root, args.train_limit)
    test_split = load_split(args.dataset, False, args.data_root, args.test_limit)

    for penalty, lam, power in args.points:
        for seed in args.seeds:
            key = point_key(penalty, lam, power, seed)
            if key in results:
                print(f"{key}: done already, skipped", flush=True)
                continue
            config = TrainConfig(dataset=args.dataset, data_root=args.data_root, epochs=args.epochs,
                                 batch_size=args.batch_size, seed=seed, penalty=penalty, lam=lam, power=power,
                                 train_limit=args.train_limit, test_limit=args.test_limit, device=args.device)
            run = train(spec, config, out_dir=out / key.replace(":", "_").replace("=", ""), progress=False,
                        train_split=train_split, test_split=test_split,
                        on_epoch=lambda r, key=key: print(
                            f"{key} epoch {r['epoch']}: test acc {100 * r['test_accuracy']:.2f}% "
                            f"SynOps/sample {r['synops_per_sample']:,.0f} ({r['train_seconds']:.0f} s)", flush=True))
            final = run.final
            results[key] = {"penalty": penalty, "lam": lam, "power": power, "seed": seed, **final}
            write_json(results_path, {"dataset": args.dataset, "model": args.model, "epochs": args.epochs,
                                      "spec": spec.to_dict(), "points": results})

    baseline = [r for r in results.values() if r["penalty"] == "none"]
    base_synops = sum(r["synops_per_sample"] for r in baseline) / len(baseline) if baseline else None
    base_acc = sum(r["test_accuracy"] for r in baseline) / len(baseline) if baseline else None
    rows = []
    for r in sorted(results.values(), key=lambda r: (r["penalty"] != "none", r["penalty"], r["power"], r["lam"])):
        rows.append([
            r["penalty"], f"{r['power']:g}", f"{r['lam']:g}", r["seed"], f"{100 * r['test_accuracy']:.2f}%",
            "-" if base_acc is None else f"{100 * (r['test_accuracy'] - base_acc):+.2f}",
            r["synops_per_sample"], "-" if not base_synops else f"{base_synops / r['synops_per_sample']:.2f}x",
        ])
    print(format_table(["penalty", "p", "lambda", "seed", "test acc", "d acc (pt)", "SynOps/sample",
                        "reduction"], rows,
                       title=f"\n{args.model} on {args.dataset}, {args.epochs} epochs, T={args.time_steps}"))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except NeuromorphError as error:
        sys.exit(f"penalty_sweep: error: {error}")
