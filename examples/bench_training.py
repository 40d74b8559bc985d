"""Training throughput: neuromorph's models against the same network as a plain Norse per-time-step loop.

Both run in the same process on the same weights (the plain loop reuses the model's own Linear/Conv2d and Norse
cells, calling them one time step at a time, as a Norse user would write it); the script first checks that they
give the same spikes and logits, then times training steps (forward, backward, Adam) and prints samples per
second and ratios, plus the overhead of the synaptic penalty against no penalty, and (when snntorch is installed,
as `make venv` does for the tests) the same architecture in snnTorch.

Each neuron backend runs side by side: Norse's cells step by step, the pure-torch fused kernel, and the default
(the compiled C++ kernel on a CPU). **The floor** is the same synaptic layers' forward and backward with every
neuron population replaced by one free elementwise op: no neuron kernel can beat it, and "step / floor" says how
close the training step comes. "saved MB" is what autograd keeps for the backward pass of one step (the bulk of
its peak memory), for the plain loop and for neuromorph.

    .venv/bin/python examples/bench_training.py                 # MLP and CNN, CPU
    .venv/bin/python examples/bench_training.py --device cuda   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
from torch import nn
from torch.nn import functional as F

from neuromorph.devices import keep_freed_memory
from neuromorph.encoders import encode
from neuromorph.models import Pool2d, SpikingNet, build_model, calibrate_firing, reduce_readout
from neuromorph.neurons import KERNEL_ENV, describe
from neuromorph.penalties import synaptic_penalty
from neuromorph.report import format_table
from neuromorph.spec import cnn_spec, mlp_spec


def torch_pre(block) -> nn.Sequential:
    """A block's pass-through layers as a torch user writes them: neuromorph's Pool2d (the same values, a faster
    backward) as torch's own AvgPool2d (or AvgPool2d times k**2 for a sum pool)."""
    def plain(module):
        if not isinstance(module, Pool2d):
            return module
        pool = nn.AvgPool2d(module.kernel_size)
        return pool if module.scale == 1 else nn.Sequential(pool, _Scale(module.scale))
    return nn.Sequential(*(plain(m) for m in block.pre))


class _Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


class PlainNorseLoop(nn.Module):
    """The same network, every layer called once per time step (no time folding, no constant-input shortcut), with
    torch's own pooling modules."""

    def __init__(self, model: SpikingNet):
        super().__init__()
        self.model = model
        self.pre = [torch_pre(block) for block in model.blocks]

    def forward(self, x: torch.Tensor):
        states = [None] * len(self.model.blocks)
        spikes = [[] for _ in self.model.blocks[:-1]]
        voltages = []
        for t in range(x.shape[0]):
            h = x[t]
            for k, block in enumerate(self.model.blocks):
                h, states[k] = block.neuron(block.synapse(self.pre[k](h)), states[k])
                if k < len(spikes):
                    spikes[k].append(h)
            voltages.append(h)
        voltages = torch.stack(voltages)
        return reduce_readout(voltages, self.model.spec.readout.reduce), [torch.stack(s) for s in spikes]


class SnnTorchNet(nn.Module):
    """The same architecture in snnTorch: ``Synaptic`` neurons (alpha = 1 - b, beta = 1 - a, reset to zero) with
    weights ``a*W``, a per-time-step loop as snnTorch's tutorials write it. snnTorch resets from the previous step's
    membrane, so its spikes differ slightly from Norse's: this comparison is for throughput only."""

    def __init__(self, model: SpikingNet):
        super().__init__()
        import snntorch

        spec = model.spec
        a, b = spec.dt_s * spec.neuron.tau_mem_inv, spec.dt_s * spec.neuron.tau_syn_inv
        self.model = model
        self.pre = [torch_pre(block) for block in model.blocks]
        self.a = a
        self.cells = nn.ModuleList(
            snntorch.Synaptic(alpha=1 - b, beta=1 - a, threshold=spec.neuron.v_th, reset_mechanism="zero")
            for _ in model.blocks[:-1]
        )
        ar, br = spec.dt_s * spec.readout.tau_mem_inv, spec.dt_s * spec.readout.tau_syn_inv
        self.readout = snntorch.Synaptic(alpha=1 - br, beta=1 - ar, threshold=1e9, reset_mechanism="none")

    def forward(self, x: torch.Tensor):
        for cell in [*self.cells, self.readout]:
            cell.reset_mem()
        voltages = []
        for t in range(x.shape[0]):
            h = x[t]
            for k, block in enumerate(self.model.blocks):
                current = self.a * block.synapse(self.pre[k](h))
                if k < len(self.cells):
                    h, _, _ = self.cells[k](current)
                else:
                    _, _, v = self.readout(current)
                    voltages.append(v)
        return reduce_readout(torch.stack(voltages), self.model.spec.readout.reduce)


