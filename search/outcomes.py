"""Names every part of the search agrees on: trial outcomes, result keys, objectives and tags.

One small module with no heavy imports (no Ray, no MLflow), so the searcher, the MLflow callback, the progress
printer, the summary and ``search.export`` all read the same strings from one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

# Metric names (design.md, "Names and units"): what a trial reports, MLflow stores and the reports and export show.
# trials reports them (trials.run_trial); here they are named once for the search and the dashboards.
VAL_ACC = "val_acc"  # accuracy on the validation split (fraction 0-1), of the weight average when train.ema > 0
VAL_ACC_RAW = "val_acc_raw"  # the same of the raw weights (reported only with train.report_raw)
TEST_ACC = "test_acc"  # accuracy on the official test split (fraction 0-1): confirmation and the proxy check only
# segmentation (task segment; trials.segment_train): mean IoU over the classes present, and pixel accuracy (0-1)
VAL_MIOU = "val_miou"
TEST_MIOU = "test_miou"
VAL_PIXEL_ACC = "val_pixel_acc"
TEST_PIXEL_ACC = "test_pixel_acc"
TRAIN_LOSS = "train_loss"  # mean training loss of the epoch
LATENCY_MS = "latency_ms"  # median batch-1 latency (ms) from the trial's probe
LATENCY_REL = "latency_rel"  # that latency over the plain backbone's, timed interleaved with it (a ratio)
PARAMS_M = "params_m"  # millions of parameters
FLOPS_G = "flops_g"  # GFLOPs per image
# The latency the search ranks (ms): a trial's latency relative to the plain backbone timed interleaved with it
# (latency_rel), times the plain backbone's latency measured alone at search start: the ratio repeats between probes
# where the raw milliseconds drift with what else the machine runs (BENCHMARKS.md section 6, latency repeatability
# inside a concurrent search); with latency.reference=false it is latency_ms itself.
LATENCY_OBJECTIVE = "latency_norm_ms"
# With latency.table=PATH the search ranks this instead: the latency predicted for the device the table was measured
# on (devices.LatencyPredictor, ms at the table's batch and threads); latency_ms and latency_norm_ms are still
# measured here and logged beside it.
LATENCY_TARGET = "latency_target_ms"
# On confirmed rows, when the table's device is this machine: the latency timed here as the table's rows were
# (devices.measure_here: ONNX Runtime, the table's threads and batch, relative to its reference), ms.
LATENCY_TARGET_MEASURED = "latency_target_measured_ms"
# how an axis or a column of the ranked latency is explained (Score.latency -> words)
LATENCY_WORDS = {LATENCY_OBJECTIVE: "ms, batch 1, measured here relative to the plain backbone",
                 LATENCY_TARGET: "ms, predicted for the latency table's device"}


@dataclass(frozen=True)
class Score:
    """What a task's trials are ranked and confirmed by (``trials.TRIAL_TASKS[task].metric`` names ``val``): the
    validation metric the search maximises, the test metric confirmation scores, the word for its points in
    sentences, and the other metrics shown beside them. All fractions 0-1, higher is better."""

    val: str  # val_acc | val_miou
    test: str  # test_acc | test_miou
    noun: str  # "accuracy" | "mIoU": "+1.2 mIoU points"
    also_val: tuple[str, ...] = ()  # other validation metrics a trial reports (shown, not ranked)
    also_test: tuple[str, ...] = ()  # other test metrics a confirmation run reports (recorded, not judged)
    # the latency the search ranks (ms, minimised): LATENCY_OBJECTIVE, measured here; LATENCY_TARGET with a table
    latency: str = LATENCY_OBJECTIVE

    @property
    def objectives(self) -> dict[str, str]:
        """The search's objectives: metric name -> "max" or "min" (this score up, the ranked latency down)."""
        return {self.val: "max", self.latency: "min"}

    def points(self) -> str:
        """How a difference of this score is said: ``points`` (accuracy, as before) or ``mIoU points``."""
        return "points" if self.val == VAL_ACC else f"{self.noun} points"


ACCURACY = Score(val=VAL_ACC, test=TEST_ACC, noun="accuracy")
MIOU = Score(val=VAL_MIOU, test=TEST_MIOU, noun="mIoU", also_val=(VAL_PIXEL_ACC,), also_test=(TEST_PIXEL_ACC,))
SCORES: dict[str, Score] = {s.val: s for s in (ACCURACY, MIOU)}  # by a task's metric (trials.TRIAL_TASKS)
# The classification search's objectives: metric name -> "max" or "min" (val_acc: fraction 0-1; latency_norm_ms:
# milliseconds); a search reads its own from plan.score.objectives.
OBJECTIVES: dict[str, str] = ACCURACY.objectives
REFERENCE_LATENCY_TAG = "attnas.reference_latency_ms"  # on the parent run: the plain backbone alone, at search start
# on the parent run with latency.table: what the table was measured on (devices.LatencyTable.describe) and the
# predictor's error on its held-out architectures (devices.PredictorError); the table itself is logged beside them
LATENCY_TABLE_TAG = "attnas.latency_table"
LATENCY_TABLE_ERROR_TAG = "attnas.latency_table_error"
LATENCY_TABLE_JSON = "latency/latency_table.json"
# on the parent run: the CPU training setting train.precision=auto chose at search start (fp32, fp32+nhwc, bf16+nhwc),
# and the figures it chose by (trials.speed.PrecisionChoice.describe)
TRAIN_PRECISION_TAG = "attnas.train_precision"
TRAIN_SPEED_TAG = "attnas.train_speed"

