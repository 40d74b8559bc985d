"""Sweeps as Optuna studies (neuromorph.sweep): seed means and the extra-seed policy by hand; the storage lock;
two worker processes sharing one study on SQLite and on a PostgreSQL server started here, each point trained once;
re-runs that train nothing; a killed worker's trial retried from its checkpoint; a multi-objective search."""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from hw_models.sweep_command import add_sweep_arguments, build_spec, pricer, settings_from_args, study_name
from neuromorph import sweep
from neuromorph.cli import main

ROOT = Path(__file__).resolve().parents[2]
POINTS = ["none:0", "spikes:1e-4", "synaptic:1e-5", "synaptic:2e-5:2"]
KEYS = ["none:lam=0:p=1:seed=0", "spikes:lam=0.0001:p=1:seed=0", "synaptic:lam=1e-05:p=1:seed=0",
        "synaptic:lam=2e-05:p=2:seed=0"]
EPOCH_LINE = re.compile(r"^(\S+) epoch (\d+): test acc", re.MULTILINE)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    from tests.test_fuzz import write_mnist_layout

    root = tmp_path_factory.mktemp("sweep-data")
    write_mnist_layout(root, n=320)
    return root


def tiny(data_root: Path, out: Path, *extra: str) -> list[str]:
    return ["sweep", "--data-root", str(data_root), "--sizes", "16", "--epochs", "1", "--time-steps", "4",
            "--batch-size", "64", "--device", "cpu", "--threads", "1", "--out", str(out), *extra]


def trained(text: str) -> Counter:
    """(point key, epoch) -> how many times it was trained, from the workers' epoch lines."""
    return Counter(EPOCH_LINE.findall(text))


def load_study(out: Path, url: str | None = None, name: str | None = None):
    import optuna

    return optuna.load_study(study_name=name or out.name, storage=sweep.open_storage(url or sweep.default_storage(out)))


def states_by_key(study) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for trial in study.get_trials():
        found.setdefault(trial.user_attrs["key"], []).append(trial.state.name)
    return found


# --- pure core --------------------------------------------------------------------------------------------------

def record(penalty, lam, power, seed, accuracy, synops, energy=1e-6):
    return {"penalty": penalty, "lam": lam, "power": power, "seed": seed, "test_accuracy": accuracy,
            "synops_per_sample": synops, "energy_j": energy, "dynamic_j": energy / 2, "static_j": energy / 2}


RECORDS = [record("none", 0.0, 1.0, 0, 0.90, 1000), record("none", 0.0, 1.0, 1, 0.92, 1200),
           record("synaptic", 1e-5, 1.0, 0, 0.905, 400), record("synaptic", 1e-5, 1.0, 1, 0.91, 300),
           record("synaptic", 1e-4, 1.0, 0, 0.80, 100), record("spikes", 1e-3, 1.0, 0, 0.89, 600)]


def test_summarize_means_and_deviations_over_seeds():
    groups = sweep.summarize(RECORDS)
    assert [(g.penalty, g.lam, g.seeds) for g in groups] == [
        ("none", 0.0, (0, 1)), ("spikes", 1e-3, (0,)), ("synaptic", 1e-5, (0, 1)), ("synaptic", 1e-4, (0,))]
    base, _, syn, _ = groups
    assert base.mean["test_accuracy"] == pytest.approx(0.91) and base.std["test_accuracy"] == pytest.approx(
        statistics.stdev([0.90, 0.92]))
    assert syn.mean["synops_per_sample"] == 350 and syn.std["synops_per_sample"] == pytest.approx(70.7107, rel=1e-5)
    assert groups[1].std["test_accuracy"] is None  # one seed: no deviation


def test_synops_cut_at_half_a_point_on_seed_means():
    cuts = sweep.synops_cuts(sweep.summarize(RECORDS))
    # baseline 91 %, 1100 SynOps: synaptic 1e-5 (90.75 %) qualifies, 1e-4 (80 %) does not; spikes (89 %) does not
    assert set(cuts) == {"synaptic p=1"}
    assert cuts["synaptic p=1"]["lam"] == 1e-5 and cuts["synaptic p=1"]["cut"] == pytest.approx(1100 / 350)


