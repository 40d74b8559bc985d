"""Command-line plumbing shared by every ``neuromorph`` command: argument types, the data flags, help that states
each default once, defaults read from the dataclasses that own them, and the one way a command reports.

A command reports with :func:`emit`: its text for people on stdout, or, with ``--json``, on stderr while stdout holds
only the JSON. Everything else it prints goes to :func:`log_stream`, which follows the same rule.

Bottom layer: it imports nothing of this project at module level, and the command modules (``neuromorph.cli``,
``export.cli``, ``export.simulate_command``, ``hw_models.energy_command``) import their helpers from here.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import sys
from collections.abc import Callable
from typing import Any, TextIO


def int_list(text: str) -> tuple[int, ...]:
    """``"16,32"`` -> ``(16, 32)``: comma-separated positive integers."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number at or above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return abs(value)


def _output(text: str, folder: bool) -> str:
    from neuromorph.errors import NeuromorphError
    from neuromorph.io import check_writable

    try:
        check_writable(text, folder=folder)
    except NeuromorphError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def output_file(text: str) -> str:
    """A file the command will write: refused at once when it cannot be (neuromorph.io.check_writable)."""
    return _output(text, folder=False)


def output_folder(text: str) -> str:
    """A folder the command will write into: refused at once when it cannot be."""
    return _output(text, folder=True)


def output_checkpoint(text: str) -> str:
    """A folder for a checkpoint, or a checkpoint file name ending in ``.pt``."""
    return _output(text, folder=not text.endswith(".pt"))


def field_default(cls: type, name: str) -> Any:
    """The default of dataclass ``cls``'s field ``name`` (its default factory called)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            raise ValueError(f"{cls.__name__}.{name} has no default")
    raise ValueError(f"{cls.__name__} has no field {name!r}")


def parameter_default(function: Callable[..., Any], name: str) -> Any:
    """The default of ``function``'s parameter ``name``."""
    default = inspect.signature(function).parameters[name].default
    if default is inspect.Parameter.empty:
        raise ValueError(f"{function.__name__}() has no default for {name!r}")
    return default


def format_int_list(values: tuple[int, ...]) -> str:
    """How :func:`int_list` values are written on the command line: ``16,32``; ``none`` when empty."""
    return ",".join(str(v) for v in values) or "none"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: X)`` to a flag's help unless its help already states the default, or there is nothing
    to state (the default is None, or False for a switch)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "(default" in text or action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def add_data_arguments(parser: argparse.ArgumentParser, dataset_default: str | None = None) -> None:
    """``--dataset`` (default ``dataset_default``; None: the one the checkpoint was trained for) and ``--data-root``."""
    from neuromorph.data import DATA_ENV, DATASETS

    default = dataset_default or "the checkpoint's training dataset"
    parser.add_argument("--dataset", choices=list(DATASETS), default=dataset_default,
                        help=f"dataset (default: {default}); cifar10 reads cifar-10-batches-py under --data-root")
    parser.add_argument("--data-root", metavar="DIR",
                        help=f"folder holding the datasets (default: ${DATA_ENV}, else ../shared/datasets when it "
                             "exists, read without downloading, else ~/.cache/neuromorph/datasets with download)")


def add_json_argument(parser: argparse.ArgumentParser, what: str = "the report") -> None:
    parser.add_argument("--json", action="store_true",
                        help=f"print {what} as JSON on stdout (everything else then goes to stderr)")


def log_stream(args: argparse.Namespace) -> TextIO:
    """Where a command writes what people read: stdout, or stderr under ``--json`` (stdout then holds the JSON)."""
    return sys.stderr if getattr(args, "json", False) else sys.stdout


def emit(args: argparse.Namespace, text: str | None, data: Any = None) -> None:
    """A command's report: ``text`` on :func:`log_stream`; with ``--json`` also ``data`` as JSON on stdout (none
    when ``data`` is None)."""
    if text is not None:
        print(text, file=log_stream(args))
    if getattr(args, "json", False) and data is not None:
        print(json.dumps(data, indent=2))
