"""NIR interop table: each framework (Norse, snnTorch, SpikingJelly) loads this toolkit's NIR file with its own
importer and runs it; the table says whether it loaded, the share of identical hidden spike bins, the largest readout
voltage difference (Norse volts) and the share of samples with the same predicted class, against this toolkit's model.

Per framework two files: the generic one (``export --format nir``) and the one written for it (``--for
FRAMEWORK``). The networks are this toolkit's MLP, two-hidden-layer MLP, average-pool CNN, sum-pool CNN, Poisson MLP
and LIFBox MLP at MNIST's size, with data-driven initial weights (every hidden layer fires at about 10 %), on the
first MNIST test images (random images where MNIST is absent). Prints the table and writes it as JSON.

    .venv/bin/python examples/nir_interop.py --samples 8 --out examples/results/nir_interop.json
"""

from __future__ import annotations

import argparse
import io

import nir
import torch

from export.nir_runners import FRAMEWORK_RUNNERS, run_in
from export.nir_targets import GENERIC, to_nir_for
from neuromorph.data import load_split
from neuromorph.encoders import encode
from neuromorph.errors import NeuromorphError
from neuromorph.io import write_json
from neuromorph.models import build_model, calibrate_firing
from neuromorph.report import format_table
from neuromorph.spec import EncoderSpec, NeuronSpec, cnn_spec, mlp_spec


def networks(time_steps: int, quick: bool) -> dict:
    shape = (1, 12, 12) if quick else (1, 28, 28)
    width, channels = (16, (3, 4)) if quick else (128, (8, 16))
    common = {"input_shape": shape, "num_classes": 10, "time_steps": time_steps}
    cnn = {"channels": channels, "kernel_size": 3, "padding": 1, "hidden": (width // 2,), **common}
    return {
        "MLP": mlp_spec(hidden=(width,), **common),
        "two-hidden MLP": mlp_spec(hidden=(width, width // 2), **common),
        "avg-pool CNN": cnn_spec(pool_mode="avg", **cnn),
        "sum-pool CNN": cnn_spec(pool_mode="sum", **cnn),
        "Poisson MLP": mlp_spec(hidden=(width,), encoder=EncoderSpec(kind="poisson", max_rate_hz=300.0), **common),
        "LIFBox MLP": mlp_spec(hidden=(width,), neuron=NeuronSpec(cell="lifbox"), **common),
    }


def images(samples: int, shape: tuple[int, ...], data_root: str | None) -> tuple[torch.Tensor, str]:
    try:
        split = load_split("mnist", train=False, root=data_root, limit=samples, download=False)
        pictures = split.images.float() / 255
        if tuple(pictures.shape[1:]) != shape:
            pictures = torch.nn.functional.interpolate(pictures, size=shape[1:], mode="area")
        return pictures, "MNIST test images"
    except (NeuromorphError, OSError, RuntimeError):
        return torch.rand((samples, *shape), generator=torch.Generator().manual_seed(0)), "random images"


def through_file(graph):
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    buffer.seek(0)
    return nir.read(buffer)


def compare(model, x, framework: str, target: str) -> dict:
    """One cell of the table: the file for ``target`` run in ``framework`` against ``model``."""
    row = {"framework": framework, "file": target}
    try:
        graph, limits = to_nir_for(model, target)
    except NeuromorphError as error:
        return {**row, "loaded": False, "error": f"refused by the writer: {error}"}
    try:
        run = run_in(framework, through_file(graph), x)
    except Exception as error:  # noqa: BLE001 - the framework's own refusal, reported as a line of the table
        line = (str(error).strip().splitlines() or [""])[0][:120]
        return {**row, "loaded": False, "error": f"{type(error).__name__}: {line}"}
    with torch.no_grad():
        out = model(x)
    mine = out.spikes[1:] if model.spec.encoder.kind == "poisson" else out.spikes
    same = sum(int((a == b.to(a.dtype)).sum()) for a, b in zip(mine, run.spikes, strict=True))
    bins = sum(a.numel() for a in mine)
    voltage = out.voltages.double()
    row = {**row, "loaded": True, "spike_agreement": same / bins, "spike_bins": bins,
           "spikes": int(sum(a.sum() for a in mine)), "readout_max_v": float(voltage.abs().max()), "limits": limits}
    if run.readout_v is None:
        return {**row, "readout_mapped": False, "readout_max_dv": None, "same_class": None}
    return {**row, "readout_mapped": True, "readout_max_dv": float((voltage - run.readout_v).abs().max()),
            "same_class": float((voltage.amax(0).argmax(-1) == run.readout_v.amax(0).argmax(-1)).double().mean())}


def table_row(r: dict) -> list[str]:
    if not r["loaded"]:
        return [r["framework"], r["network"], r["file"], "no", r["error"][:72], "", ""]
    readout = ([f"{r['readout_max_dv']:.1e}", f"{100 * r['same_class']:.0f} %"] if r["readout_mapped"]
               else ["not mapped", ""])
    return [r["framework"], r["network"], r["file"], "yes", f"{100 * r['spike_agreement']:.2f} %", *readout]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=8, help="test samples (default 8)")
    parser.add_argument("--time-steps", type=int, default=16, help="time steps per sample (default 16)")
    parser.add_argument("--data-root", help="dataset folder (default: neuromorph's data root)")
    parser.add_argument("--quick", action="store_true", help="small networks on 12x12 images (for the tests)")
    parser.add_argument("--networks", nargs="+", metavar="NAME", help="only these networks (default: all)")
    parser.add_argument("--out", default="examples/results/nir_interop.json", help="JSON file to write")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rows = []
    chosen = networks(args.time_steps, args.quick)
    unknown = sorted(set(args.networks or ()) - set(chosen))
    if unknown:
        parser.error(f"unknown networks {unknown}; known: {', '.join(chosen)}")
    for name, spec in chosen.items():
        if args.networks and name not in args.networks:
            continue
        pictures, source = images(args.samples, spec.input_shape, args.data_root)
        x = encode(pictures, spec, generator=torch.Generator().manual_seed(1))
        model = build_model(spec).eval()
        calibrate_firing(model, x, target_rate=0.1)
        for framework in FRAMEWORK_RUNNERS:
            for target in (GENERIC, framework):
                rows.append({"network": name, **compare(model, x, framework, target)})
    table = [table_row(r) for r in rows]
    print(format_table(["framework", "network", "file", "loaded", "identical hidden spike bins", "readout max |dv| V",
                        "same class"], table, title=f"NIR interop, {args.samples} {source}, T = {args.time_steps}"))
    write_json(args.out, {"samples": args.samples, "time_steps": args.time_steps, "inputs": source, "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