def test_extra_seeds_go_to_the_baseline_and_the_points_near_it():
    first = [r for r in RECORDS if r["seed"] == 0]  # baseline 90 %; synaptic 1e-5 90.5 %, spikes 89 %, 1e-4 80 %
    chosen = sweep.extra_seed_points(sweep.summarize(first), (1, 2), within=1.0)
    assert sorted(p.key for p in chosen) == sorted(
        f"{name}:seed={s}" for name in ("none:lam=0:p=1", "synaptic:lam=1e-05:p=1", "spikes:lam=0.001:p=1")
        for s in (1, 2))
    assert {p.key for p in sweep.extra_seed_points(sweep.summarize(first), (1,), within=0.6)} == {
        "none:lam=0:p=1:seed=1", "synaptic:lam=1e-05:p=1:seed=1"}
    with pytest.raises(sweep.NeuromorphError, match="baseline"):
        sweep.extra_seed_points(sweep.summarize(first[1:]), (1,), within=1.0)


def test_extra_seeds_are_chosen_on_the_baselines_mean_once_its_seeds_are_in():
    plan = sweep.Plan(None, [sweep.Point("none", 0.0), sweep.Point("spikes", 1e-3)], extra_seeds=(1, 2),
                      extra_within=1.0)
    pass_one = [record("none", 0.0, 1.0, 0, 0.91, 1000), record("spikes", 1e-3, 1.0, 0, 0.895, 600)]
    first = {sweep.Point.from_attrs(r).key: r for r in pass_one}
    assert sweep.extra_seeds_due(plan, dict(list(first.items())[:1])) is None  # the first pass is not finished
    # seed 0 alone: spikes lies 1.5 points below the baseline, so only the baseline gets seeds 1 and 2
    assert {p.key for p in sweep.extra_seeds_due(plan, first)} == {"none:lam=0:p=1:seed=1", "none:lam=0:p=1:seed=2"}
    # the baseline's seeds 1 and 2 bring its mean to 90.33 %: spikes is within a point of it and gets its seeds
    more = {**first, **{f"none:lam=0:p=1:seed={s}": record("none", 0.0, 1.0, s, 0.90, 1000) for s in (1, 2)}}
    assert {p.key for p in sweep.extra_seeds_due(plan, more)} == {
        f"{name}:seed={s}" for name in ("none:lam=0:p=1", "spikes:lam=0.001:p=1") for s in (1, 2)}


def test_settings_differences_name_the_setting():
    settings = sweep.SweepSettings(spec={"a": 1}, dataset="mnist", epochs=1, batch_size=64, lr=1e-3,
                                   train_limit=None, test_limit=None, profile="loihi1", objective="synops")
    assert settings.differences(settings.to_dict()) == []
    assert settings.differences({**settings.to_dict(), "lr": 3e-3, "spec": {"a": 2}}) == ["lr", "spec"]


def test_the_storage_lock_excludes_a_second_holder_and_breaks_a_dead_ones(tmp_path):
    storage = sweep.open_storage(f"sqlite:///{tmp_path / 'lock.db'}")
    first, second = sweep.StudyLock(storage, "s"), sweep.StudyLock(storage, "s")
    assert first.acquire(timeout_s=1)
    assert not second.acquire(timeout_s=0.3)
    first.release()
    assert second.acquire(timeout_s=1)
    # a holder that died inside: its lock is broken once older than stale_s
    patient = sweep.StudyLock(storage, "s", stale_s=0.5)
    assert patient.acquire(timeout_s=5)
    second.release()  # its lock was broken: releasing it must not delete the new holder's
    assert not sweep.StudyLock(storage, "s", stale_s=60).acquire(timeout_s=0.2)
    patient.release()


# --- workers ----------------------------------------------------------------------------------------------------

