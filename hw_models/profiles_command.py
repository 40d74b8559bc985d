"""``neuromorph profiles``: the device profiles, and every constant of one with its unit, kind and source.

Registered through ``neuromorph.cli.COMMAND_MODULES``. With no argument it lists the built-in profiles; with names or
profile files it shows their constants, so that a user checks a file (it is validated exactly as ``energy`` and the
energy penalty read it) before pricing a network on it.
"""

from __future__ import annotations

import argparse

from neuromorph.command_line import HelpFormatter, add_json_argument, emit


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "profiles", help="list the device profiles, or show the constants (with sources) of some",
        description="Without arguments: the built-in device profiles. With NAME or FILE arguments: each profile's "
                    "constants with their unit, kind (measured, simulated, derived) and source. A profile file "
                    "(.toml/.json) is validated as the energy command reads it; see README, 'Device profiles'.",
        formatter_class=HelpFormatter)
    parser.add_argument("profiles", nargs="*", metavar="NAME|FILE", help="built-in profile names or profile files")
    add_json_argument(parser, "the profiles")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from hw_models.profiles import PROFILES, resolve_profile
    from neuromorph.report import format_table

    if not args.profiles:
        rows = [[p.name, "event-driven" if p.event_driven else "clock-driven", p.cores or "-",
                 "template: needs your constants" if p.needs_user_constants else f"{len(p.constants())} constants",
                 p.description] for p in PROFILES.values()]
        text = format_table(["profile", "kind", "cores", "constants", "description"], rows,
                            title="built-in device profiles (neuromorph profiles NAME for the constants)")
        emit(args, text, [p.to_dict() for p in PROFILES.values()])
        return 0
    chosen = [resolve_profile(name) for name in args.profiles]  # all validated before anything is printed
    parts = []
    for p in chosen:
        rows = [[name, c.value, c.unit, c.kind, c.source] for name, c in p.constants().items()]
        title = (f"{p.name}: {p.description} ({'event' if p.event_driven else 'clock'}-driven"
                 f"{', cores ' + p.cores if p.cores else ''}"
                 f"{', ANN priced on ' + p.ann_reference if p.ann_reference else ''})")
        parts.append(format_table(["constant", "value", "unit", "kind", "source"], rows, title=title))
    emit(args, "\n\n".join(parts), [p.to_dict() for p in chosen])
    return 0
