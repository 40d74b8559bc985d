"""The paper's experiment: sweep lambda for each penalty; accuracy against synaptic operations and chip energy.

Each (penalty, p, lambda, seed) point is one training run. Finished points are stored in OUT/results.json and not
trained again when the script is re-run (resumable). Per point: test accuracy, synaptic operations per sample, and
the energy per inference on a device profile (default Loihi 1, dynamic and static apart) from hw_models' cost model.
Writes OUT/results.json, prints the table, and draws OUT/pareto.png (energy against accuracy, with each penalty's
Pareto front).

    # the paper's grid: no penalty, spike count, synaptic p = 1 and p = 2 (Fashion-MNIST CNN, MNIST MLP)
    python examples/penalty_sweep.py --experiment fashion-cnn --out runs/paper_fashion_cnn
    python examples/penalty_sweep.py --experiment mnist-mlp --out runs/paper_mnist_mlp --seeds 0 1 2
    # two processes share one sweep (one per core, OMP_NUM_THREADS=1 each); results.json collects both
    python examples/penalty_sweep.py --experiment fashion-cnn --out runs/paper_fashion_cnn --shard 1/2 &
    python examples/penalty_sweep.py --experiment fashion-cnn --out runs/paper_fashion_cnn --shard 2/2
    python examples/penalty_sweep.py --experiment mnist-mlp --quick --out runs/quick   # minutes, sliced data
    # any grid: a point is PENALTY:LAMBDA or PENALTY:LAMBDA:P
    python examples/penalty_sweep.py --dataset mnist --model mlp --epochs 5 \\
        --points none:0 synaptic:1e-5 synaptic:3e-5 --out runs/mnist_mlp_sweep

Lambdas are given for the synaptic penalty's scale; for the spike-count penalty the presets multiply them by the
mean fan-out of the network (so both penalties weigh a spike of an average neuron alike), and for p = 2 by 2
(Omega_syn = SynOps / p). Uses a GPU when there is one (--device auto).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from neuromorph.data import dataset_info, load_split
from neuromorph.errors import NeuromorphError
from neuromorph.io import write_json
from neuromorph.report import format_table
from neuromorph.spec import cnn_spec, mlp_spec
from neuromorph.training import TrainConfig, train


@dataclass(frozen=True)
class Experiment:
    dataset: str
    model: str
    epochs: int
    lambdas: tuple[float, ...]  # on the synaptic penalty's scale
    sizes: tuple[int, ...]  # hidden sizes (mlp) or conv channels (cnn)
    quick_sizes: tuple[int, ...]


# The MLP has two hidden layers with different fan-outs (200 and 10): with a single hidden layer every neuron has the
# same fan-out and the synaptic penalty is the spike-count penalty times a constant.
EXPERIMENTS = {
    "fashion-cnn": Experiment("fashion-mnist", "cnn", 3, (1e-8, 3e-8, 1e-7, 3e-7), (16, 32), (8, 16)),
    "mnist-mlp": Experiment("mnist", "mlp", 5, (1e-6, 3e-6, 1e-5, 3e-5), (400, 200), (100, 50)),
    "fashion-mlp": Experiment("fashion-mnist", "mlp", 5, (1e-6, 3e-6, 1e-5, 3e-5), (400, 200), (100, 50)),
}
QUICK = {"train_limit": 2000, "test_limit": 500, "epochs": 2}


def parse_point(text: str) -> tuple[str, float, float]:
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(f"expected PENALTY:LAMBDA[:P], got {text!r}")
    try:
        return parts[0], float(parts[1]), float(parts[2]) if len(parts) == 3 else 1.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad number in {text!r}") from None


def preset_points(lambdas, mean_fan_out: float) -> list[tuple[str, float, float]]:
    """No penalty, then spike count and synaptic p = 1 side by side for each lambda, then synaptic p = 2.

    The order is the training order: a sweep stopped early has compared the two penalties at the lambdas it reached.
    """
    points = [("none", 0.0, 1.0)]
    for lam in lambdas:
        points += [("spikes", lam * mean_fan_out, 1.0), ("synaptic", lam, 1.0)]
    points += [("synaptic", 2 * lam, 2.0) for lam in lambdas]
    return points


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N (e.g. 1/2), got {text!r}") from None
    if not 1 <= index <= count:
        raise argparse.ArgumentTypeError(f"shard K/N needs 1 <= K <= N, got {text!r}")
    return index, count


@contextmanager
def locked(path: Path):
    """An exclusive lock on ``path`` (a lock file), so that shards update results.json one at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_results(path: Path, spec_dict: dict, epochs: int, lr: float = 1e-3) -> dict:
    """The points stored in ``path`` (empty if there is none yet); refuses a file from another model, epoch count
    or learning rate."""
    if not path.is_file():
        return {}
    stored = json.loads(path.read_text())
    if stored.get("spec") != spec_dict or stored.get("epochs") != epochs or stored.get("lr", 1e-3) != lr:
        raise NeuromorphError(f"{path} holds a different model, epoch count or learning rate: use another --out")
    return stored.get("points", {})