def start_workers(args: list[str], count: int = 2) -> list[str]:
    """``count`` worker processes started together; their outputs once all have exited (each must succeed)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, "-m", "neuromorph", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT) for _ in range(count)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    for worker, text in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, text
    return outputs


def check_each_point_ran_once(outputs: list[str], study) -> None:
    assert states_by_key(study) == {key: ["COMPLETE"] for key in KEYS}
    assert trained("\n".join(outputs)) == Counter({(key, "1"): 1 for key in KEYS})
    assert sum(int(re.search(r"this worker ran (\d+) trial", text).group(1)) for text in outputs) == len(KEYS)


@pytest.mark.slow
def test_two_workers_share_a_sqlite_study_and_a_rerun_trains_nothing(data_root, tmp_path, capsys):
    out = tmp_path / "grid"
    outputs = start_workers(tiny(data_root, out, "--points", *POINTS))
    check_each_point_ran_once(outputs, load_study(out))
    assert sorted(p.name for p in (out / "trials").iterdir()) == sorted(sweep.folder_name(k) for k in KEYS)
    for key in KEYS:
        folder = out / "trials" / sweep.folder_name(key)
        assert (folder / "checkpoint.pt").is_file()
        assert json.loads((folder / "metrics.json").read_text())["epochs_done"] == 1
    attrs = load_study(out).get_trials()[0].user_attrs
    assert attrs["machine"]["hostname"] == socket.gethostname() and attrs["machine"]["torch_threads"] == 1
    assert attrs["seconds"] > 0 and attrs["finished"] >= attrs["started"]
    assert attrs["metrics"]["energy_j"] > attrs["metrics"]["dynamic_j"] > 0

    assert main(tiny(data_root, out, "--points", *POINTS)) == 0  # finished: nothing is trained again
    printed = capsys.readouterr().out
    assert "0 point(s) enqueued, 4 there already" in printed and "this worker ran 0 trial(s)" in printed
    assert not trained(printed)
    assert main(tiny(data_root, out, "--points", *POINTS, "--lr", "3e-3")) == 1  # other settings: refused
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "other settings (lr differ)" in error


def test_results_and_table_are_seed_means_from_the_study(data_root, tmp_path, capsys):
    out = tmp_path / "seeds"
    assert main(tiny(data_root, out, "--points", "none:0", "synaptic:1e-5", "--seeds", "0", "1", "--json")) == 0
    document = json.loads(capsys.readouterr().out)
    assert document == json.loads((out / "results.json").read_text())
    records = list(sweep.study_records(load_study(out)).values())
    assert len(records) == len(document["points"]) == 4
    for group in document["groups"]:
        members = [r for r in records if (r["penalty"], r["lam"]) == (group["penalty"], group["lam"])]
        assert group["seeds"] == [0, 1]
        for name in ("test_accuracy", "synops_per_sample", "energy_j"):
            values = [r[name] for r in members]
            assert group[name] == pytest.approx(statistics.mean(values))
            assert group[f"{name}_std"] == pytest.approx(statistics.stdev(values))
    assert (out / "pareto.png").stat().st_size > 0
    assert main(tiny(data_root, out, "--points", "none:0", "synaptic:1e-5", "--seeds", "0", "1")) == 0
    table = capsys.readouterr().out
    assert re.search(r"none\s+0\s+2\s+[\d.]+ ± [\d.]+", table) and "SynOps cut at <= 0.5 point" in table


def test_extra_seeds_are_enqueued_after_the_first_pass(data_root, tmp_path, capsys):
    out = tmp_path / "extra"
    # within 100 points every point is near the baseline: each gets the extra seed, once the first pass is done
    assert main(tiny(data_root, out, "--points", "none:0", "synaptic:1e-5", "--extra-seeds-within", "100",
                     "--extra-seeds", "1")) == 0
    printed = capsys.readouterr().out
    numbers = {key: n for n, key in re.findall(r"trial (\d+): (\S+)", printed)}
    assert sorted(numbers) == ["none:lam=0:p=1:seed=0", "none:lam=0:p=1:seed=1", "synaptic:lam=1e-05:p=1:seed=0",
                               "synaptic:lam=1e-05:p=1:seed=1"]
    assert max(int(numbers[k]) for k in numbers if k.endswith("seed=0")) < min(
        int(numbers[k]) for k in numbers if k.endswith("seed=1"))


def test_a_killed_workers_trial_is_retried_from_its_checkpoint(data_root, tmp_path, capsys):
    out = tmp_path / "killed"
    flags = tiny(data_root, out, "--epochs", "2", "--heartbeat", "1", "--points", "synaptic:1e-5")
    parser = argparse.ArgumentParser()
    add_sweep_arguments(parser)
    args = parser.parse_args(flags[1:])
    spec = build_spec(args)
    settings = settings_from_args(args, spec)
    storage = sweep.open_storage(sweep.default_storage(out), heartbeat_s=1)
    study = sweep.open_study(storage, study_name(args), settings)
    plan = sweep.Plan(settings, [sweep.Point("synaptic", 1e-5)])
    # what a worker does until it is killed after epoch 1 of 2: claim, beat once, train one epoch, then silence
    with sweep.StudyLock(storage, study.study_name):
        sweep.enqueue_missing(study, plan.points)
        trial, point = sweep._claim(study, plan)
        storage.record_heartbeat(trial._trial_id)
    from neuromorph.data import load_split

    splits = [load_split("mnist", train, str(data_root)) for train in (True, False)]
    sweep.point_trainer(spec, replace(settings, epochs=1), *splits, "cpu",
                        pricer("mnist", "loihi1", splits[1], "cpu"), log=lambda _: None)(
        point, out / "trials" / trial.user_attrs["folder"])
    assert study.get_trials()[0].state.name == "RUNNING"
    deadline = time.monotonic() + 30  # the grace period is 3 heartbeats; wait until the storage calls it stale
    while trial._trial_id not in storage._get_stale_trial_ids(study._study_id):
        assert time.monotonic() < deadline, "the killed worker's trial never became stale"
        time.sleep(0.5)

    assert main(flags) == 0
    printed = capsys.readouterr().out
    assert f"trial 1: {point.key} (retry of trial 0)" in printed
    assert trained(printed) == Counter({(point.key, "2"): 1})  # epoch 1 came from the checkpoint
    study = load_study(out)
    assert [t.state.name for t in study.get_trials()] == ["FAIL", "COMPLETE"]
    metrics = study.get_trials()[1].user_attrs["metrics"]
    assert (metrics["epochs"], metrics["resumed_from_epoch"], metrics["epochs_trained"]) == (2, 1, 1)


def test_a_multi_objective_search_reports_its_pareto_front(data_root, tmp_path, capsys):
    out = tmp_path / "search"
    assert main(tiny(data_root, out, "--search", "tpe", "--trials", "3", "--points", "none:0",
                     "--objective", "energy", "--lam-range", "1e-6", "1e-4", "--json")) == 0
    document = json.loads(capsys.readouterr().out)
    study = load_study(out)
    assert [t.state.name for t in study.get_trials()] == ["COMPLETE"] * 3
    sampled = study.get_trials()[1:]
    assert all(t.params["penalty"] in ("spikes", "synaptic", "synaptic:2") and 1e-6 <= t.params["lam"] <= 1e-4
               for t in sampled)
    assert {t["trial"] for t in document["best_trials"]} == {t.number for t in study.best_trials} != set()
    for trial in study.get_trials():  # the objectives: accuracy and joules per inference
        metrics = trial.user_attrs["metrics"]
        assert trial.values == [metrics["test_accuracy"], metrics["energy_j"]]
    assert document["settings"]["mode"] == "tpe" and document["settings"]["objective"] == "energy"


@pytest.mark.parametrize("flags, message", [
    (["--storage", "nosuchdb://x/y", "--points", "none:0"], "cannot open the study storage nosuchdb:"),
    (["--storage", "postgresql://u:secret@127.0.0.1:1/db", "--points", "none:0"], "cannot open the study storage"),
    (["--search", "nsga2"], "--search needs --trials N"),
    (["--points", "none:0", "--trials", "3"], "--trials is for --search"),
    (["--points", "synaptic:1e-5", "--extra-seeds-within", "1"], "needs the baseline point none:0"),
    (["--points", "nosuch:1e-5"], "nosuch"),
    (["--search", "tpe", "--trials", "2", "--lam-range", "1e-4", "1e-6"], "LOW < HIGH"),
])
def test_bad_sweeps_end_in_one_line(data_root, tmp_path, capsys, flags, message):
    assert main(tiny(data_root, tmp_path / "bad", *flags)) == 1
    error = capsys.readouterr().err
    assert error.startswith("neuromorph: error: ") and error.count("\n") == 1 and message in error, error
    assert "secret" not in error and "Traceback" not in error


# --- PostgreSQL -------------------------------------------------------------------------------------------------

def postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


def as_server_user() -> list[str]:
    """initdb and postgres refuse root: as root, run them in a user namespace where this uid is another user's (the
    files stay this user's, outside the namespace nothing changes)."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            continue
        return ["unshare", "--user", f"--map-user={entry.pw_uid}", f"--map-group={entry.pw_gid}"]
    return ["unshare", "--user", "--map-user=65534", "--map-group=65534"]


