"""OT knowledge distillation (OPTICAL) and the sentence-level MSE baseline.

* :mod:`~optical_core.distill.config`: :class:`~optical_core.distill.config.DistillConfig`;
* :mod:`~optical_core.distill.loss`: :class:`~optical_core.distill.loss.OpticalLoss`;
* :mod:`~optical_core.distill.models`: bitext pairs, teacher, student, loss and dataset;
* :mod:`~optical_core.distill.evaluator`: the in-training retrieval check;
* :mod:`~optical_core.distill.checkpoints`: complete checkpoints and resume;
* :mod:`~optical_core.distill.train`: :func:`~optical_core.distill.train.run_distillation`;
* :mod:`~optical_core.distill.jobs`: the app's one-at-a-time job queue.
"""