def point_key(penalty: str, lam: float, power: float, seed: int) -> str:
    return f"{penalty}:lam={lam:g}:p={power:g}:seed={seed}"


def label(r: dict) -> str:
    return r["penalty"] if r["penalty"] != "synaptic" else f"synaptic p={r['power']:g}"


def pareto_front(points: list[dict], x: str = "energy_j") -> list[dict]:
    """Points not dominated by another (lower or equal x and higher accuracy), sorted by x."""
    front, best = [], -1.0
    for r in sorted(points, key=lambda r: (r[x], -r["test_accuracy"])):
        if r["test_accuracy"] > best:
            front.append(r)
            best = r["test_accuracy"]
    return front


def min_cost_at_accuracy(points: list[dict], accuracy: float, x: str) -> float | None:
    eligible = [r[x] for r in points if r["test_accuracy"] >= accuracy]
    return min(eligible) if eligible else None


def plot_pareto(results: list[dict], path: Path, title: str, profile: str, window: float = 4.0,
                collapse: float = 10.0) -> None:
    """Accuracy against SynOps and against energy (log scales), each penalty's Pareto front as a step line.

    The accuracy axis spans at least ``window`` points below the best run, and further down to every run within
    ``collapse`` points of the best; runs that collapsed further are counted in the title instead of squashing the
    axis.
    """
    from neuromorph.plots import pyplot, save_figure

    plt = pyplot()
    from matplotlib.ticker import NullFormatter

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    best = 100 * max(r["test_accuracy"] for r in results)
    kept = [100 * r["test_accuracy"] for r in results if 100 * r["test_accuracy"] >= best - collapse]
    low = min(best - window, min(kept) - 0.5)
    hidden = sum(100 * r["test_accuracy"] < low for r in results)
    groups: dict[str, list[dict]] = {}
    for r in results:
        groups.setdefault(label(r), []).append(r)
    for (x, axis, xlabel) in (("synops_per_sample", axes[0], "synaptic operations per sample"),
                              ("energy_j", axes[1], f"energy per inference on {profile} (µJ)")):
        scale = 1e6 if x == "energy_j" else 1.0
        for name, points in sorted(groups.items()):
            shown = [r for r in points if r[x] > 0]
            line = axis.scatter([scale * r[x] for r in shown], [100 * r["test_accuracy"] for r in shown],
                                label=name, alpha=0.7)
            front = pareto_front(shown, x)
            axis.step([scale * r[x] for r in front], [100 * r["test_accuracy"] for r in front], where="post",
                      color=line.get_facecolor()[0], alpha=0.9)
        axis.set(xlabel=xlabel, ylabel="test accuracy (%)", xscale="log", ylim=(low, best + 0.5))
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8, loc="lower right")
    note = f" ({hidden} run(s) below {low:.1f} % not shown)" if hidden else ""
    figure.suptitle(title + note)
    save_figure(figure, path)


