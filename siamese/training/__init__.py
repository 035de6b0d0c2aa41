"""Training: configs, the trainer loop over a training method, callbacks, loaders and the run.

Importing this package imports torch and pytorch-metric-learning; the CLI imports it only when a
training command runs.
"""

from siamese.training.builders import (
    build_encoder,
    build_method,
    build_optimizer,
    build_trainer,
    checkpoint_metadata,
    place_method,
)
from siamese.training.callbacks import (
    CheckpointCallback,
    CSVLogger,
    TimeBudget,
    ValidationCallback,
    threshold_from_scores,
)
from siamese.training.config import (
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    build_train_config,
)
from siamese.training.evaluation import PairScores, score_pairs
from siamese.training.loaders import SAMPLERS, Prepared, prepare_data
from siamese.training.methods import METHODS, Batch, Method, StepOutput, SupervisedMethod, get_method
from siamese.training.pretrain import CollapseError, RepresentationMonitor, prepare_views, pretrain
from siamese.training.run import TrainingInterrupted, resume_config, seed_everything, train
from siamese.training.state import load_training_state, save_training_state
from siamese.training.trainer import Callback, NonFiniteLossError, Trainer

__all__ = [
    "METHODS",
    "SAMPLERS",
    "Batch",
    "CSVLogger",
    "Callback",
    "CollapseError",
    "CheckpointCallback",
    "DataConfig",
    "LossConfig",
    "Method",
    "ModelConfig",
    "NonFiniteLossError",
    "OptimConfig",
    "PairScores",
    "Prepared",
    "RepresentationMonitor",
    "StepOutput",
    "SupervisedMethod",
    "TimeBudget",
    "TrainConfig",
    "Trainer",
    "TrainingInterrupted",
    "ValidationCallback",
    "build_encoder",
    "build_method",
    "build_optimizer",
    "build_trainer",
    "build_train_config",
    "checkpoint_metadata",
    "get_method",
    "load_training_state",
    "place_method",
    "prepare_data",
    "prepare_views",
    "pretrain",
    "resume_config",
    "save_training_state",
    "score_pairs",
    "seed_everything",
    "threshold_from_scores",
    "train",
]