@pytest.fixture
def postgres_url(tmp_path):
    """A PostgreSQL server of its own in tmp_path on a free port, with an empty database; stopped afterwards."""
    binaries = postgres_bin()
    if binaries is None:
        pytest.skip("no PostgreSQL server binaries (initdb) on PATH or in /usr/lib/postgresql/*/bin")
    data, socket_dir = tmp_path / "pgdata", tmp_path / "pgsock"
    socket_dir.mkdir()
    prefix = as_server_user()
    made = subprocess.run([*prefix, str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "sweep",
                           "--no-sync"], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot create a PostgreSQL cluster: {(made.stderr or made.stdout).strip()[-300:]}")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-l", str(tmp_path / "pg.log"),
                              "-w", "-o", f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off",
                              "start"], capture_output=True, text=True)
    if started.returncode != 0:
        pytest.skip(f"cannot start a PostgreSQL server: {(tmp_path / 'pg.log').read_text()[-300:]}")
    try:
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=port, user="sweep", dbname="postgres")
        connection.autocommit = True
        connection.cursor().execute("CREATE DATABASE sweeps")
        connection.close()
        yield f"postgresql://sweep@127.0.0.1:{port}/sweeps"
    finally:
        subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True)


@pytest.mark.slow
def test_two_workers_share_a_study_on_a_postgresql_server(data_root, tmp_path, postgres_url):
    out = tmp_path / "pg"
    outputs = start_workers(tiny(data_root, out, "--points", *POINTS, "--storage", postgres_url,
                                 "--study-name", "paper"))
    check_each_point_ran_once(outputs, load_study(out, postgres_url, "paper"))
    assert not (out / sweep.STUDY_FILE).exists()
    assert json.loads((out / "results.json").read_text())["storage"] == postgres_url


