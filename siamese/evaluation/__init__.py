"""Evaluation: verification metrics, k-fold protocol, one-shot accuracy, retrieval metrics, plots.

Importing this package does not import torch or matplotlib (nor scikit-learn); they are imported by
the functions that need them.
"""

from siamese.evaluation.calibration import confidence, fit_confidence
from siamese.evaluation.distances import (
    THRESHOLD_RULES,
    as_scores,
    choose_threshold,
    distance_report,
    kfold_distance_report,
    metrics_at_threshold,
)
from siamese.evaluation.fusion import (
    LinearScorer,
    distance_matrix,
    fit_identity_svms,
    fit_svm,
    fused_distances,
    fused_matrix,
    reference_template,
)
from siamese.evaluation.identification import (
    cmc,
    dir_fpir_curve,
    fnir_at,
    fpir_at,
    fpir_threshold,
    identification_report,
    mate_ranks,
)
from siamese.evaluation.kfold import kfold_verification
from siamese.evaluation.knn import embedding_spread, knn_accuracy, knn_predict
from siamese.evaluation.metrics import (
    accuracy_at,
    best_accuracy_threshold,
    det_curve,
    eer,
    far_frr_at,
    far_key,
    roc_auc,
    roc_curve,
    tar_at_far,
    threshold_at_far,
    verification_report,
)
from siamese.evaluation.oneshot import n_way_one_shot_accuracy, one_shot_predictions
from siamese.evaluation.plots import plot_det, plot_dir_fpir, plot_roc, plot_score_histograms
from siamese.evaluation.references import (
    Enrolment,
    Trials,
    calibratable_count,
    calibrate_references,
    choose_references,
    reference_metrics,
    reference_trials,
)
from siamese.evaluation.retrieval import RETRIEVAL_METRICS, retrieval_metrics

__all__ = [
    "cmc",
    "dir_fpir_curve",
    "fnir_at",
    "fpir_at",
    "fpir_threshold",
    "identification_report",
    "mate_ranks",
    "plot_dir_fpir",
    "Enrolment",
    "LinearScorer",
    "Trials",
    "calibratable_count",
    "calibrate_references",
    "choose_references",
    "distance_matrix",
    "fit_identity_svms",
    "fit_svm",
    "fused_distances",
    "fused_matrix",
    "reference_metrics",
    "reference_template",
    "reference_trials",
    "THRESHOLD_RULES",
    "as_scores",
    "choose_threshold",
    "distance_report",
    "kfold_distance_report",
    "metrics_at_threshold",
    "RETRIEVAL_METRICS",
    "accuracy_at",
    "best_accuracy_threshold",
    "confidence",
    "det_curve",
    "eer",
    "embedding_spread",
    "far_frr_at",
    "far_key",
    "fit_confidence",
    "kfold_verification",
    "knn_accuracy",
    "knn_predict",
    "n_way_one_shot_accuracy",
    "one_shot_predictions",
    "plot_det",
    "plot_roc",
    "plot_score_histograms",
    "retrieval_metrics",
    "roc_auc",
    "roc_curve",
    "tar_at_far",
    "threshold_at_far",
    "verification_report",
]
