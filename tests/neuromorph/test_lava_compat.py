"""Lava on Python 3.11: the import hook's rewrite, netx importing, and a two-neuron network really running."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from neuromorph.lava_compat import PTH_LINE, PTH_NAME, STARTUP_OFF, import_lava, install_pth, patch_var_model_source


def test_rewrites_only_the_bad_defaults():
    source = (
        "from dataclasses import dataclass\n\n@dataclass\nclass CoreEncoder:\n"
        "    x: ByteEncoder = ByteEncoder()\n    y: int = 0\n"
    )
    patched = patch_var_model_source(source)
    assert "= ByteEncoder()" not in patched
    assert 'field(default_factory=ByteEncoder)' in patched
    assert patched.count("\n") == source.count("\n")  # line numbers in tracebacks stay right
    assert patch_var_model_source("x = 1\n") == "x = 1\n"


def test_neuromorph_does_not_import_lava():
    code = ("import sys, neuromorph, neuromorph.models, neuromorph.training, neuromorph.cli, hw_models.fanout; "
            "sys.exit(1 if any(m == 'lava' or m.startswith('lava.') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_lava_fails_without_the_hook_and_imports_with_it():
    """Proves the fix is needed (the installed files are untouched) and that it works."""
    bare = subprocess.run([sys.executable, "-c", "import lava.magma.compiler.var_model"], capture_output=True,
                          text=True, env={**os.environ, STARTUP_OFF: "1"})  # without the environment's startup hook
    assert bare.returncode != 0 and "default_factory" in bare.stderr
    netx = import_lava("lava.lib.dl.netx")
    assert hasattr(netx, "hdf5") and hasattr(netx.hdf5, "Network")


def test_the_environment_imports_lava_as_it_is():
    """`make venv` installs the startup file: a user's own `import lava.lib.dl.netx` works with no neuromorph code
    run first, and the hook it registers is this project's."""
    code = ("import lava.lib.dl.netx, sys; "
            "print(any(type(f).__module__ == 'neuromorph.lava_compat' for f in sys.meta_path))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "True"


def test_install_pth_writes_the_one_line_startup_file(tmp_path):
    path = install_pth(str(tmp_path))
    assert path == str(tmp_path / PTH_NAME) and (tmp_path / PTH_NAME).read_text() == PTH_LINE
    assert PTH_LINE.startswith("import ") and PTH_LINE.count("\n") == 1  # site.py executes one 'import' line
    assert [p.name for p in tmp_path.iterdir()] == [PTH_NAME]  # written atomically, no temporary left behind
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); exec(open({path!r}).read()); " \
           "print(sum(type(f).__name__ == '_VarModelFinder' for f in sys.meta_path))"
    on = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path,
                        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    off = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), STARTUP_OFF: "1"})
    assert on.stdout.strip() == "1" and off.stdout.strip() == "0", (on.stderr, off.stderr)


def test_importing_netx_leaves_stdout_clean():
    """lava-dl prints a Prophesee notice on stdout at import; neuromorph's JSON and tables must not get it."""
    code = "from neuromorph.lava_compat import import_lava; import_lava('lava.lib.dl.netx')"
    bare = subprocess.run([sys.executable, "-c", code.replace("import_lava('lava.lib.dl.netx')",
                                                               "import_lava(); import lava.lib.dl.netx")],
                          capture_output=True, text=True)
    assert bare.returncode == 0 and "Prophesee" in bare.stdout  # the notice this test is about still exists
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == "" and "prophesee" not in result.stderr.lower()


@pytest.mark.parametrize("tag", ["floating_pt", "fixed_pt"])
def test_two_neuron_network_runs(tag):
    """LIF A (bias 3, threshold 10, no leak) spikes every 4th step; through a Dense weight of 20 it makes LIF B
    (du = 1: current is this step's input only) spike one step later: Lava's Dense delays by one step.

    In fixed point, thresholds and synaptic input are shifted left by 6, so the bias gets exponent 6 and du is
    4095 (decay of du + 1 = 4096 out of 4096)."""
    import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor

    fixed = tag == "fixed_pt"
    du = 4095 if fixed else 1.0
    a = LIF(shape=(1,), du=0, dv=0, vth=10, bias_mant=np.array([3]), bias_exp=6 if fixed else 0)
    b = LIF(shape=(1,), du=du, dv=0, vth=10, bias_mant=np.array([0]))
    dense = Dense(weights=np.array([[20]]))
    a.s_out.connect(dense.s_in)
    dense.a_out.connect(b.a_in)
    monitors = []
    for process in (a, b):
        monitor = Monitor()
        monitor.probe(process.s_out, 12)
        monitors.append((monitor, process))
    try:
        a.run(condition=RunSteps(num_steps=12), run_cfg=Loihi2SimCfg(select_tag=tag))
        spikes = [monitor.get_data()[process.name]["s_out"][:, 0] for monitor, process in monitors]
    finally:
        a.stop()
    steps_a = (np.flatnonzero(spikes[0]) + 1).tolist()
    steps_b = (np.flatnonzero(spikes[1]) + 1).tolist()
    assert steps_a == [4, 8, 12]
    assert steps_b == [5, 9]


def test_lava_imports_after_multiprocessing_was_touched():
    """tqdm's first progress bar fixes the multiprocessing start method; Lava must still import afterwards."""
    code = ("import multiprocessing as mp; mp.RLock(); "
            "from neuromorph.lava_compat import import_lava; "
            "import_lava('lava.magma.runtime.message_infrastructure.multiprocessing'); "
            "assert mp.get_start_method() == 'fork'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
