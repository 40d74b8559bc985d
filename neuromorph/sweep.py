"""Sweeps of training runs as Optuna studies: the paper's grid, or a multi-objective search, shared by any number
of workers.

One study per sweep, in an embedded SQLite file (``OUT/study.db``) or on a database server (``postgresql://...``)
that workers on many machines share. The study records the sweep's fixed settings (model description, dataset,
epochs, learning rate, ...) and refuses workers whose settings differ.

- **Grid**: every (penalty, p, lambda, seed) point is enqueued once as a WAITING trial; workers pop them with
  ``study.ask()``. Enqueueing and popping run under :class:`StudyLock`, a mutex held in the storage itself (a study
  whose name is unique), so a point is handed to exactly one worker, whatever the storage's isolation (SQLite reads
  outside transactions, where Optuna's own pop could hand one trial to two workers).
- **Search** (``nsga2`` or ``tpe``): maximize test accuracy, minimize SynOps per sample or joules per inference;
  lambda log-uniform (on the synaptic penalty's scale), the penalty categorical. ``study.best_trials`` is the
  Pareto front.
- **Seeds**: every point at the given seeds; optionally, once the first pass is complete, extra seeds for the
  baseline and for the points whose mean accuracy lies within a margin of the baseline's mean over its finished
  seeds (:func:`extra_seed_points`, :func:`extra_seeds_due`).
- **Interruptions**: a running trial beats a heartbeat into the storage; one whose heartbeat is older than the
  grace period is failed and enqueued again (Optuna's ``RetryHeartbeatStaleTrialCallback``), and the retry resumes
  from the trial's checkpoint (``OUT/trials/<point>/checkpoint.pt``) after its last finished epoch.

Pure core (points, settings, seed means, Pareto fronts, the extra-seed policy) first; the Optuna shell after it.
"""

from __future__ import annotations

import math
import os
import platform
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from neuromorph.errors import NeuromorphError

STUDY_FILE = "study.db"
TRIALS_FOLDER = "trials"
RESULTS_FILE = "results.json"
PLOT_FILE = "pareto.png"
BASELINE = "none"
SEARCH_SAMPLERS = ("nsga2", "tpe")
# objective name -> (record field minimized beside the maximized test accuracy, what it is)
OBJECTIVES = {"synops": ("synops_per_sample", "synaptic operations per sample"),
              "energy": ("energy_j", "joules per inference on the device profile")}
ACCURACY = "test_accuracy"
# the fields a trial's metrics carry that are averaged over seeds
MEAN_FIELDS = (ACCURACY, "synops_per_sample", "energy_j", "dynamic_j", "static_j")


# --- Pure core ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    """One training run of a sweep: a penalty (``neuromorph.penalties.PENALTIES``) with weight ``lam``, exponent
    ``power`` (p), and a seed."""

    penalty: str
    lam: float
    power: float = 1.0
    seed: int = 0

    @property
    def key(self) -> str:
        return f"{self.penalty}:lam={self.lam:g}:p={self.power:g}:seed={self.seed}"

    @property
    def setting(self) -> tuple[str, float, float]:
        """The point without its seed: what seeds are averaged over."""
        return self.penalty, self.lam, self.power

    @property
    def label(self) -> str:
        return penalty_label(self.penalty, self.power)

    def with_seed(self, seed: int) -> Point:
        return Point(self.penalty, self.lam, self.power, seed)

    def to_attrs(self) -> dict[str, Any]:
        return {"penalty": self.penalty, "lam": self.lam, "power": self.power, "seed": self.seed, "key": self.key}

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> Point:
        return cls(str(attrs["penalty"]), float(attrs["lam"]), float(attrs["power"]), int(attrs["seed"]))


def penalty_label(penalty: str, power: float) -> str:
    return penalty if penalty != "synaptic" else f"synaptic p={power:g}"


def folder_name(key: str) -> str:
    """A point's key as a folder name: ``synaptic:lam=1e-05:p=1:seed=0`` -> ``synaptic_lam1e-05_p1_seed0``."""
    return key.replace(":", "_").replace("=", "")


