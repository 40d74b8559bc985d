"""How much does counting activity add to plain inference? (issue 3: at most 10 % on the 10,000-image test set)

Both run in the same process on the same data, batch by batch back to back (order alternating, so that load from
other processes falls on both alike), summed over the test set; best of ``--repeats`` passes:

- plain: encode each batch and run the model (``torch.no_grad``, eval mode);
- counted: the same, plus ``ActivityRecorder.update`` on every batch and ``ActivityRecorder.result()`` at the end
  (per-neuron spike totals, non-zero analog inputs; SynOps, MACs, updates from them), i.e. what
  ``hw_models.activity.measure_activity`` and ``neuromorph energy`` do.

    python examples/bench_energy_overhead.py --checkpoint runs/mnist_mlp_sweep/none_lam0_p1_seed0
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from hw_models.activity import ActivityRecorder
from neuromorph.checkpoint import load_checkpoint
from neuromorph.data import dataset_info, iterate_batches, load_split
from neuromorph.encoders import encode
from neuromorph.errors import NeuromorphError
from neuromorph.models import build_model
from neuromorph.spec import mlp_spec


@torch.no_grad()
def run(model, split, batch_size: int) -> tuple[float, float, object]:
    """One pass over ``split``; each batch is run plain and counted back to back (order alternating), so that load
    from other processes on a shared machine falls on both alike. Returns (plain s, counted s, counts)."""
    generator = torch.Generator().manual_seed(0)
    recorder = ActivityRecorder(model)
    plain = counted = 0.0
    for number, (images, labels) in enumerate(iterate_batches(split, batch_size)):
        for counting in (False, True) if number % 2 == 0 else (True, False):
            started = time.perf_counter()
            x = encode(images, model.spec, generator)
            out = model(x)
            if counting:
                recorder.update(x, out, labels)
                counted += time.perf_counter() - started
            else:
                plain += time.perf_counter() - started
    started = time.perf_counter()
    result = recorder.result()
    counted += time.perf_counter() - started
    return plain, counted, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="checkpoint to run (default: a freshly initialized 784-400-10 MLP)")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--data-root")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if args.checkpoint:
            model = load_checkpoint(args.checkpoint).build_model()
        else:
            torch.manual_seed(0)
            model = build_model(mlp_spec(input_shape=dataset_info(args.dataset).input_shape))
        split = load_split(args.dataset, train=False, root=args.data_root)
    except NeuromorphError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    model.eval()
    run(model, split.head(args.batch_size), args.batch_size)  # warm-up
    plain, counted = [], []
    result = None
    for _ in range(args.repeats):
        seconds_plain, seconds_counted, result = run(model, split, args.batch_size)
        plain.append(seconds_plain)
        counted.append(seconds_counted)
    ratio = min(counted) / min(plain)
    synops = sum(p.synops for p in result.populations)
    print(f"{model.spec.name} on {args.dataset}: {len(split)} images, T={model.spec.time_steps}, batch "
          f"{args.batch_size}, {torch.get_num_threads()} threads, best of {args.repeats}")
    print(f"plain inference   {min(plain):8.3f} s   (all: {', '.join(f'{s:.3f}' for s in plain)})")
    print(f"with counting     {min(counted):8.3f} s   (all: {', '.join(f'{s:.3f}' for s in counted)})")
    print(f"ratio             {ratio:8.3f}     (target <= 1.10)   counted {synops:,.0f} SynOps/sample, accuracy "
          f"{100 * result.accuracy:.2f}%")
    return 0 if ratio <= 1.10 else 2


if __name__ == "__main__":
    sys.exit(main())
