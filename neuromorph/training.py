"""Training with an activity penalty: ``loss = cross_entropy + lambda * mean_b Omega_b``.

A run is reproducible from its seed: the weights are initialized after ``torch.manual_seed(seed)``, and every
epoch's shuffling and Poisson noise come from generators seeded by ``(seed, epoch)``, so a resumed run continues
exactly as an uninterrupted one would.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from hw_models.opcount import spike_counts, synaptic_operations
from neuromorph import distributed
from neuromorph.augment import augment
from neuromorph.checkpoint import CHECKPOINT_NAME, Checkpoint, load_checkpoint, save_checkpoint
from neuromorph.config import TrainConfig
from neuromorph.data import Split, iterate_batches, load_split
from neuromorph.devices import keep_freed_memory, resolve_device
from neuromorph.encoders import encode
from neuromorph.errors import NeuromorphError
from neuromorph.io import write_json
from neuromorph.models import SpikingNet, arithmetic, build_model, calibrate_firing, fold_batch_norm
from neuromorph.penalties import build_penalty, lambda_at
from neuromorph.progress import progress_bar
from neuromorph.run import check_images
from neuromorph.schedules import lr_at
from neuromorph.spec import FIXED_POINT_ARITHMETIC, ModelSpec
from neuromorph.versions import tool_versions

# TrainConfig (neuromorph.config), resolve_device (neuromorph.devices) and CHECKPOINT_NAME (neuromorph.checkpoint)
# live in those bottom modules; importing them from here keeps working.
METRICS_NAME = "metrics.json"


SYNC_EVERY = 20  # batches between reads of the running sums (each read waits for the device)


def _read_totals(totals: torch.Tensor, epoch: int) -> dict[str, float]:
    """The epoch's running sums read back from the device (the one host synchronisation), refused if diverged."""
    values = totals.tolist()
    if not math.isfinite(values[0]):
        raise NeuromorphError(f"training diverged in epoch {epoch + 1}: loss is {values[0]}")
    return dict(zip(("loss", "task", "penalty", "correct", "seen"), values, strict=True))


def _generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 7 + stream)


@dataclass
class Evaluation:
    """Test-set metrics. Per-layer values follow ``model.sources``; rates are spikes per neuron per step."""

    loss: float
    accuracy: float
    synops_per_sample: float
    synops_per_layer: dict[str, float]
    spikes_per_sample: dict[str, float]
    spike_rate: dict[str, float]
    samples: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def evaluate(
    model: SpikingNet,
    split: Split,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: bool = False,
) -> Evaluation:
    """Accuracy, loss, synaptic operations and spike rates of ``model`` on ``split``."""
    model.eval()
    device = torch.device(device)
    model.to(device)
    generator = _generator(seed, 0, stream=2)
    names = [s.name for s in model.sources]
    synops = torch.zeros(len(names), dtype=torch.float64)
    spikes = torch.zeros(len(names), dtype=torch.float64)
    loss_sum, correct = 0.0, 0
    batches = iterate_batches(split, batch_size, device=device)
    total = math.ceil(len(split) / batch_size)
    for images, labels in progress_bar(batches, total=total, desc="evaluate", disable=not progress, leave=False):
        out = model(encode(images, model.spec, generator))
        loss_sum += F.cross_entropy(out.logits, labels, reduction="sum").item()
        correct += (out.logits.argmax(dim=1) == labels).sum().item()
        if names:
            synops += synaptic_operations(out.spikes, model.fan_outs).sum(dim=1).double().cpu()
            spikes += spike_counts(out.spikes).sum(dim=1).double().cpu()
    n = len(split)
    steps = model.spec.time_steps
    return Evaluation(
        loss=loss_sum / n,
        accuracy=correct / n,
        synops_per_sample=float(synops.sum() / n),
        synops_per_layer={name: float(v / n) for name, v in zip(names, synops, strict=True)},
        spikes_per_sample={name: float(v / n) for name, v in zip(names, spikes, strict=True)},
        spike_rate={
            s.name: float(v / n / steps / math.prod(s.shape)) for s, v in zip(model.sources, spikes, strict=True)
        },
        samples=n,
    )


@dataclass
class TrainResult:
    model: SpikingNet
    history: list[dict[str, Any]]
    out_dir: Path | None

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


EpochCallback = Callable[[dict[str, Any]], None]