def scaled_lambda(penalty: str, power: float, lam: float, mean_fan_out: float) -> float:
    """``lam`` given on the synaptic penalty's scale (p = 1) as the weight of ``penalty``: times the network's mean
    fan-out for the spike count (both penalties then weigh a spike of an average neuron alike), times p for the
    synaptic penalty (Omega_syn = SynOps / p); other penalties take it as it is."""
    if penalty == "spikes":
        return lam * mean_fan_out
    if penalty == "synaptic":
        return lam * power
    return lam


def mean_fan_out(spec) -> float:
    """Synapses leaving an average spiking neuron of ``spec`` (exact fan-outs, hw_models.fanout)."""
    from hw_models.fanout import model_fan_outs

    psi = model_fan_outs(spec)
    return float(sum(p.sum() for p in psi) / sum(p.numel() for p in psi))


@dataclass(frozen=True)
class SweepSettings:
    """What every trial of one sweep shares; a study holds them as its ``settings`` user attr and refuses a worker
    whose settings differ. ``mode`` is ``grid`` or a search sampler (``nsga2``, ``tpe``); ``penalties`` and
    ``lam_range`` (synaptic scale) are the search space (empty for a grid)."""

    spec: dict[str, Any]
    dataset: str
    epochs: int
    batch_size: int
    lr: float
    train_limit: int | None
    test_limit: int | None
    profile: str
    objective: str
    mode: str = "grid"
    penalties: tuple[str, ...] = ()
    lam_range: tuple[float, ...] = ()
    recipe: dict[str, Any] = field(default_factory=dict)  # further TrainConfig settings (lr_schedule, augment, ...)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise NeuromorphError(f"unknown objective {self.objective!r}; supported: {', '.join(OBJECTIVES)}")
        if self.mode not in ("grid", *SEARCH_SAMPLERS):
            raise NeuromorphError(f"unknown sweep mode {self.mode!r}; supported: grid, {', '.join(SEARCH_SAMPLERS)}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {**data, "penalties": list(self.penalties), "lam_range": list(self.lam_range)}

    def differences(self, stored: dict[str, Any]) -> list[str]:
        """The names of the settings in which ``stored`` (a study's) differs from these."""
        mine = self.to_dict()
        return sorted(name for name in mine.keys() | stored.keys() if mine.get(name) != stored.get(name))


@dataclass(frozen=True)
class Group:
    """The trials of one (penalty, lambda, p) setting over their seeds: mean and sample standard deviation (None
    for a single seed) of each of :data:`MEAN_FIELDS`."""

    penalty: str
    lam: float
    power: float
    seeds: tuple[int, ...]
    mean: dict[str, float]
    std: dict[str, float | None]

    @property
    def label(self) -> str:
        return penalty_label(self.penalty, self.power)

    def to_dict(self) -> dict[str, Any]:
        """Seed means under the metrics' own names (what :func:`pareto_front` reads), deviations as ``<name>_std``."""
        return {"penalty": self.penalty, "lam": self.lam, "power": self.power, "label": self.label,
                "seeds": list(self.seeds), **self.mean, **{f"{k}_std": v for k, v in self.std.items()}}


def _std(values: Sequence[float]) -> float | None:
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarize(records: Iterable[dict[str, Any]]) -> list[Group]:
    """Group point records (``penalty``, ``lam``, ``power``, ``seed`` and :data:`MEAN_FIELDS`) by setting; the
    baseline first, then by penalty, p and lambda."""
    by_setting: dict[tuple[str, float, float], list[dict[str, Any]]] = {}
    for record in records:
        by_setting.setdefault((record["penalty"], record["lam"], record["power"]), []).append(record)
    groups = []
    for (penalty, lam, power), members in by_setting.items():
        members = sorted(members, key=lambda r: r["seed"])
        present = [name for name in MEAN_FIELDS if all(name in r for r in members)]
        groups.append(Group(penalty, lam, power, tuple(r["seed"] for r in members),
                            {name: sum(r[name] for r in members) / len(members) for name in present},
                            {name: _std([r[name] for r in members]) for name in present}))
    return sorted(groups, key=lambda g: (g.penalty != BASELINE, g.penalty, g.power, g.lam))


def pareto_front(points: list[dict], x: str = "energy_j") -> list[dict]:
    """Points not dominated by another (lower or equal x and higher accuracy), sorted by x."""
    front, best = [], -1.0
    for r in sorted(points, key=lambda r: (r[x], -r[ACCURACY])):
        if r[ACCURACY] > best:
            front.append(r)
            best = r[ACCURACY]
    return front


def min_cost_at_accuracy(points: list[dict], accuracy: float, x: str) -> float | None:
    eligible = [r[x] for r in points if r[ACCURACY] >= accuracy]
    return min(eligible) if eligible else None


def baseline_group(groups: Sequence[Group]) -> Group | None:
    return next((g for g in groups if g.penalty == BASELINE), None)


def synops_cuts(groups: Sequence[Group], max_loss: float = 0.005) -> dict[str, dict[str, Any]]:
    """Per penalty, on seed means: the setting with the fewest SynOps per sample whose accuracy is at most
    ``max_loss`` (a fraction: 0.005 = half a point) below the baseline's, and the cut against the baseline."""
    base = baseline_group(groups)
    if base is None:
        return {}
    floor = base.mean[ACCURACY] - max_loss
    cuts: dict[str, dict[str, Any]] = {}
    for group in groups:
        if group.penalty == BASELINE or group.mean[ACCURACY] < floor:
            continue
        best = cuts.get(group.label)
        if best is None or group.mean["synops_per_sample"] < best["synops_per_sample"]:
            synops = group.mean["synops_per_sample"]
            cuts[group.label] = {"lam": group.lam, "synops_per_sample": synops, ACCURACY: group.mean[ACCURACY],
                                 "cut": base.mean["synops_per_sample"] / synops if synops > 0 else math.inf}
    return cuts


def extra_seed_points(groups: Sequence[Group], extra_seeds: Sequence[int], within: float) -> list[Point]:
    """The paper's seed policy: more seeds for the baseline and for the settings that decide the comparison, those
    whose mean accuracy lies within ``within`` points (percentage points) of the baseline's."""
    base = baseline_group(groups)
    if base is None:
        raise NeuromorphError("extra seeds are chosen against the baseline: the grid needs the point none:0")
    gap = [abs(100 * (g.mean[ACCURACY] - base.mean[ACCURACY])) for g in groups]  # inclusive, to rounding:
    chosen = [g for g, points in zip(groups, gap, strict=True) if g is base or points <= within + 1e-9]
    return [Point(g.penalty, g.lam, g.power, seed) for g in chosen for seed in extra_seeds]


def extra_seeds_due(plan: Plan, done: dict[str, dict[str, Any]]) -> list[Point] | None:
    """The extra seeds' points once the first pass is finished (None before): chosen on the means over every finished
    seed of the first pass's settings, so that once the baseline's extra seeds are in, its mean decides (and a point
    its seed 0 left out is added when the mean brings it within the margin)."""
    if plan.extra_within is None or not all(p.key in done for p in plan.first_pass):
        return None
    settings = {p.setting for p in plan.first_pass}
    finished = [r for r in done.values() if Point.from_attrs(r).setting in settings]
    return extra_seed_points(summarize(finished), plan.extra_seeds, plan.extra_within)


def machine_info(device: str) -> dict[str, Any]:
    """Where a trial ran: host, CPU model, torch threads, torch device."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"hostname": socket.gethostname(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "device": device}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- Optuna shell: storage, lock, study ----------------------------------------------------------------------------

def default_storage(out: str | os.PathLike) -> str:
    return f"sqlite:///{Path(out).absolute() / STUDY_FILE}"


def redact(url: str) -> str:
    """The storage URL without its password (it goes into logs and results.json)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL at all: show only its scheme
        return url.split(":", 1)[0] + ":..."


def _first_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 240 else text[:237] + "..."


SCHEMA_ATTEMPTS = 5
# SQLAlchemy's driver for a URL that names none, where it is not the one requirements/base.txt installs
DEFAULT_DRIVERS = {"postgresql": "psycopg2", "postgres": "psycopg2"}


def with_driver(url: str) -> str:
    """``postgresql://...`` as ``postgresql+psycopg2://...``: SQLAlchemy 2.1 would take psycopg 3, which is not
    installed here; a URL that names its driver is left as it is."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in DEFAULT_DRIVERS:
        return f"postgresql+{DEFAULT_DRIVERS[scheme]}://{rest}"
    return url


def open_storage(url: str, heartbeat_s: int = 60, max_retry: int | None = 3):
    """An Optuna RDB storage at ``url`` whose running trials beat a heartbeat every ``heartbeat_s`` seconds; a trial
    silent for three intervals is failed and enqueued again (at most ``max_retry`` times). One clear error for a bad
    URL, a missing driver or a server that cannot be reached."""
    import warnings

    import optuna
    from sqlalchemy.exc import IntegrityError, SQLAlchemyError

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    # the heartbeat is beaten by this module's workers (Heartbeat), not by Study.optimize: Optuna warns at every ask
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
    url = with_driver(url)
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_s, grace_period=3 * heartbeat_s,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry))
        except SQLAlchemyError as error:
            # workers that start together on an empty database all create Optuna's tables and version row: the
            # losers of that race see "already exists" or a unique constraint fail, and find them there on a retry
            if attempt + 1 < SCHEMA_ATTEMPTS and (isinstance(error, IntegrityError) or "already exists" in str(error)):
                time.sleep(0.2 * (attempt + 1))
                continue
            raise NeuromorphError(f"cannot open the study storage {redact(url)}: {_first_line(error)}") from None
        except (ImportError, ValueError, OSError) as error:
            cause = f" ({_first_line(error.__cause__)})" if error.__cause__ is not None else ""
            raise NeuromorphError(f"cannot open the study storage {redact(url)}: {_first_line(error)}{cause}") from None


class StudyLock:
    """A mutex held in the storage: a study named ``<name>.lock`` exists while a worker holds it (study names are
    unique, so creating one is atomic on every storage). A lock older than ``stale_s`` seconds belongs to a worker
    that died inside it and is broken. Each holder marks its lock with a token of its own and deletes only a lock
    that still carries it (study ids are reused on SQLite, so an id does not name one lock)."""

    def __init__(self, storage, name: str, stale_s: float = 120.0, poll_s: float = 0.05):
        self.storage, self.name, self.stale_s, self.poll_s = storage, f"{name}.lock", stale_s, poll_s
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"

    def acquire(self, timeout_s: float | None = None) -> bool:
        from optuna.exceptions import DuplicatedStudyError
        from optuna.study import StudyDirection

        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            try:
                lock_id = self.storage.create_new_study([StudyDirection.MINIMIZE], self.name)
            except DuplicatedStudyError:
                self._break_if_stale()
                if deadline is not None and time.monotonic() > deadline:
                    return False
                time.sleep(self.poll_s)
                continue
            self.storage.set_study_user_attr(lock_id, "token", self.token)
            self.storage.set_study_user_attr(lock_id, "since", time.time())
            return True

    def _held(self) -> tuple[int, dict[str, Any]] | None:
        try:
            lock_id = self.storage.get_study_id_from_name(self.name)
            return lock_id, self.storage.get_study_user_attrs(lock_id)
        except KeyError:  # released meanwhile
            return None

    def _delete_if(self, token: str) -> None:
        held = self._held()
        if held is not None and held[1].get("token") == token:
            try:
                self.storage.delete_study(held[0])
            except KeyError:
                pass

    def _break_if_stale(self) -> None:
        held = self._held()
        if held is not None and held[1].get("since") is not None and time.time() - held[1]["since"] > self.stale_s:
            self._delete_if(held[1]["token"])

    def release(self) -> None:
        self._delete_if(self.token)  # a lock broken as stale meanwhile is another holder's now: left alone

    def __enter__(self) -> StudyLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def open_study(storage, name: str, settings: SweepSettings):
    """Create the study ``name`` (accuracy up, cost down) or load it; refuse it when its settings differ."""
    import optuna

    study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True,
                                directions=["maximize", "minimize"])
    with StudyLock(storage, name):
        stored = study.user_attrs.get("settings")
        if stored is None:
            study.set_user_attr("settings", settings.to_dict())
        elif settings.differences(stored):
            raise NeuromorphError(f"study {name!r} in {redact(storage.url)} was made with other settings "
                                  f"({', '.join(settings.differences(stored))} differ): use another --out, "
                                  "--study-name or the same settings")
    return study


class Heartbeat:
    """Records ``trial_id``'s heartbeat now and then every ``storage.heartbeat_interval`` seconds, in a thread."""

    def __init__(self, storage, trial_id: int):
        self.storage, self.trial_id, self._stop = storage, trial_id, threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.storage.get_heartbeat_interval()):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # noqa: BLE001 - a missed beat is retried next interval; the trial must go on
                pass

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


