"""neuromorph.devices: the allocator setting that keeps a training step's large tensors from page-faulting in."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

PROBE = """
import resource, torch
from neuromorph.devices import keep_freed_memory
tuned = keep_freed_memory()
assert keep_freed_memory() == tuned  # once per process, the same answer
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):  # warm: the first allocations fault in whatever the allocator does
    torch.ones(48 * 2**20 // 4).sum()
before = faults()
for _ in range(20):
    torch.ones(48 * 2**20 // 4).sum()  # 48 MB, above glibc's largest mmap threshold
print(tuned, (faults() - before) / 20)
"""


def probe(env_value: str | None) -> tuple[bool, float]:
    env = {"NEUROMORPH_MALLOC": env_value} if env_value is not None else {}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, **env})
    assert out.returncode == 0, out.stderr[-2000:]
    tuned, faults = out.stdout.split()
    return tuned == "True", float(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_large_blocks_are_reused_without_page_faults():
    tuned, faults = probe(None)
    untuned, faults_system = probe("system")
    assert tuned and not untuned
    assert faults_system > 5000  # 48 MB in 4 KB pages, faulted in again each time
    assert faults < faults_system / 3  # reused (glibc still splits a freed block now and then: measured 1/6)
