"""Training: the paper's training recipe (Section 4).

SGD (momentum 0.99, weight decay 5e-4 in the paper configs) or Adam, a poly schedule,
cross-entropy with the ignore index; validation (mIoU) every N steps with the best
checkpoint kept beside the last; exact resume; several processes through ``torchrun``
and DistributedDataParallel.

- :mod:`.state`: what a run needs, built once (`setup`), and its changing state;
- :mod:`.loop`: the steps, validation and checkpoints;
- :mod:`.sampling`: the deterministic order of samples and augmentations;
- :mod:`.loss`, :mod:`.optim`: the loss, the optimiser and its schedule;
- :mod:`.log`: ``metrics.jsonl``, TensorBoard and the summary (``gcnseg train`` is
  :mod:`gcnseg.commands.train`).
"""

from .log import RunLog, format_summary
from .loop import TrainingError, train, train_one_epoch, train_step, validate
from .loss import segmentation_loss
from .optim import build_optimizer, lr_factor
from .sampling import EpochSampler, SeededSamples
from .state import Run, TrainState, set_batchnorm_eval, setup

__all__ = [
    "EpochSampler",
    "Run",
    "RunLog",
    "SeededSamples",
    "TrainState",
    "TrainingError",
    "build_optimizer",
    "format_summary",
    "lr_factor",
    "segmentation_loss",
    "set_batchnorm_eval",
    "setup",
    "train",
    "train_one_epoch",
    "train_step",
    "validate",
]
