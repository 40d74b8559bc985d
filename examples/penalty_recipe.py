"""How the penalty is applied, at a fixed lambda: constant from the start, ramped up, or fine-tuning a trained net.

The sweep (examples/penalty_sweep.py) trains every point from scratch with a constant lambda. This script asks
whether the same penalty reaches fewer synaptic operations at the same accuracy when it is applied differently:

- ``constant``: lambda from the first step (the sweep's way);
- ``ramp``: lambda raised linearly over the first epochs (``--lam-schedule ramp``), so the net first learns the
  task and then sheds spikes;
- ``finetune``: the unpenalized baseline's checkpoint trained further with the penalty (``--init-from``), at a lower
  learning rate;

and whether another network or training does (fewer time steps, a wider first layer, random shifts, a lower initial
firing rate), each row then read against its own unpenalized baseline (its ``against``).

Every row is one ``neuromorph train`` run of a preset (default: mnist-mlp at T 8, its T when these rows ran), one
thread, seed 0. Finished runs are not trained again (their metrics.json is read back) and an interrupted one
resumes from its checkpoint, so two copies can share the work (``--only NAME...``). Writes OUT/penalty_recipe.json
and prints the table (accuracy, SynOps per sample, the cut against the row's baseline).

    python examples/penalty_recipe.py --out runs/penalty_recipe                # all rows (about 80 CPU minutes)
    python examples/penalty_recipe.py --out runs/penalty_recipe --only base ramp1e-5
    python examples/penalty_recipe.py --out runs/check --quick --only base     # seconds: a check that it runs
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


@dataclass(frozen=True)
class Row:
    name: str
    how: str  # constant | ramp | finetune | none
    lam: float
    flags: tuple[str, ...] = ()
    power: float = 1.0
    model: tuple[str, ...] = ()  # model flags: the preset's network written out with these changes (no --preset)
    against: str = "base"  # the unpenalized row this one is read against (its own baseline where the net differs)


FINETUNE = ("--epochs", "10", "--lr", "1e-3")  # from the baseline's weights: fewer epochs, a lower peak rate
RAMP = ("--lam-schedule", "ramp", "--ramp-epochs", "10")
ROWS = [
    Row("base", "none", 0.0),
    Row("const1e-5", "constant", 1e-5),
    Row("ramp1e-5", "ramp", 1e-5, RAMP),
    Row("ft1e-5", "finetune", 1e-5, FINETUNE),
    Row("ramp3e-5", "ramp", 3e-5, RAMP),
    Row("ft3e-5", "finetune", 3e-5, FINETUNE),
    Row("ft1e-4", "finetune", 1e-4, FINETUNE),
    Row("p2ramp2e-5", "ramp", 2e-5, RAMP, power=2.0),
    # twice the epochs, the baseline too (a penalized net may need longer to recover its accuracy)
    Row("base30", "none", 0.0, ("--epochs", "30")),
    Row("const1e-5x30", "constant", 1e-5, ("--epochs", "30")),
    Row("const3e-6x30", "constant", 3e-6, ("--epochs", "30")),
    # other networks and initializations, each against its own unpenalized baseline (2026-12-04)
    Row("baseT4", "none", 0.0, model=("-T", "4"), against="baseT4"),
    Row("const3e-6T4", "constant", 3e-6, model=("-T", "4"), against="baseT4"),
    Row("const1e-5T4", "constant", 1e-5, model=("-T", "4"), against="baseT4"),
    Row("base800", "none", 0.0, model=("--hidden", "800,200"), against="base800"),
    Row("const1e-5w800", "constant", 1e-5, model=("--hidden", "800,200"), against="base800"),
    Row("const3e-5w800", "constant", 3e-5, model=("--hidden", "800,200"), against="base800"),
    Row("const1e-6T4", "constant", 1e-6, model=("-T", "4"), against="baseT4"),
    Row("baseT2", "none", 0.0, model=("-T", "2"), against="baseT2"),
    Row("const1e-6T2", "constant", 1e-6, model=("-T", "2"), against="baseT2"),
    Row("const3e-6T2", "constant", 3e-6, model=("-T", "2"), against="baseT2"),
    Row("baseT1", "none", 0.0, model=("-T", "1"), against="baseT1"),
    Row("const1e-6T1", "constant", 1e-6, model=("-T", "1"), against="baseT1"),
    # the penalized nets keep their training accuracy (99.3 % at 1e-5, T 4) while the test accuracy falls: regularize
    Row("baseT4crop", "none", 0.0, ("--augment", "crop"), model=("-T", "4"), against="baseT4crop"),
    Row("const3e-6T4crop", "constant", 3e-6, ("--augment", "crop"), model=("-T", "4"), against="baseT4crop"),
    Row("const1e-5T4crop", "constant", 1e-5, ("--augment", "crop"), model=("-T", "4"), against="baseT4crop"),
    Row("base_ir01", "none", 0.0, ("--init-rate", "0.01"), against="base_ir01"),
    Row("const1e-5ir01", "constant", 1e-5, ("--init-rate", "0.01"), against="base_ir01"),
    # random shifts at the preset's T since 2026-12-04, T = 2, where the penalty's lambdas are the sweep's
    Row("baseT2crop", "none", 0.0, ("--augment", "crop"), model=("-T", "2"), against="baseT2crop"),
    Row("const3e-6T2crop", "constant", 3e-6, ("--augment", "crop"), model=("-T", "2"), against="baseT2crop"),
    Row("const1e-5T2crop", "constant", 1e-5, ("--augment", "crop"), model=("-T", "2"), against="baseT2crop"),
]
# the mnist-mlp preset's network as flags, for rows that change it (--preset refuses model flags)
PRESET_MODELS = {"mnist-mlp": ("--model", "mlp", "--hidden", "400,200", "--batch-norm",
                               "--tau-mem-inv", "500", "--tau-syn-inv", "1000")}


def row_flags(row: Row, out: Path, preset: str, time_steps: int, augment: str = "none") -> list[str]:
    """``neuromorph train``'s flags for a row: the preset (or, where the row changes the network, the preset's dataset,
    recipe and network written out, changed) with ``augment`` (a row's own ``--augment`` wins), seed 0, the row's
    flags and its penalty."""
    flags = ["--preset", preset, "--time-steps", str(time_steps)]
    if row.model:
        from neuromorph.presets import get_preset

        if preset not in PRESET_MODELS:
            raise SystemExit(f"row {row.name} changes the network, which is written out for "
                             f"{', '.join(PRESET_MODELS)} only")
        recipe = get_preset(preset)
        flags = ["--dataset", recipe.dataset, *[f"--{k.replace('_', '-')}={v}" for k, v in recipe.settings.items()],
                 *PRESET_MODELS[preset], "--time-steps", str(time_steps), *row.model]
    flags += ["--augment", augment, "--seed", "0", *row.flags]
    if row.how != "none":
        flags += ["--penalty", "synaptic", "--lam", str(row.lam), "--power", str(row.power)]
    if row.how == "finetune":
        flags += ["--init-from", str(out / "base" / "checkpoint.pt")]
    return flags


def run_row(row: Row, out: Path, preset: str, data_root: str | None, train: bool,
            extra: tuple[str, ...] = (), time_steps: int = 8, augment: str = "none") -> dict | None:
    flags = row_flags(row, out, preset, time_steps, augment) + list(extra)
    history = train_once(out / row.name, flags, " ".join(flags), data_root, train)
    if history is None:
        return None
    final = history[-1]
    return {"name": row.name, "how": row.how, "lam": row.lam, "power": row.power, "flags": list(row.flags),
            "model": list(row.model), "against": row.against,
            "epochs": final["epoch"], "test_accuracy": final["test_accuracy"],
            "synops_per_sample": final["synops_per_sample"], "synops_per_layer": final["synops_per_layer"],
            "train_seconds": sum(r["train_seconds"] for r in history),
            "history_test_accuracy": [r["test_accuracy"] for r in history],
            "history_synops_per_sample": [r["synops_per_sample"] for r in history]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder of the runs and penalty_recipe.json")
    parser.add_argument("--preset", default="mnist-mlp", help="the network and recipe (neuromorph presets)")
    parser.add_argument("--only", nargs="*", metavar="NAME", help="only these rows (base first where fine-tuning)")
    parser.add_argument("--report-only", action="store_true", help="train nothing: the table of the finished rows")
    parser.add_argument("--data-root", help="dataset folder (default: the CLI's)")
    parser.add_argument("--time-steps", type=int, default=8,
                        help="the preset's T for the rows that keep it (default 8: the T these rows ran at on "
                             "2026-12-03/04, the mnist-mlp preset's T then)")
    parser.add_argument("--augment", default="none",
                        help="augmentation of the rows that do not set their own (default none: these rows ran "
                             "without random shifts, the mnist-mlp preset's recipe until 2026-12-04)")
    parser.add_argument("--quick", action="store_true",
                        help="seconds instead of minutes a row: 512 training / 256 test images, one epoch (a check)")
    args = parser.parse_args(argv)
    extra = ("--train-limit", "512", "--test-limit", "256", "--epochs", "1") if args.quick else ()
    for row in ROWS:
        if not args.report_only and (not args.only or row.name in args.only):
            run_row(row, args.out, args.preset, args.data_root, train=True, extra=extra, time_steps=args.time_steps,
                    augment=args.augment)
    done = [r for r in (run_row(row, args.out, args.preset, args.data_root, train=False) for row in ROWS) if r]
    finished = {r["name"]: r for r in done}
    table = []
    for r in done:
        base = finished.get(r["against"])
        change = f"{100 * (r['test_accuracy'] - base['test_accuracy']):+.2f}" if base else "-"
        cut = f"{base['synops_per_sample'] / r['synops_per_sample']:.2f}x" if base else "-"
        table.append([r["name"], r["how"], " ".join(r["flags"] + r["model"]), r["against"], f"{r['lam']:g}",
                      f"{r['power']:g}", r["epochs"],
                      f"{100 * r['test_accuracy']:.2f}", change, f"{r['synops_per_sample']:,.0f}", cut])
    print(format_table(["run", "penalty applied", "changes", "against", "lambda", "p", "epochs", "test %", "change",
                        "SynOps/sample", "cut"], table,
                       title=f"{args.preset}: the synaptic penalty applied other ways (seed 0, one thread)"))
    write_json(args.out / "penalty_recipe.json", {"preset": args.preset, "rows": done})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
