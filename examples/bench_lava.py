"""Lava throughput: one sample per compiled network against many samples per compiled network, same process.

On a trained checkpoint (default: the MNIST MLP of the lambda sweep) in netx fixed point, for the first test samples:

1. baseline: ``export.lava_runner.run_netx``, one Lava run (build, compile, run) per sample;
2. the same one sample per network through ``export.lava_sim`` (its compile/run split), and samples back to back in
   one network without copies;
3. ``export.lava_sim``: all samples in one compiled network, ``--copies`` side by side, rounds back to back.

Checks that 3 gives exactly 1's spikes and readout voltages on the baseline's samples (and 2's), and prints samples
per second, the compile/run split and the speed-up.

    .venv/bin/python examples/bench_lava.py [--checkpoint PATH] [--baseline 8] [--samples 256] [--copies K]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from export.lava_sim import load_lava, simulate_fixed, simulate_one_at_a_time  # noqa: E402
from export.quantization_report import reference_inputs  # noqa: E402
from export.quantize import quantize  # noqa: E402
from neuromorph.report import format_table  # noqa: E402
from neuromorph.run import open_run  # noqa: E402

DEFAULT_CHECKPOINT = ROOT / "runs" / "mnist_mlp_sweep" / "none_lam0_p1_seed0"


def same(a, b, samples: slice) -> bool:
    spikes = all(np.array_equal(x[:, samples], y) for x, y in zip(a.spikes, b.spikes, strict=True))
    return spikes and np.array_equal(a.readout_volts[:, samples], b.readout_volts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--baseline", type=int, default=8, help="samples for the one-at-a-time runs")
    parser.add_argument("--samples", type=int, default=256, help="samples for the batched run")
    parser.add_argument("--copies", type=int, default=None, help="copies side by side (default: lava_sim's)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()

    run = open_run(args.checkpoint, args.dataset)
    model = run.model
    x, _ = run.test_samples(max(args.samples, args.baseline))
    qnet = quantize(model, calibration=x)
    inputs = reference_inputs(qnet, x)
    load_lava()

    with tempfile.TemporaryDirectory() as tmp:
        baseline = simulate_one_at_a_time(qnet, inputs[:, :args.baseline], tmp)
    singles = [simulate_fixed(qnet, inputs[:, n:n + 1], copies=1) for n in range(args.baseline)]
    back_to_back = simulate_fixed(qnet, inputs[:, :args.baseline * 4], copies=1)  # rounds only, no copies
    started = time.perf_counter()
    batched = simulate_fixed(qnet, inputs[:, :args.samples], copies=args.copies)
    wall = time.perf_counter() - started

    head = slice(0, args.baseline)
    identical_baseline = same(batched, baseline, head)
    identical_singles = all(same(batched, s, slice(n, n + 1)) for n, s in enumerate(singles))
    identical_singles = identical_singles and same(batched, back_to_back, slice(0, back_to_back.samples))
    single_compile = sum(s.compile_s for s in singles) / len(singles)
    single_run = sum(s.run_s for s in singles) / len(singles)
    rows = [
        ["one per run (run_netx, issue 4)", args.baseline, 1, "-", "-", baseline.run_s / args.baseline,
         args.baseline / baseline.run_s],
        ["one per network (lava_sim)", args.baseline, 1, single_compile, single_run, single_compile + single_run,
         1 / (single_compile + single_run)],
        ["back to back, 1 copy (lava_sim)", back_to_back.samples, 1, back_to_back.compile_s, back_to_back.run_s,
         (back_to_back.compile_s + back_to_back.run_s) / back_to_back.samples, back_to_back.samples_per_second],
        ["batched (lava_sim)", batched.samples, batched.copies, batched.compile_s, batched.run_s,
         (batched.compile_s + batched.run_s) / batched.samples, batched.samples_per_second],
    ]
    speedup = batched.samples_per_second / (args.baseline / baseline.run_s)
    print(format_table(["how", "samples", "copies", "compile s", "run s", "s/sample", "samples/s"], rows,
                       title=f"Lava fixed point (netx, Loihi2SimCfg) on {run.spec.name}, {run.dataset}, T = "
                             f"{run.spec.time_steps} (+{qnet.delays[-1]} delay steps per sample)"))
    print(f"\nbatched: {batched.lava_steps} Lava steps in {batched.run_s:.2f} s ({batched.steps_per_second:.0f} "
          f"steps/s, {batched.copies} samples per step); wall {wall:.2f} s")
    print(f"one per network: {(run.spec.time_steps + qnet.delays[-1]) / single_run:.0f} Lava steps/s in the run "
          "phase")
    print(f"speed-up over one sample per run: {speedup:.1f}x; spikes and readout voltages identical to the "
          f"one-at-a-time runs: {identical_baseline and identical_singles}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "checkpoint": args.checkpoint, "baseline_samples_per_second": args.baseline / baseline.run_s,
            "single_network": {"compile_s": single_compile, "run_s": single_run},
            "back_to_back": back_to_back.timing(),
            "batched": batched.timing(), "speedup": speedup,
            "identical": identical_baseline and identical_singles}, indent=2))
    return 0 if identical_baseline and identical_singles else 1


if __name__ == "__main__":
    sys.exit(main())