def priced(report, args) -> dict:
    estimate = report.estimates[0]
    return {"energy_j": estimate.total_j, "dynamic_j": estimate.dynamic_j, "static_j": estimate.static_j,
            "ann_j": estimate.ann.energy_j, "profile": args.profile}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", choices=list(EXPERIMENTS), help="the paper's grid for this dataset/model")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--data-root")
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    parser.add_argument("--points", nargs="+", type=parse_point, help="PENALTY:LAMBDA[:P] ... (instead of a preset)")
    parser.add_argument("--lambdas", type=float, nargs="+",
                        help="with --experiment: these lambdas (synaptic scale) instead of the preset's, trained in "
                             "the order given; the spike-count and p = 2 points are derived as the preset does")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--sizes", type=int, nargs="+", help="hidden sizes (mlp) or conv channels (cnn)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--time-steps", type=int, default=16)
    parser.add_argument("--train-limit", type=int)
    parser.add_argument("--test-limit", type=int)
    parser.add_argument("--quick", action="store_true",
                        help=f"minutes instead of hours: {QUICK['train_limit']} training / {QUICK['test_limit']} test "
                             f"images, {QUICK['epochs']} epochs, smaller networks")
    parser.add_argument("--profile", default="loihi1", help="device profile for the energy column")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (a GPU when there is one)")
    parser.add_argument("--shard", type=parse_shard, default=(1, 1), metavar="K/N",
                        help="train only every N-th point, starting at the K-th; run N processes with the same --out "
                             "(one per core) and they share results.json")
    parser.add_argument("--out", required=True, help="folder for results.json, pareto.png and one run per point")
    args = parser.parse_args(argv)

    from hw_models.energy_report import energy_report

    preset = EXPERIMENTS.get(args.experiment)
    dataset = preset.dataset if preset else args.dataset
    model_kind = preset.model if preset else args.model
    epochs = args.epochs or (QUICK["epochs"] if args.quick else preset.epochs if preset else 5)
    train_limit = args.train_limit or (QUICK["train_limit"] if args.quick else None)
    test_limit = args.test_limit or (QUICK["test_limit"] if args.quick else None)
    info = dataset_info(dataset)
    common = dict(input_shape=info.input_shape, num_classes=info.num_classes, time_steps=args.time_steps)
    sizes = args.sizes or ((preset.quick_sizes if args.quick else preset.sizes) if preset else None)
    if model_kind == "mlp":
        spec = mlp_spec(hidden=sizes or (400,), **common)
    else:
        spec = cnn_spec(channels=sizes or (16, 32), **common)
    if args.points:
        points = args.points
    elif preset:
        from hw_models.fanout import model_fan_outs

        psi = model_fan_outs(spec)
        mean_fan_out = float(sum(p.sum() for p in psi) / sum(p.numel() for p in psi))
        points = preset_points(args.lambdas or preset.lambdas, mean_fan_out)
    else:
        raise NeuromorphError("give --experiment or --points")

    out = Path(args.out)
    results_path, lock_path = out / "results.json", out / ".results.lock"
    results: dict = {}

    def refresh() -> None:
        """Take in what results.json holds now (other shards may have added points); call under the lock."""
        results.update(read_results(results_path, spec.to_dict(), epochs, args.lr))

    def price(model, seed: int) -> dict:
        return priced(energy_report(model, dataset=dataset, profiles=[args.profile], split=test_split,
                                    device=args.device, seed=seed), args)

    with locked(lock_path):
        refresh()
    train_split = load_split(dataset, True, args.data_root, train_limit)
    test_split = load_split(dataset, False, args.data_root, test_limit)
    jobs = [(penalty, lam, power, seed) for penalty, lam, power in points for seed in args.seeds]
    shard, shards = args.shard
    mine = jobs[shard - 1::shards]
    print(f"{spec.name} on {dataset}: {len(jobs)} points" + (f" ({len(mine)} in shard {shard}/{shards})"
                                                            if shards > 1 else "")
          + f", {epochs} epochs each, {len(train_split)} training / {len(test_split)} test images", flush=True)

    def store(key: str, record: dict) -> None:
        """Merge one point into results.json under the lock (other shards may have added theirs meanwhile)."""
        with locked(lock_path):
            refresh()
            results[key] = record
            write_json(results_path, {"dataset": dataset, "model": model_kind, "epochs": epochs, "lr": args.lr,
                                      "quick": args.quick,
                                      "train_images": len(train_split), "test_images": len(test_split),
                                      "spec": spec.to_dict(), "profile": args.profile, "points": results})

    for penalty, lam, power, seed in mine:
        key = point_key(penalty, lam, power, seed)
        run_dir = out / key.replace(":", "_").replace("=", "")
        if key in results and "energy_j" not in results[key]:  # trained by an earlier version: price it now
            from neuromorph.checkpoint import load_checkpoint

            model = load_checkpoint(run_dir).build_model()
            store(key, {**results[key], **price(model, seed)})
        if key in results:
            print(f"{key}: done already, skipped", flush=True)
            continue
        config = TrainConfig(dataset=dataset, data_root=args.data_root, epochs=epochs,
                             batch_size=args.batch_size, lr=args.lr, seed=seed, penalty=penalty, lam=lam, power=power,
                             train_limit=train_limit, test_limit=test_limit, device=args.device)
        run = train(spec, config, out_dir=run_dir, progress=False,
                    train_split=train_split, test_split=test_split,
                    on_epoch=lambda r, key=key: print(
                        f"{key} epoch {r['epoch']}: test acc {100 * r['test_accuracy']:.2f}% "
                        f"SynOps/sample {r['synops_per_sample']:,.0f} ({r['train_seconds']:.0f} s)", flush=True))
        store(key, {"penalty": penalty, "lam": lam, "power": power, "seed": seed, **run.final,
                    **price(run.model, seed)})

    with locked(lock_path):
        refresh()
    if not results:
        print("no point finished yet")
        return 0
    rows = []
    all_points = list(results.values())
    for r in sorted(all_points, key=lambda r: (r["penalty"] != "none", r["penalty"], r["power"], r["lam"], r["seed"])):
        rows.append([label(r), f"{r['lam']:.3g}", r["seed"], f"{100 * r['test_accuracy']:.2f}%", r["synops_per_sample"],
                     f"{1e6 * r['energy_j']:.3f}", f"{1e6 * r['dynamic_j']:.3f}", f"{1e6 * r['static_j']:.3f}"])
    print(format_table(["penalty", "lambda", "seed", "test acc", "SynOps/sample", f"{args.profile} µJ",
                        "dynamic µJ", "static µJ"], rows,
                       title=f"\n{spec.name} on {dataset}, {epochs} epochs, T={args.time_steps}, "
                             f"{len(train_split)} training / {len(test_split)} test images"))
    groups: dict[str, list[dict]] = {}
    for r in all_points:
        groups.setdefault(label(r), []).append(r)
    if "synaptic p=1" in groups and "spikes" in groups:
        # at each accuracy one of the two penalties reached: the cheapest run of each at that accuracy or better
        for target in sorted({r["test_accuracy"] for r in groups["synaptic p=1"] + groups["spikes"]}, reverse=True):
            syn = min_cost_at_accuracy(groups["synaptic p=1"], target, "synops_per_sample")
            spk = min_cost_at_accuracy(groups["spikes"], target, "synops_per_sample")
            print(f"fewest SynOps/sample at >= {100 * target:.2f}% accuracy: synaptic p=1 "
                  f"{'-' if syn is None else f'{syn:,.0f}'}, spike count {'-' if spk is None else f'{spk:,.0f}'}")
    plot_pareto(all_points, out / "pareto.png", f"{spec.name} on {dataset}: accuracy against cost", args.profile)
    print(f"\nresults: {results_path}   plot: {out / 'pareto.png'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except NeuromorphError as error:
        sys.exit(f"penalty_sweep: error: {error}")