def test_report_only_trains_nothing_and_reports_the_study(data_root, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(tiny(data_root, out, "--points", "none:0")) == 0
    capsys.readouterr()
    assert main(tiny(data_root, out, "--points", "none:0", "synaptic:1e-5", "--report-only", "--json")) == 0
    captured = capsys.readouterr()
    assert not trained(captured.err + captured.out) and "budget:" not in captured.err
    assert [g["penalty"] for g in json.loads(captured.out)["groups"]] == ["none"]


def test_a_preset_sweep_records_its_recipe_and_refuses_model_flags(data_root, tmp_path, capsys):
    out = tmp_path / "preset"
    flags = ["sweep", "--preset", "mnist-mlp", "--data-root", str(data_root), "--epochs", "1", "--device", "cpu",
             "--threads", "1", "--points", "none:0", "--out", str(out)]
    assert main(flags) == 0
    printed = capsys.readouterr()
    assert "budget: 1 run(s) x" in printed.out + printed.err
    settings = load_study(out).user_attrs["settings"]
    assert settings["recipe"] == {"lr_schedule": "cosine", "augment": "crop"} and settings["lr"] == 3e-3
    assert settings["spec"]["name"] == "mnist-mlp"
    assert main([*flags, "--sizes", "8"]) == 1
    assert "sets the model" in capsys.readouterr().err
    assert main([*flags[:-1], str(tmp_path / "t4"), "--time-steps", "4"]) == 0  # the preset's network at T = 4
    assert settings["spec"]["time_steps"] != 4
    assert load_study(tmp_path / "t4").user_attrs["settings"]["spec"] == {**settings["spec"], "time_steps": 4}
    # the recipe's flags override the preset's and are recorded; a worker with another recipe is refused
    other = ["--augment", "none", "--weight-decay", "0.01"]
    assert main([*flags[:-1], str(tmp_path / "other"), *other]) == 0
    assert load_study(tmp_path / "other").user_attrs["settings"]["recipe"] == {  # none: training's default
        "lr_schedule": "cosine", "weight_decay": 0.01}
    assert main([*flags, *other]) == 1
    assert "recipe differ" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:
        main([*flags, "--weight-decay", "-1"])
    assert refused.value.code == 2 and "--weight-decay: expected a number >= 0" in capsys.readouterr().err


def test_the_plots_log_axis_labels_plain_numbers_at_1_2_3_and_5():
    labels = [sweep._plain_tick(v) for v in (1e4, 2e4, 3e4, 4e4, 5e4, 7e3, 0.3, 18.2, 0.0)]
    assert labels == ["10,000", "20,000", "30,000", "", "50,000", "", "0.3", "", ""]