# --- Optuna shell: the worker ---------------------------------------------------------------------------------------

ACTIVE_STATES = ("COMPLETE", "RUNNING", "WAITING")  # a point with a trial in one of these is not enqueued again


@dataclass
class Plan:
    """What a worker does in its study: the ``points`` to run (enqueued once each), for a search also
    ``trials`` in all (sampled beyond the enqueued points, with lambda on the synaptic scale scaled by
    :func:`scaled_lambda` with ``fan_out``); ``extra_seeds`` for the settings within ``extra_within`` points of
    the baseline once the first pass is complete."""

    settings: SweepSettings
    points: list[Point]
    trials: int | None = None
    search_seed: int = 0
    fan_out: float = 1.0
    extra_seeds: tuple[int, ...] = ()
    extra_within: float | None = None
    poll_s: float = 5.0
    first_pass: list[Point] = field(init=False)

    def __post_init__(self) -> None:
        self.first_pass = list(self.points)


WAIT = "wait"


def _active_keys(study) -> set[str]:
    return {t.user_attrs["key"] for t in study.get_trials(deepcopy=False)
            if t.state.name in ACTIVE_STATES and "key" in t.user_attrs}


def enqueue_missing(study, points: Iterable[Point]) -> list[Point]:
    """Enqueue the points that have no complete, running or waiting trial (call under the study's lock)."""
    active = _active_keys(study)
    added = []
    for point in points:
        if point.key not in active:
            study.enqueue_trial({}, user_attrs={**point.to_attrs(), "folder": folder_name(point.key)})
            active.add(point.key)
            added.append(point)
    return added


