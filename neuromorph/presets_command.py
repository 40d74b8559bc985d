"""``neuromorph presets``: the named networks of ``train --preset``, with their recipe and what they reached.

Registered through ``neuromorph.cli.COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse

from neuromorph.command_line import HelpFormatter, add_json_argument, emit


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "presets", help="list the named networks that train --preset builds, with their recipes",
        description="The presets of `neuromorph train --preset NAME`: each network, the dataset it is made for, its "
                    "training recipe (flags given to train override it) and the accuracy it reached, measured on "
                    "what. A preset NAME shows its layers.", formatter_class=HelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help="presets to show layer by layer")
    add_json_argument(parser, "the presets")
    parser.set_defaults(handler=run)


def _summary(preset) -> dict:
    import torch

    from neuromorph.data import dataset_info
    from neuromorph.models import build_model

    info = dataset_info(preset.dataset)
    spec = preset.spec(info.input_shape, info.num_classes)
    with torch.device("meta"):  # counts the parameters without allocating them
        parameters = sum(p.numel() for p in build_model(spec).parameters())
    recipe = ", ".join(f"{k} {v}" for k, v in preset.settings.items())
    return {"name": preset.name, "dataset": preset.dataset, "description": preset.description,
            "synaptic_layers": sum(1 for layer in spec.layers if layer.synaptic), "parameters": parameters,
            "time_steps": spec.time_steps, "recipe": recipe, "reached": preset.reached, "spec": spec.to_dict()}


def run(args: argparse.Namespace) -> int:
    from neuromorph.presets import PRESETS, get_preset
    from neuromorph.report import format_table

    chosen = [get_preset(name) for name in args.names] if args.names else list(PRESETS.values())
    summaries = [_summary(p) for p in chosen]
    if not args.names:
        rows = [[s["name"], s["dataset"], s["synaptic_layers"], f"{s['parameters']:,}", s["time_steps"], s["recipe"],
                 s["reached"] or "-"] for s in summaries]
        text = format_table(["preset", "dataset", "layers", "parameters", "T", "recipe", "reached"], rows,
                            title="presets (neuromorph train --preset NAME --out DIR; neuromorph presets NAME for "
                                  "the layers)")
    else:
        from neuromorph.spec import ModelSpec

        parts = []
        for s in summaries:
            spec = ModelSpec.from_dict(s["spec"])
            rows = [[i, str(layer), "x".join(map(str, shape))]
                    for i, (layer, shape) in enumerate(zip(spec.layers, spec.layer_shapes(), strict=True))]
            parts.append(format_table(["#", "layer", "output"], rows,
                                      title=f"{s['name']}: {s['description']}\nrecipe: {s['recipe']}"))
        text = "\n\n".join(parts)
    emit(args, text, summaries)
    return 0