# Result keys a trial reports (besides the metrics themselves).
EPOCH = "epoch"  # epochs trained so far (0 before training)
REJECTED = "rejected"  # 1.0 when a hard budget rejected the candidate after its probe, before training
PROBE_PREFIX = "probe."  # result keys carrying what the latency was measured on (trials.device_info)
TRAIN_PREFIX = "train."  # result keys carrying the arithmetic the trial trained in (precision, channels_last)
PARAM_PREFIXES = (PROBE_PREFIX, TRAIN_PREFIX)  # such keys are logged once, as MLflow params of the trial's run
NODE_ID = "ray_node_id"  # the Ray node id (hex) a trial trains on; Tune's own node_ip is in every result too

# MLflow tags of where a trial ran (on its run; a trial restarted after a crash gets its latest node's).
NODE_ID_TAG = "attnas.node_id"
NODE_IP_TAG = "attnas.node_ip"

# MLflow tags.
ROLE_TAG = "attnas.role"  # "search" on parent runs, "trial" on nested runs
SEARCH_TAG = "attnas.search"  # the search name, on the parent and on every trial run
TRIAL_TAG = "attnas.trial_id"  # the Ray trial id, on trial runs
OUTCOME_TAG = "attnas.outcome"  # an Outcome value
PARETO_TAG = "pareto"  # "true" / "false" on full-budget trial runs
VERDICT_TAG = "attnas.verdict"  # on the parent run: the confirmation's one-sentence answer
CONFIRMED_CSV = "confirmed.csv"  # the confirmed table, under confirmation/ on the parent run
# On the parent run: what the model's input is (dataset, data.root, image_shape C,H,W, per-channel mean/std on the
# 0-1 scale, class names by label); search.export writes it into the exported module (DATA, load_image).
DATA_JSON = "data/data.json"
CONFIRM_TAG = "attnas.confirm_of"  # on a confirmation run: the name of the architecture it confirms
SEED_TAG = "attnas.seed"  # on a confirmation run: its training seed
CONTROL_TAG = "attnas.control"  # on a control's trial run: its name (plain, se_r16, cbam_r16_k7, ...)
SPACE_TAG = "attnas.space"  # on the parent run: the space's name
EPOCHS_RUN_TAG = "attnas.epochs_run"  # on a finished trial run: epochs it trained
REJECTED_BECAUSE_TAG = "attnas.rejected_because"  # on a rejected trial run: the hard budget it broke
ERROR_TAG = "attnas.error"  # on a failed trial run: the last line of its error
RESUMED_TAG = "attnas.resumed"  # "true" on a trial run a resumed search reopened
# On the parent run while its driver lives: the driver as "HOST PID", and the unix time (s) it last said it is alive
# (search.tracking.driver): a second command with the same name is refused while it is fresh.
DRIVER_TAG = "attnas.driver"
HEARTBEAT_TAG = "attnas.heartbeat"
# attnas.role values: the parent run, a searched trial, a confirmation run
SEARCH_ROLE, TRIAL_ROLE, CONFIRM_ROLE, SUPERNET_ROLE = "search", "trial", "confirm", "supernet"
PRESCREEN_TAG = "attnas.prescreen"  # on the parent run (strategy=oneshot): the supernet's picks, as a JSON list


class Outcome(str, Enum):
    """How a trial ended (the value is what MLflow's ``attnas.outcome`` tag holds)."""

    COMPLETED = "completed"  # ran its full epoch budget
    EARLY_STOPPED = "early_stopped"  # stopped by ASHA before the full budget
    FAILED = "failed"  # raised (including NaN loss and out-of-memory)
    REJECTED = "rejected"  # over a hard budget after its probe: never trained
    INTERRUPTED = "interrupted"  # still running when the search was stopped or killed

    def __str__(self) -> str:
        return self.value


TEST_IMAGES_PARAM = "data.test_images"  # on the parent run: how many test images confirmation scores (data.test_size)


def test_split_text(images: int | None, *, dataset: str | None = None) -> str:
    """What confirmation scored on, for the summary, the log and export:
    ``the official test split of fashion_mnist (1,000 images)``."""
    return ("the official test split" + (f" of {dataset}" if dataset else "")
            + (f" ({images:,} images)" if images else ""))


def trial_outcome(result: Mapping[str, Any] | None, *, full_epochs: int, error: bool = False) -> Outcome:
    """How a trial ended, from its last result: failed (it raised, or reported nothing), rejected (over a hard
    budget, never trained), early_stopped (by ASHA, before ``full_epochs``) or completed."""
    if error or not result:
        return Outcome.FAILED
    if result.get(REJECTED):
        return Outcome.REJECTED
    return Outcome.COMPLETED if int(result.get(EPOCH, 0)) >= full_epochs else Outcome.EARLY_STOPPED

# asha.rank values: ASHA on the score alone (val_acc; val_miou for segmentation), or MO-ASHA by non-dominated rank on (val_acc, latency_norm_ms)
# (search.execution.scheduler.SCHEDULERS implements each; here so the Ray-free settings can list them)
ASHA_RANKS = (VAL_ACC, "pareto")
