"""The training recipe, one choice at a time: what each changes in accuracy, and what it costs.

Every row is one `neuromorph train` run on Fashion-MNIST, one thread, seed 0. Two stages:

- ``screen``: one epoch on the first 20,000 training images, tested on all 10,000 test images. Cheap enough to try
  each choice on its own against the row it changes (its ``against`` column).
- ``converge``: full data, several epochs, for the choices that only show at convergence (a learning-rate schedule,
  the cell) and to see where the chosen recipe ends.

Finished runs are not trained again (their metrics.json is read back), so the script resumes after an interruption
and two copies can run side by side on two cores (``--only NAME...`` splits the work). Writes OUT/ablation.json and
prints the table.

    python examples/recipe_ablation.py --out runs/ablation                   # everything (about 3 CPU hours)
    python examples/recipe_ablation.py --out runs/ablation --stage screen    # the one-epoch rows (about 25 min)
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _train_runs import train_once  # noqa: E402

from neuromorph.io import write_json  # noqa: E402
from neuromorph.report import format_table  # noqa: E402

FAST = ["--tau-mem-inv", "500", "--tau-syn-inv", "1000"]
WIDE = ["--channels", "32,64", "--kernel", "3", "--padding", "1"]
CHOSEN = [*WIDE, "-T", "4", *FAST, "--lr", "3e-3", "--batch-norm"]


@dataclass(frozen=True)
class Row:
    name: str
    choice: str
    against: str | None  # the row this one changes
    flags: tuple[str, ...]
    stage: str = "screen"


ROWS = [
    Row("base", "defaults: 16c5-p2-32c5-p2, T 16, tau_mem_inv 100, tau_syn_inv 200, lr 1e-3", None, ()),
    Row("taus", "tau_mem_inv 500, tau_syn_inv 1000", "base", tuple(FAST)),
    Row("lr3e-3", "lr 3e-3", "base", ("--lr", "3e-3")),
    Row("fast", "both", "base", (*FAST, "--lr", "3e-3")),
    Row("c32k3T8", "32c3-p2-64c3-p2 (padding 1), T 8", "fast", (*WIDE, "-T", "8", *FAST, "--lr", "3e-3")),
    Row("c32k3T4", "T 4", "c32k3T8", (*WIDE, "-T", "4", *FAST, "--lr", "3e-3")),
    Row("c32k3T4box", "LIFBox cell (the same as LIF at tau_syn_inv 1000), readout tau_syn_inv 200", "c32k3T4",
        (*WIDE, "-T", "4", "--cell", "lifbox", "--tau-mem-inv", "500", "--lr", "3e-3")),
    Row("T4bn", "BatchNorm (folded for export)", "c32k3T4", tuple(CHOSEN)),
    Row("T4bnlr1e2", "lr 1e-2", "T4bn", (*WIDE, "-T", "4", *FAST, "--lr", "1e-2", "--batch-norm")),
    Row("T4bnh128", "a hidden layer of 128", "T4bn", (*CHOSEN, "--hidden", "128")),
    Row("T4bnmean", "readout: mean voltage instead of max", "T4bn", (*CHOSEN, "--readout", "mean")),
    Row("T4bntri", "surrogate: triangle instead of SuperSpike", "T4bn", (*CHOSEN, "--surrogate", "triangle")),
    Row("T4bncrop", "augmentation: random shifts of 2 px", "T4bn", (*CHOSEN, "--augment", "crop")),
    Row("T4bncos", "cosine schedule (one epoch: annealed early)", "T4bn", (*CHOSEN, "--lr-schedule", "cosine")),
    Row("T4cos", "cosine schedule without BatchNorm", "c32k3T4",
        (*WIDE, "-T", "4", *FAST, "--lr", "3e-3", "--lr-schedule", "cosine")),
    Row("lif6", "6 epochs, full data, cosine", None, (*CHOSEN, "--lr-schedule", "cosine", "--epochs", "6"),
        "converge"),
    Row("lif6s1", "seed 1", "lif6", (*CHOSEN, "--lr-schedule", "cosine", "--epochs", "6", "--seed", "1"),
        "converge"),
]
STAGES = {"screen": ["--epochs", "1", "--train-limit", "20000"], "converge": []}


def run_row(row: Row, out: Path, data_root: str | None) -> dict:
    flags = ["--dataset", "fashion-mnist", "--model", "cnn", *STAGES[row.stage], *row.flags]
    history = train_once(out / row.name, flags, " ".join(row.flags) or "defaults", data_root)
    final = history[-1]
    return {"name": row.name, "choice": row.choice, "against": row.against, "stage": row.stage,
            "flags": list(row.flags), "epochs": final["epoch"], "test_accuracy": final["test_accuracy"],
            "train_accuracy": final["train_accuracy"], "synops_per_sample": final["synops_per_sample"],
            "train_seconds_per_epoch": sum(r["train_seconds"] for r in history) / len(history),
            "history_test_accuracy": [r["test_accuracy"] for r in history]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder of the runs and ablation.json")
    parser.add_argument("--stage", choices=list(STAGES), help="only this stage")
    parser.add_argument("--only", nargs="*", metavar="NAME", help="only these rows")
    parser.add_argument("--data-root", help="dataset folder (default: the CLI's)")
    args = parser.parse_args(argv)
    rows = [r for r in ROWS if (args.stage is None or r.stage == args.stage) and (not args.only or r.name in args.only)]
    for row in rows:
        run_row(row, args.out, args.data_root)
    done = {r.name: run_row(r, args.out, args.data_root) for r in ROWS
            if (args.out / r.name / "metrics.json").is_file()}
    table = []
    for r in done.values():
        ref = done.get(r["against"]) if r["against"] else None
        delta = f"{100 * (r['test_accuracy'] - ref['test_accuracy']):+.2f}" if ref else "-"
        cost = f"{r['train_seconds_per_epoch'] / ref['train_seconds_per_epoch']:.2f}x" if ref else "-"
        table.append([r["name"], r["choice"], r["against"] or "-", r["epochs"], f"{100 * r['test_accuracy']:.2f}",
                      delta, f"{r['train_seconds_per_epoch']:.0f}", cost, f"{r['synops_per_sample']:.3g}"])
    print(format_table(["run", "choice", "against", "epochs", "test %", "change", "s/epoch", "cost", "SynOps"], table,
                       title="Fashion-MNIST CNN recipe, one choice at a time (seed 0, one thread)"))
    write_json(args.out / "ablation.json", {"rows": list(done.values())})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
