"""Latency where the model will run: a per-device latency table, measured on the target, and a predictor from it.

``python -m devices bundle SPACE --out DIR`` writes a bundle (ONNX files of the backbone, of every distinct module
the space can produce and of sampled whole architectures, plus ``time_bundle.py``); on the target device
``python time_bundle.py`` times them with only numpy and onnxruntime and writes ``latency_table.json``; back here
``python -m devices check TABLE --space SPACE`` fits the predictor and states its error on held-out architectures.
In code: ``load_predictor(path, space=space, base=base).predict(arch)`` -> ms, or :class:`Unpriceable`; a search
ranks by it with ``latency.table=PATH``, and :func:`measure_here` times its confirmed architectures when the table's
device is this machine.
"""
from devices.bundle import bundle_size_mb, sample_archs, write_bundle
from devices.here import is_this_machine, measure_here
from devices.predictor import (WITHIN, Correction, LatencyPredictor, PredictorError, Price, Unpriceable, check_covers,
                               fit, held_out_error, load_predictor, prediction_error)
from devices.table import LatencyTable, MeasuredArch, TableError, load_table
from devices.variants import backbone_key, modules_of, module_key, space_modules

__all__ = [
    "WITHIN", "Correction", "LatencyPredictor", "LatencyTable", "MeasuredArch", "PredictorError", "Price",
    "TableError", "Unpriceable", "backbone_key", "bundle_size_mb", "check_covers", "fit", "held_out_error",
    "is_this_machine", "load_predictor", "load_table", "measure_here", "module_key", "modules_of", "prediction_error", "sample_archs", "space_modules",
    "write_bundle",
]
