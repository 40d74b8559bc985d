"""Progress bars update as tqdm does on a terminal, and rarely in a log, where every update stays as a line."""

from __future__ import annotations

import io
import time

from neuromorph.progress import LOG_INTERVAL_S, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_bar(stream) -> str:
    for _ in progress_bar(range(40), file=stream, desc="epoch"):
        time.sleep(0.02)
    return stream.getvalue()


def test_a_log_gets_few_updates_and_a_terminal_many():
    log, terminal = run_bar(io.StringIO()), run_bar(Terminal())
    assert progress_bar([], file=io.StringIO()).mininterval == LOG_INTERVAL_S
    assert log.count("epoch") <= 3  # the first update and the last, nothing in between
    assert terminal.count("epoch") > 5  # tqdm's own rate: about every 0.1 s, over 0.8 s
    assert "40/40" in log and "40/40" in terminal