def study_records(study) -> dict[str, dict[str, Any]]:
    """The complete trials as point records (point, metrics, time, machine), by key; the first complete trial of a
    key counts."""
    records: dict[str, dict[str, Any]] = {}
    for trial in sorted(study.get_trials(deepcopy=False, states=_states("COMPLETE")), key=lambda t: t.number):
        attrs = trial.user_attrs
        if "metrics" in attrs and attrs["key"] not in records:
            records[attrs["key"]] = {**Point.from_attrs(attrs).to_attrs(), **attrs["metrics"], "trial": trial.number,
                                     **{k: attrs.get(k) for k in ("started", "finished", "seconds", "machine")}}
    return records


def _states(*names: str):
    from optuna.trial import TrialState

    return tuple(TrialState[name] for name in names)


def _claim(study, plan: Plan):
    """Under the lock: fail stale trials (their retries are enqueued), enqueue what the plan still lacks, and pop a
    trial: ``(trial, point)``, :data:`WAIT` (others must finish first) or None (nothing left)."""
    import optuna

    optuna.storages.fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False)
    if plan.extra_within is not None and not any(t.state.name == "WAITING" for t in trials):
        due = extra_seeds_due(plan, study_records(study))
        if due is not None:
            enqueue_missing(study, due)
        elif any(t.state.name == "RUNNING" for t in trials):
            return WAIT
        trials = study.get_trials(deepcopy=False)
    if any(t.state.name == "WAITING" for t in trials):
        trial = study.ask()
        return trial, Point.from_attrs(trial.user_attrs)
    if plan.settings.mode == "grid" or sum(t.state.name in ACTIVE_STATES for t in trials) >= plan.trials:
        return None
    trial = study.ask()
    penalty, _, power = trial.suggest_categorical("penalty", list(plan.settings.penalties)).partition(":")
    power = float(power) if power else 1.0
    low, high = plan.settings.lam_range
    lam = scaled_lambda(penalty, power, trial.suggest_float("lam", low, high, log=True), plan.fan_out)
    point = Point(penalty, lam, power, plan.search_seed)
    for name, value in {**point.to_attrs(), "folder": folder_name(f"{point.key}:trial={trial.number}")}.items():
        trial.set_user_attr(name, value)
    return trial, point