def best_rates(steps: dict, batch: int, repeats: int, rounds: int, device: torch.device) -> dict:
    """Samples per second of each step function: the best of ``rounds`` interleaved rounds of ``repeats`` steps.

    Interleaving and taking the best round make the ratios robust to other load on the machine.
    """
    best = dict.fromkeys(steps, 0.0)
    for step in steps.values():
        step()  # warm-up
    for _ in range(rounds):
        for name, step in steps.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(repeats):
                step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            best[name] = max(best[name], batch * repeats / (time.perf_counter() - start))
    return best


def bench(name: str, spec, batch: int, repeats: int, rounds: int, device: torch.device,
          compiled: bool = False) -> list:
    torch.manual_seed(0)
    model = build_model(spec).to(device)
    images = torch.rand((batch, *spec.input_shape), device=device)
    labels = torch.randint(0, spec.num_classes, (batch,), device=device)
    x = encode(images, spec)
    calibrate_firing(model, x, 0.05)
    plain = PlainNorseLoop(model)
    with torch.no_grad():
        ours = model(x)
        logits, spikes = plain(x)
    same_spikes = all(torch.equal(a, b) for a, b in zip(ours.spikes, spikes, strict=True))
    max_diff = (ours.logits - logits).abs().max().item()
    if not same_spikes or max_diff > 1e-4:
        raise SystemExit(f"{name}: outputs differ (spikes equal: {same_spikes}, max logit diff {max_diff:.2e})")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step_ours(penalty: bool, kernels: str = "auto"):
        def step():
            os.environ[KERNEL_ENV] = kernels  # neuromorph.neurons reads it on every call: auto, torch or norse
            out = model(encode(images, spec))
            loss = F.cross_entropy(out.logits, labels)
            if penalty:
                loss = loss + 1e-9 * synaptic_penalty(out.spikes, model.fan_outs, counts=out.spike_counts).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return step

    def loop_step(loop):
        """A training step of the per-time-step loop ``loop`` (the plain one, or the same compiled)."""
        def step():
            out_logits, _ = loop(encode(images, spec))
            loss = F.cross_entropy(out_logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return step

    step_plain = loop_step(plain)

    def step_floor():
        """The same synaptic layers, forward and backward, with every neuron replaced by a free elementwise op."""
        for block in model.blocks:
            block.integrate = free_neurons
        try:
            step_ours(False)()
        finally:
            for block in model.blocks:
                del block.integrate

    steps = {"plain": step_plain, "ours": step_ours(False), "penalty": step_ours(True),
             "norse cells": step_ours(False, kernels="norse"), "torch kernel": step_ours(False, kernels="torch"),
             "floor": step_floor}
    try:
        snn_torch = SnnTorchNet(model).to(device)

        def step_snntorch():
            loss = F.cross_entropy(snn_torch(encode(images, spec)), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        steps["snntorch"] = step_snntorch
    except ImportError:
        pass
    if compiled:  # the plain loop under torch.compile (inductor), compiled and warmed up before any timing
        step_compiled = loop_step(torch.compile(plain))
        for _ in range(2):
            step_compiled()
        steps["plain compiled"] = step_compiled
    memory = {"plain": saved_megabytes(step_plain), "ours": saved_megabytes(step_ours(False))}
    rates = best_rates(steps, batch, repeats, rounds, device)
    plain_rate, ours_rate, pen_rate = rates["plain"], rates["ours"], rates["penalty"]
    snn = rates.get("snntorch")
    os.environ[KERNEL_ENV] = "auto"
    kernels = ", ".join(sorted({describe(block.neuron, device) for block in model.blocks}))
    return {"model": name, "batch": batch, "max_logit_diff": max_diff, "kernels": kernels,
            "samples_per_s": rates, "vs_plain_loop": ours_rate / plain_rate,
            "vs_snntorch": None if snn is None else ours_rate / snn,
            "vs_norse_cells": ours_rate / rates["norse cells"],
            "vs_plain_compiled": ours_rate / rates["plain compiled"] if "plain compiled" in rates else None,
            "penalty_overhead": ours_rate / pen_rate - 1, "step_over_floor": rates["floor"] / ours_rate,
            "saved_for_backward_mb": memory}


def free_neurons(currents: torch.Tensor) -> tuple[torch.Tensor, None, None]:
    """The floor's stand-in for a neuron population (``_Block.integrate``: outputs, no spike counts, no idle
    steps): one elementwise op, forward and backward (a real tensor out, so a time-constant input is not computed
    once downstream)."""
    return currents.mul(1.0), None, None


def saved_megabytes(step) -> float:
    """Megabytes autograd keeps for the backward pass of one training step (distinct storages): the bulk of a
    training step's peak memory, measured the same way on every device."""
    storages: dict[int, int] = {}

    def pack(tensor):
        if tensor.device.type != "meta" and tensor.untyped_storage().nbytes():
            storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        step()
    return sum(storages.values()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5, help="training steps per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best round counts")
    parser.add_argument("--time-steps", type=int, default=16)
    parser.add_argument("--models", nargs="+", choices=["mlp", "cnn"], default=["mlp", "cnn"])
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice); on a machine that "
                        "is busy with other work, 1 avoids OpenMP threads waiting on each other")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--compile", action="store_true",
                        help="also time the plain loop under torch.compile (compiled before timing, 20 to 30 s)")
    args = parser.parse_args()
    keep_freed_memory()  # as neuromorph's commands do (neuromorph.devices): both sides of every ratio alike
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    if "mlp" in args.models:
        results.append(bench("mlp 784-400-10", mlp_spec(hidden=(400,), time_steps=args.time_steps), 128,
                             args.repeats, args.rounds, device, args.compile))
    if "cnn" in args.models:
        results.append(bench("cnn c16-c32 k5", cnn_spec(channels=(16, 32), time_steps=args.time_steps), 64,
                             args.repeats, args.rounds, device, args.compile))
    if args.json:
        print(json.dumps({"device": str(device), "threads": torch.get_num_threads(), "time_steps": args.time_steps,
                          "load_average": os.getloadavg(), "results": results}, indent=2))
        return
    rows = []
    for r in results:
        rate = r["samples_per_s"]
        snn = rate.get("snntorch")
        rows.append([r["model"], r["batch"], f"{r['max_logit_diff']:.1e}", rate["plain"], rate["norse cells"],
                     rate["torch kernel"], rate["ours"], f"{r['vs_plain_loop']:.2f}x",
                     "-" if snn is None else snn, "-" if snn is None else f"{r['vs_snntorch']:.2f}x",
                     f"{100 * r['penalty_overhead']:+.1f}%", rate["floor"], f"{r['step_over_floor']:.2f}x",
                     f"{r['saved_for_backward_mb']['plain']:.0f} / {r['saved_for_backward_mb']['ours']:.0f}",
                     "-" if r["vs_plain_compiled"] is None else
                     f"{rate['plain compiled']:,.0f} ({r['vs_plain_compiled']:.2f}x)", r["kernels"]])
    print(format_table(["model", "batch", "max |d logit|", "plain Norse loop", "neuromorph, Norse cells",
                        "neuromorph, torch kernel", "neuromorph", "vs Norse loop", "snnTorch", "vs snnTorch",
                        "penalty overhead", "floor", "step / floor", "saved MB loop / ours",
                        "plain loop compiled (ours vs it)", "neuron kernels"], rows,
                       title=f"training samples/s, T={args.time_steps}, {device}, {torch.get_num_threads()} threads, "
                             f"load {os.getloadavg()[0]:.2f}; spikes identical in all"))


if __name__ == "__main__":
    main()
