"""ANN -> SNN conversion: BatchNorm/AvgPool folding, percentile threshold balancing, IF neurons with reset by
subtraction and half-threshold initial membrane. See :mod:`.convert` for the method and references and
:mod:`.digits` for the digits runs behind ``neurosynth convert``."""

from .convert import (
    ConversionReport,
    FirstStepCharge,
    accuracy_vs_T,
    activation_scales,
    ann_accuracy,
    ann_layers,
    convert,
    fold_avgpool,
    fold_batchnorm,
    repeat_input,
)

__all__ = ["ConversionReport", "FirstStepCharge", "accuracy_vs_T", "activation_scales", "ann_accuracy",
           "ann_layers", "convert", "fold_avgpool", "fold_batchnorm", "repeat_input"]