RunPoint = Callable[[Point, Path], dict[str, Any]]


def run_worker(study, plan: Plan, run_point: RunPoint, out: Path, machine: dict[str, Any],
               log: Callable[[str], None] = print) -> int:
    """Claim and run trials until the plan is done; returns how many this worker ran. ``run_point(point, folder)``
    trains (resuming from a checkpoint in ``folder``) and returns the point's metrics (:data:`MEAN_FIELDS` among
    them); each trial records them with its start, finish, seconds and ``machine`` (:func:`machine_info`). A run
    that fails with a :class:`NeuromorphError` is recorded as a failed trial and the worker goes on; a re-run
    enqueues it again."""
    storage = study._storage
    objective = OBJECTIVES[plan.settings.objective][0]
    with StudyLock(storage, study.study_name):
        added = enqueue_missing(study, plan.points)
    log(f"study {study.study_name!r}: {len(added)} point(s) enqueued, {len(plan.points) - len(added)} there already")
    ran = 0
    while True:
        with StudyLock(storage, study.study_name):
            claimed = _claim(study, plan)
            if isinstance(claimed, tuple):
                storage.record_heartbeat(claimed[0]._trial_id)  # never RUNNING without a heartbeat
        if claimed is None:
            return ran
        if claimed == WAIT:
            time.sleep(plan.poll_s)
            continue
        trial, point = claimed
        folder = out / TRIALS_FOLDER / trial.user_attrs["folder"]
        started, clock = now_iso(), time.perf_counter()
        retried = storage.get_trial(trial._trial_id).system_attrs.get("failed_trial")
        log(f"trial {trial.number}: {point.key}" + (f" (retry of trial {retried})" if retried is not None else ""))
        with Heartbeat(storage, trial._trial_id):
            try:
                metrics = run_point(point, folder)
            except NeuromorphError as error:
                trial.set_user_attr("error", str(error))
                study.tell(trial, state=_states("FAIL")[0])
                log(f"trial {trial.number}: {point.key} failed: {error}")
                continue
            except BaseException:
                study.tell(trial, state=_states("FAIL")[0])
                raise
        seconds = time.perf_counter() - clock
        for name, value in {"metrics": metrics, "started": started, "finished": now_iso(), "seconds": seconds,
                            "machine": machine}.items():
            trial.set_user_attr(name, value)
        study.tell(trial, [metrics[ACCURACY], metrics[objective]])
        ran += 1


