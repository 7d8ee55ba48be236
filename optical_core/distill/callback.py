"""The trainer callback of a run: progress, losses, evaluations and probe plans go to the
:class:`~optical_core.distill.recorder.RunRecorder`; a cancel stops after the current step.

Imports ``transformers`` at the top: :mod:`optical_core.distill.train` imports this module
when a run starts, so importing the package stays light.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

from optical_core.distill.loss import OpticalLoss
from optical_core.distill.recorder import RunRecorder


def eval_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The trainer's evaluation metrics as a run records them: numbers only, without the
    ``eval_`` prefix, the epoch and the timing entries."""
    return {k.removeprefix("eval_"): float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and k != "epoch"
            and not k.endswith(("_runtime", "per_second"))}


class DistillCallback(TrainerCallback):
    """Progress, loss, evaluation and probe-plan reporting; clean stop on cancel.

    Args:
        recorder: the run's :class:`RunRecorder` (rank 0) or ``None`` (other ranks).
        loss: the loss module (for the probe and the loss components).
        probe: ``(english, foreign)`` probe pair or ``None``.
        probe_every: steps between probe snapshots (0 = only first and last).
        cancel: set to stop after the current step (a checkpoint is still saved).
        aer: ``model -> AER (%) or None``, added to every evaluation's metrics as
            ``aer_enfr`` (``None``: not tracked).
    """

    def __init__(self, recorder: RunRecorder | None, loss, probe: tuple[str, str] | None,
                 probe_every: int, cancel: threading.Event | None,
                 aer: Callable[[Any], float | None] | None = None):
        self.recorder = recorder
        self.loss = loss
        self.probe = probe
        self.probe_every = probe_every
        self.cancel = cancel
        self.aer = aer
        self.cancelled = False
        self.t0 = time.monotonic()
        self.step0 = 0

    def snapshot(self, step: int) -> None:
        """Record the probe pair's plan at ``step`` (once per step; OT losses only)."""
        if self.recorder is None or self.probe is None or not isinstance(self.loss, OpticalLoss):
            return
        if not self.recorder.has_probe(step):
            self.recorder.add_probe(step, self.loss.probe(self.probe[1], self.probe[0]))

    def on_train_begin(self, args, state, control, **kw):
        self.t0 = time.monotonic()
        self.step0 = state.global_step
        if self.recorder is not None:
            self.recorder.update(max_steps=state.max_steps, step=state.global_step)
            self.snapshot(state.global_step)

    def on_step_end(self, args, state, control, **kw):
        if self.recorder is not None:
            done = state.global_step - self.step0
            rate = done / max(time.monotonic() - self.t0, 1e-9)
            eta = (state.max_steps - state.global_step) / rate if rate > 0 else None
            comps = getattr(self.loss, "last_components", {}) or {}
            self.recorder.step(state.global_step, state.max_steps, state.epoch or 0.0, eta, comps)
            if self.probe_every and state.global_step % self.probe_every == 0:
                self.snapshot(state.global_step)
        if self.cancel is not None and self.cancel.is_set():
            self.cancelled = True
            control.should_training_stop = True
            control.should_save = True
            control.should_evaluate = False
        return control

    def on_epoch_end(self, args, state, control, **kw):
        if self.cancelled:
            control.should_evaluate = False
        return control

    def on_log(self, args, state, control, logs=None, **kw):
        if self.recorder is not None and logs and "loss" in logs:
            self.recorder.loss(state.global_step, float(logs["loss"]), logs.get("learning_rate"))
        return control

    def on_evaluate(self, args, state, control, metrics=None, **kw):
        if self.recorder is not None and metrics:
            clean = eval_metrics(metrics)
            aer = self.aer(kw["model"]) if self.aer is not None else None
            if aer is not None:
                clean["aer_enfr"] = aer
            self.recorder.eval(state.global_step, state.epoch or 0.0, clean)
        return control

    def on_train_end(self, args, state, control, **kw):
        if self.recorder is not None:
            self.snapshot(state.global_step)
        return control