def train(
    spec: ModelSpec,
    config: TrainConfig,
    out_dir: str | Path | None = None,
    progress: bool = True,
    on_epoch: EpochCallback | None = None,
    train_split: Split | None = None,
    test_split: Split | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train ``spec`` with ``config``; write ``checkpoint.pt`` and ``metrics.json`` to ``out_dir`` each epoch.

    With ``resume=True`` and a checkpoint in ``out_dir``, training continues after its last finished epoch (the
    checkpoint's model description and settings are used; ``config.epochs`` sets where to stop).

    ``config.init_from`` fine-tunes a checkpoint: its model description and weights replace ``spec`` and the fresh
    initialization. ``config.loihi_exact`` trains the network as Loihi fixed point computes it (straight-through
    gradients): the readout's voltage bound is calibrated once on a training batch and stored in
    ``spec.fixed_point``, so that the checkpoint exports to exactly the network that was trained.
    """
    ranks, device = distributed.context(resolve_device(config.device))
    keep_freed_memory()  # CPU steps reuse freed memory instead of page-faulting it in again (2.4x on a CNN)
    out = Path(out_dir) if out_dir is not None and ranks.main else None  # rank 0 alone writes
    resume_from = Path(out_dir) if out_dir is not None else None
    start_epoch, history, optimizer_state = 0, [], None
    if resume:
        if resume_from is None or not (resume_from / CHECKPOINT_NAME).is_file():
            raise NeuromorphError(f"nothing to resume: no {CHECKPOINT_NAME} in {str(resume_from)!r}")
        ckpt = load_checkpoint(resume_from / CHECKPOINT_NAME)
        spec = ckpt.spec
        config = replace(ckpt.config, epochs=config.epochs, device=config.device)
        model = ckpt.build_model(fold_norm=False)
        start_epoch, history, optimizer_state = ckpt.epoch, ckpt.history, ckpt.optimizer_state
    elif config.init_from is not None:
        torch.manual_seed(config.seed)
        model = load_checkpoint(config.init_from).build_model(fold_norm=config.loihi_exact)  # fixed point: folded
        spec = model.spec
    else:
        torch.manual_seed(config.seed)
        model = build_model(spec)
    model.to(device)
    loaded_train, loaded_test = train_split is None, test_split is None
    if loaded_train:
        train_split = load_split(config.dataset, train=True, root=config.data_root, limit=config.train_limit)
    if loaded_test:
        test_split = load_split(config.dataset, train=False, root=config.data_root, limit=config.test_limit)
    train_split = check_images(train_split, spec, config.dataset if loaded_train else None)
    test_split = check_images(test_split, spec, config.dataset if loaded_test else None)
    if not resume and config.init_rate > 0 and config.init_from is None:
        images, _ = next(iterate_batches(train_split, min(len(train_split), 256), device=device))
        calibrate_firing(model, encode(images, spec, _generator(config.seed, 0, stream=3)), config.init_rate)
    if not resume:
        model = _arithmetic(model, config, train_split, device)
        spec = model.spec
    optimizer = make_optimizer(model, config)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    penalty_fn = build_penalty(config.penalty, model, config.device_profile)

    step_model = ranks.wrap(model, device)  # DDP across ranks (gradients averaged), the model itself alone
    progress = progress and ranks.main
    steps_per_epoch = math.ceil(len(train_split) / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    for epoch in range(start_epoch, config.epochs):
        lam = lambda_at(config.lam, config.lam_schedule, epoch, config.ramp_epochs)
        started = time.perf_counter()
        model.train()
        shuffle = _generator(config.seed, epoch, stream=0)
        noise = _generator(config.seed, epoch, stream=1)
        jitter = _generator(config.seed, epoch, stream=5)  # augmentation
        # Running sums stay on the device (loss, task loss, penalty, correct), read back every SYNC_EVERY batches:
        # no host synchronisation per batch. A non-finite loss is caught at that read, before the epoch's checkpoint.
        totals = torch.zeros(5, dtype=torch.float64, device=device)  # loss, task, penalty, correct, samples

        batches = iterate_batches(train_split, config.batch_size, shuffle=True, generator=shuffle, device=device)
        bar = progress_bar(batches, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{config.epochs}",
                           disable=not progress, leave=False)
        for index, (images, labels) in enumerate(bar):
            if config.lr_schedule != "constant":
                rate = lr_at(config.lr_schedule, config.lr, epoch * steps_per_epoch + index, total_steps)
                for group in optimizer.param_groups:
                    group["lr"] = rate
            if config.augment != "none":
                images = augment(images, config.augment, jitter)
            # the global batch is encoded (Poisson noise drawn) as one process would, then shared among the ranks
            x, labels = ranks.share(encode(images, spec, noise), labels)
            result, loss, task, omega = training_step(step_model, model.fan_outs, optimizer, penalty_fn, x, labels,
                                                      lam, config.power)
            batch = labels.shape[0]
            totals += torch.stack([loss.detach().double() * batch, task.detach().double() * batch,
                                   omega.detach().double() * batch,
                                   (result.logits.argmax(dim=1) == labels).sum().double(),
                                   torch.tensor(float(batch), dtype=torch.float64, device=device)])
            if (index + 1) % SYNC_EVERY == 0:
                sums = _read_totals(totals, epoch)
                bar.set_postfix(loss=f"{sums['loss'] / sums['seen']:.3f}",
                                acc=f"{sums['correct'] / sums['seen']:.3f}", refresh=False)
        sums = _read_totals(ranks.sum(totals), epoch)
        seen = int(sums["seen"])
        train_seconds = time.perf_counter() - started
        test = evaluate(model, test_split, batch_size=max(256, config.batch_size), device=device, seed=config.seed)
        record = {
            "epoch": epoch + 1,
            "lam": lam,
            "lr": optimizer.param_groups[0]["lr"],  # the epoch's last step
            "train_loss": sums["loss"] / seen,
            "train_task_loss": sums["task"] / seen,
            "train_penalty": sums["penalty"] / seen,
            "train_accuracy": sums["correct"] / seen,
            "test_loss": test.loss,
            "test_accuracy": test.accuracy,
            "synops_per_sample": test.synops_per_sample,
            "synops_per_layer": test.synops_per_layer,
            "spikes_per_sample": test.spikes_per_sample,
            "spike_rate": test.spike_rate,
            "train_seconds": train_seconds,
            "train_samples_per_second": seen / train_seconds,
        }
        history.append(record)
        if out is not None:
            _save(out, model, spec, config, epoch + 1, optimizer, history)
        if on_epoch is not None and ranks.main:
            on_epoch(record)
    return TrainResult(model=model, history=history, out_dir=out)


def training_step(step_model, fan_outs, optimizer: torch.optim.Optimizer, penalty_fn, x: torch.Tensor,
                  labels: torch.Tensor, lam: float, power: float):
    """One optimizer step on an encoded batch: ``loss = cross_entropy + lam * mean_b Omega_b`` (the penalty is
    computed for the record even at ``lam = 0``). Returns ``(result, loss, task, omega)``, not detached."""
    result = step_model(x)
    task = F.cross_entropy(result.logits, labels)
    omega = (penalty_fn(result.spikes, fan_outs, power, counts=result.spike_counts).mean()
             if result.spikes else task * 0)
    loss = task + lam * omega if lam > 0 else task
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return result, loss, task, omega


def make_optimizer(model: SpikingNet, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam at ``config.lr``; AdamW (decoupled weight decay, Loshchilov & Hutter 2019) when ``weight_decay > 0``.
    BatchNorm's scale and shift and the synaptic biases are not decayed (the usual practice)."""
    if config.weight_decay == 0:
        return torch.optim.Adam(model.parameters(), lr=config.lr)
    decayed = [p for p in model.parameters() if p.dim() > 1]
    others = [p for p in model.parameters() if p.dim() <= 1]
    groups = [{"params": decayed, "weight_decay": config.weight_decay}, {"params": others, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr)


def _arithmetic(model: SpikingNet, config: TrainConfig, split: Split, device: torch.device) -> SpikingNet:
    """The model in the arithmetic the config asks for: Norse float, or Loihi fixed point (``spec.fixed_point``).

    Switching to fixed point calibrates the readout's voltage bound on a training batch, with the float model (or
    the fixed-point one being fine-tuned further); the export's readout headroom applies on top of it.
    """
    from neuromorph.spec import FixedPointSpec

    if config.loihi_exact:  # BatchNorm becomes weights and a bias, which the check refuses on chip layers
        model = fold_batch_norm(model)
    spec = model.spec
    if config.loihi_exact:  # v_leak != v_reset or an on-chip bias have no exact Loihi form
        arithmetic(FIXED_POINT_ARITHMETIC).check(model)
    if not config.loihi_exact:
        fixed = None
    elif spec.fixed_point is not None:
        fixed = spec.fixed_point
    else:
        images, _ = next(iterate_batches(split, min(len(split), 256), device=device))
        with torch.no_grad():
            volts = float(model(encode(images, spec, _generator(config.seed, 0, stream=4))).voltages.abs().max())
        if not volts > 0:
            raise NeuromorphError("the readout stays at zero on the calibration batch: cannot set its fixed-point "
                                  "scale (is the network silent?)")
        fixed = FixedPointSpec(readout_volts=volts)
    if fixed == spec.fixed_point:
        return model
    switched = build_model(replace(spec, fixed_point=fixed))
    switched.load_state_dict(model.state_dict())
    return switched.to(device)


def _save(out: Path, model, spec, config, epoch, optimizer, history) -> None:
    ckpt = Checkpoint(
        spec=spec,
        model_state=model.state_dict(),
        train_config=config.to_dict(),
        epoch=epoch,
        optimizer_state=optimizer.state_dict(),
        history=history,
        versions=tool_versions(),
    )
    save_checkpoint(out / CHECKPOINT_NAME, ckpt)
    write_json(out / METRICS_NAME, {
        "spec": spec.to_dict(), "train_config": config.to_dict(), "epochs_done": epoch, "history": history,
        "versions": ckpt.versions,
    })