# --- Shell: training a point, and the report drawn from the study ---------------------------------------------------

Price = Callable[[Any, Point], dict[str, Any]]  # (trained SpikingNet, point) -> energy_j, dynamic_j, static_j, ...


def point_trainer(spec, settings: SweepSettings, train_split, test_split, device: str, price: Price,
                  data_root: str | None = None, log: Callable[[str], None] = print) -> RunPoint:
    """``run_point`` for :func:`run_worker`: train the point (resuming from the folder's checkpoint after its last
    finished epoch) and ``price`` it (the caller's cost model: hw_models.sweep_command prices on the settings'
    device profile; training imports no pricing)."""
    from neuromorph.checkpoint import CHECKPOINT_NAME
    from neuromorph.config import TrainConfig
    from neuromorph.training import train

    def run_point(point: Point, folder: Path) -> dict[str, Any]:
        config = TrainConfig(dataset=settings.dataset, data_root=data_root, epochs=settings.epochs,
                             batch_size=settings.batch_size, lr=settings.lr, seed=point.seed, penalty=point.penalty,
                             lam=point.lam, power=point.power, train_limit=settings.train_limit,
                             test_limit=settings.test_limit, device=device, **settings.recipe)
        trained: list[int] = []

        def on_epoch(record: dict[str, Any]) -> None:
            trained.append(record["epoch"])
            log(f"{point.key} epoch {record['epoch']}: test acc {100 * record['test_accuracy']:.2f}% "
                f"SynOps/sample {record['synops_per_sample']:,.0f} ({record['train_seconds']:.0f} s)")

        run = train(spec, config, out_dir=folder, progress=False, train_split=train_split, test_split=test_split,
                    on_epoch=on_epoch, resume=(folder / CHECKPOINT_NAME).is_file())
        final = run.final
        return {ACCURACY: final[ACCURACY], "test_loss": final["test_loss"],
                "synops_per_sample": final["synops_per_sample"], "spikes_per_sample": final["spikes_per_sample"],
                **price(run.model, point), "epochs": final["epoch"], "epochs_trained": len(trained),
                "resumed_from_epoch": final["epoch"] - len(trained)}

    return run_point


