"""Loihi-exact training cost: one training step (forward, backward) of the same weights in Norse float and in Loihi
fixed point, side by side in one process, with the multi-step kernels (neuromorph.neurons, export.loihi_cuba) on and
off (``NEUROMORPH_NEURON_KERNEL=norse``: Norse's cells and the step-by-step fixed-point arithmetic).

    .venv/bin/python examples/bench_loihi_exact.py --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import torch
from torch.nn import functional as F

from neuromorph.devices import keep_freed_memory
from neuromorph.encoders import encode
from neuromorph.models import build_model, calibrate_firing
from neuromorph.neurons import KERNEL_ENV
from neuromorph.report import format_table
from neuromorph.spec import FixedPointSpec, cnn_spec, mlp_spec


def step_seconds(model, x, labels, kernels: str, rounds: int) -> float:
    """The best of ``rounds`` training steps (forward and backward) of ``model`` on ``x``."""
    os.environ[KERNEL_ENV] = kernels
    best = float("inf")
    for _ in range(rounds + 1):  # the first is a warm-up
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        F.cross_entropy(model(x).logits, labels).backward()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="timed steps per configuration; the best counts")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()
    keep_freed_memory()  # as neuromorph's commands do (neuromorph.devices): both sides of every ratio alike
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for name, spec, batch in (("mlp 784-400-10", mlp_spec(hidden=(400,)), 128), ("cnn c16-c32 k5", cnn_spec(), 64)):
        torch.manual_seed(0)
        model = build_model(spec)
        images, labels = torch.rand((batch, *spec.input_shape)), torch.randint(0, spec.num_classes, (batch,))
        x = encode(images, spec)
        calibrate_firing(model, x, 0.05)
        with torch.no_grad():
            volts = float(model(x).voltages.abs().max())
        exact = build_model(dataclasses.replace(spec, fixed_point=FixedPointSpec(readout_volts=volts)))
        exact.load_state_dict(model.state_dict())
        times = {(arith, kernels): step_seconds(net, x, labels, kernels, args.rounds)
                 for arith, net in (("float", model), ("exact", exact)) for kernels in ("norse", "fused")}
        os.environ[KERNEL_ENV] = "fused"
        rows.append([name, batch, *(1e3 * times[k] for k in (("float", "norse"), ("float", "fused"),
                                                               ("exact", "norse"), ("exact", "fused"))),
                     f"{times['exact', 'norse'] / times['float', 'norse']:.2f}x",
                     f"{times['exact', 'fused'] / times['float', 'fused']:.2f}x"])
    print(format_table(["model", "batch", "float, Norse cells (ms)", "float, kernels (ms)",
                        "Loihi-exact, step-by-step CUBA (ms)", "Loihi-exact, kernels (ms)", "exact/float, kernels off",
                        "exact/float, kernels on"], rows,
                       title=f"one training step, T=16, cpu, {torch.get_num_threads()} threads"))


if __name__ == "__main__":
    main()