def _mean_std(group: Group, name: str, scale: float = 1.0, digits: int = 2) -> str:
    mean, std = group.mean[name], group.std[name]
    return f"{scale * mean:,.{digits}f}" + ("" if std is None else f" ± {scale * std:,.{digits}f}")


def report_text(groups: Sequence[Group], profile: str, title: str) -> str:
    """The sweep's table (mean ± std over seeds, the number of seeds) and, per penalty, the SynOps cut at <= 0.5
    point accuracy loss against the baseline."""
    from neuromorph.report import format_table

    rows = [[g.label, f"{g.lam:.3g}", len(g.seeds), _mean_std(g, ACCURACY, 100),
             _mean_std(g, "synops_per_sample", digits=0), _mean_std(g, "energy_j", 1e6, 3)] for g in groups]
    text = format_table(["penalty", "lambda", "seeds", "test acc (%)", "SynOps/sample", f"{profile} µJ"], rows,
                        title=title)
    base = baseline_group(groups)
    if base is not None:
        text += (f"\nSynOps cut at <= 0.5 point accuracy loss against the baseline "
                 f"({100 * base.mean[ACCURACY]:.2f}%, {base.mean['synops_per_sample']:,.0f} SynOps/sample):")
        cuts = synops_cuts(groups)
        for label in sorted({g.label for g in groups if g.penalty != BASELINE}):
            cut = cuts.get(label)
            text += (f"\n  {label}: none within 0.5 point" if cut is None else
                     f"\n  {label}: {cut['cut']:.2f}x at lambda {cut['lam']:.3g} ({100 * cut[ACCURACY]:.2f}%, "
                     f"{cut['synops_per_sample']:,.0f} SynOps/sample)")
    return text


def best_trials(study) -> list[dict[str, Any]]:
    """The study's Pareto front (``study.best_trials``): number, point and the two objective values."""
    return [{"trial": t.number, "key": t.user_attrs.get("key"), "values": list(t.values)}
            for t in sorted(study.best_trials, key=lambda t: t.values[1])]


def results_document(study, records: dict[str, dict[str, Any]], groups: Sequence[Group], storage_url: str
                     ) -> dict[str, Any]:
    """results.json: settings, every complete point, the seed means, the SynOps cuts and the Pareto front."""
    return {"study": study.study_name, "storage": redact(storage_url), "settings": study.user_attrs["settings"],
            "points": records, "groups": [g.to_dict() for g in groups], "synops_cut": synops_cuts(groups),
            "best_trials": best_trials(study)}


def _plain_tick(value: float, _position: int | None = None) -> str:
    """A log axis's tick as a plain number where its leading digit is 1, 2, 3 or 5 (``20,000``, ``0.3``), else none."""
    if value <= 0:
        return ""
    mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
    if min(abs(mantissa - d) for d in (1, 2, 3, 5)) > 1e-6 * mantissa:
        return ""
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


def plot_pareto(groups: Sequence[Group], path: Path, title: str, profile: str, window: float = 1.0,
                collapse: float = 10.0) -> None:
    """Accuracy against SynOps and against energy (log scales): each setting's seed mean with its standard deviation
    as error bars, each penalty's Pareto front (of the means) as a step line.

    The accuracy axis spans at least ``window`` points below the best setting (so that settings a few tenths of a
    point apart, as at T = 2, are told apart rather than packed into a sliver), and further down to half a point
    below every setting within ``collapse`` points of the best; settings that collapsed further are counted in the
    title instead of squashing the axis.
    """
    from matplotlib.ticker import FuncFormatter, LogFormatter, NullFormatter

    from neuromorph.plots import pyplot, save_figure

    plt = pyplot()
    points = [g.to_dict() for g in groups]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    best = 100 * max(r[ACCURACY] for r in points)
    kept = [100 * r[ACCURACY] for r in points if 100 * r[ACCURACY] >= best - collapse]
    low = min(best - window, min(kept) - 0.5)
    hidden = sum(100 * r[ACCURACY] < low for r in points)
    by_label: dict[str, list[dict]] = {}
    for r in points:
        by_label.setdefault(r["label"], []).append(r)
    for x, axis, xlabel in (("synops_per_sample", axes[0], "synaptic operations per sample"),
                            ("energy_j", axes[1], f"energy per inference on {profile} (µJ)")):
        scale = 1e6 if x == "energy_j" else 1.0
        for name, members in sorted(by_label.items()):
            shown = [r for r in members if r[x] > 0]
            bars = axis.errorbar([scale * r[x] for r in shown], [100 * r[ACCURACY] for r in shown],
                                 xerr=[scale * (r[f"{x}_std"] or 0) for r in shown],
                                 yerr=[100 * (r[f"{ACCURACY}_std"] or 0) for r in shown],
                                 fmt="o", label=name, alpha=0.7, capsize=2)
            front = pareto_front(shown, x)
            axis.step([scale * r[x] for r in front], [100 * r[ACCURACY] for r in front], where="post",
                      color=bars[0].get_color(), alpha=0.9)
        axis.set(xlabel=xlabel, ylabel="test accuracy (%)", xscale="log", ylim=(low, best + 0.5))
        low_x, high_x = axis.get_xlim()  # over two decades or more the powers of ten are labelled; down to a factor
        if high_x / low_x >= 100:  # of 3, the ticks at 1, 2, 3 and 5 times a power of ten, as plain numbers
            axis.xaxis.set_minor_formatter(NullFormatter())  # (20,000); within less, every tick (18.2, 18.25)
        elif high_x / low_x >= 3:
            axis.xaxis.set_major_formatter(FuncFormatter(_plain_tick))
            axis.xaxis.set_minor_formatter(FuncFormatter(_plain_tick))
        else:
            axis.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))
        axis.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8, loc="lower right")
    note = f" ({hidden} setting(s) below {low:.1f} % not shown)" if hidden else ""
    figure.suptitle(title + " (mean ± std over seeds)" + note)
    save_figure(figure, path)
