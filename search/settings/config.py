"""The settings of ``python -m search.run`` and ``python -m search.export``: Hydra structured configs.

Each command's settings are a dataclass (:class:`RunConfig`, :class:`ExportConfig`) registered in Hydra's ConfigStore
under the command's name (``run``, ``export``). The dataclass gives every key its type, its default and its comment;
OmegaConf enforces the types and the choices (the enums below) when a config is composed, and the range of each value
(``>= 1``, ``> 0``, ``0..1``, a pattern) is the :class:`Rule` in its field's metadata, checked once when the typed
object is built (``OmegaConf.to_object``, or :func:`run_settings` / :func:`export_settings`). :func:`explain` turns an
OmegaConf error into one line naming the setting, the bad value and what is valid.

``faults.*`` is for the project's tests only (fault injection: trials that fail on purpose), not a user setting; it
is off by default and the parent run records it only when on.

Compose a config as a test or a notebook would, then run it::

    import hydra, search.settings.config, search.run
    with hydra.initialize(version_base=None, config_path=None):
        cfg = hydra.compose("run", overrides=["budget.trials=4"])
    search.run.run(cfg)
"""

import dataclasses
import enum
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from search.outcomes import ASHA_RANKS
from search.samplers import SAMPLERS
from search.settings.errors import UserError
from search.settings.plan import CONFIRM_CONTROLS, FAULT_KINDS, MIXED
from search.settings.tracking_uri import DEFAULT_TRACKING_URI
from spaces import Budget
from trials import DEFAULT_CACHE_ROOT, PRECISIONS, PROBE_MINIMUMS, RUNTIMES, TRAIN_PRECISIONS, ProbeConfig

# Choices: OmegaConf accepts a member's name (sampler=tpe) and lists the names when given another value.
Sampler = enum.Enum("Sampler", {name: name for name in SAMPLERS}, module=__name__)
Device = enum.Enum("Device", {name: name for name in ("auto", "cpu", "cuda")}, module=__name__)
Precision = enum.Enum("Precision", {name: name for name in PRECISIONS}, module=__name__)
Runtime = enum.Enum("Runtime", {name: name for name in RUNTIMES}, module=__name__)
AshaRank = enum.Enum("AshaRank", {name: name for name in ASHA_RANKS}, module=__name__)
Strategy = enum.Enum("Strategy", {name: name for name in ("multi_trial", "oneshot")}, module=__name__)
TrainPrecision = enum.Enum("TrainPrecision", {name: name for name in ("auto", *TRAIN_PRECISIONS)}, module=__name__)
ConfirmControls = enum.Enum("ConfirmControls", {name: name for name in CONFIRM_CONTROLS}, module=__name__)
FaultKind = enum.Enum("FaultKind", {name: name for name in (*FAULT_KINDS, MIXED)}, module=__name__)


@dataclass(frozen=True)
class Rule:
    """What a setting's value may be beyond its type: ``valid`` says it in words (``an integer >= 1``)."""

    valid: str
    ok: Callable[[Any], bool] = lambda value: True


def integer(*, minimum: int) -> dict[str, Rule]:
    return {"rule": Rule(f"an integer >= {minimum}", lambda value: value >= minimum)}


def number(*, above: float) -> dict[str, Rule]:
    return {"rule": Rule(f"a number > {above:g}", lambda value: value > above)}


def fraction() -> dict[str, Rule]:
    return {"rule": Rule("a number from 0 to 1", lambda value: 0 <= value <= 1)}


def text(valid: str = "a non-empty string", *, pattern: str = r".+") -> dict[str, Rule]:
    return {"rule": Rule(valid, lambda value: re.fullmatch(pattern, value) is not None)}


def choice(noun: str) -> dict[str, str]:
    """An enum setting: ``noun`` names it in the error (``unknown sampler 'grid'; valid samplers: ...``)."""
    return {"noun": noun}


NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"  # a search name becomes a folder (runs/NAME) and an MLflow run name
FOLDER = text("a folder path")
# Ray Tune's storage: a folder, or a URI of a file system Ray reaches through pyarrow (s3://, gs://, ...)
STORAGE = text("a folder path or a storage URI such as s3://BUCKET/attnas")
# ray.address: 'auto' (RAY_ADDRESS, else the cluster 'ray start' last started on this machine) or the head's GCS
# HOST:PORT (Ray Client's ray:// is not supported: the search's driver must run on a node of the cluster)
RAY_ADDRESS = text("'auto' or the Ray head's HOST:PORT (e.g. 10.0.0.5:6379)",
                   pattern=r"auto|[A-Za-z0-9_.-]+:[0-9]{1,5}")


def _overrides_of(schema: type) -> type:
    """A config dataclass with every field of ``schema`` as an optional override (null = keep the space's value).
    A mapping field becomes Any, not Optional[Dict]: OmegaConf 2.3 cannot merge a mapping into a typed dict that is
    null (AttributeError); the schema itself checks that it is a mapping (e.g.
    'budget.backbone_kwargs={channels:[16,32,64,128]}')."""
    fields = []
    for name, kind in typing.get_type_hints(schema).items():
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        kind = options[0] if len(options) == 1 else kind  # int | None -> int
        fields.append((name, Optional[kind] if kind in (str, int, float, bool) else Any, field(default=None)))
    made = dataclasses.make_dataclass(f"{schema.__name__}Overrides", fields)
    made.__module__ = __name__  # pickled and named like the dataclasses written out here
    return made


# budget.*: overrides of the space's cpu/gpu budget, field by field (spaces.Budget: meaning, defaults and ranges)
BudgetOverrides = _overrides_of(Budget)


@dataclass
class ConstraintsConfig:
    """Hard budgets: a candidate over one is rejected after its probe, before any training."""

    max_latency_ms: Optional[float] = field(default=None, metadata=number(above=0))  # batch-1 latency_ms, as probed here (ms)
    max_params_m: Optional[float] = field(default=None, metadata=number(above=0))  # parameters, millions


@dataclass
class AshaConfig:
    """Early stopping on val_acc (Li et al. 2018, https://arxiv.org/abs/1810.05934)."""

    # epochs every trial gets before it can be stopped; 2: at the shipped CPU budget val_acc after epoch 1 ranks the
    # final accuracy clearly worse than after epoch 2 (BENCHMARKS.md section 10)
    grace_period: int = field(default=2, metadata=integer(minimum=1))
    reduction_factor: float = field(default=2.0, metadata=number(above=1))  # keep the top 1/reduction_factor at each rung
    # val_acc: ASHA on val_acc alone; pareto: MO-ASHA, non-dominated rank on (val_acc, latency_norm_ms) at each rung
    # (search.execution.scheduler)
    rank: AshaRank = field(default=AshaRank["val_acc"], metadata=choice("ASHA ranking"))


@dataclass
class DataConfig:
    """Where the space's dataset comes from (trials.DATASETS; the space names it)."""

    # dataset folder; default per dataset (Fashion-MNIST: /usr/share/datasets/fashion-mnist, then data.cache);
    # image_folder: your images, one subfolder per class (README, "Search your own images")
    root: Optional[str] = field(default=None, metadata=FOLDER)
    download: bool = True  # let torchvision download a missing published dataset into data.cache (needs internet)
    # square side in px every image is resized to; null: native size (image_folder: 32 when the median image side
    # is <= 40 px, else 64; trials.image_folder.default_image_size)
    image_size: Optional[int] = field(default=None, metadata=integer(minimum=1))
    # score confirmation on a fixed stratified subset of this many test images; null: the whole official test split
    # (a smaller subset is quicker on a CPU, at the price of a wider interval: binomial std ~ sqrt(p(1-p)/N))
    test_size: Optional[int] = field(default=None, metadata=integer(minimum=1))
    # downloads and the image-folder tensor cache (image_folder/KEY.pt, reused while the folder is unchanged)
    cache: str = field(default=str(DEFAULT_CACHE_ROOT), metadata=FOLDER)


@dataclass
class LatencyConfig:
    """The probe each trial runs before training (every trial logs device, torch, threads)."""

    # defaults and ranges: trials.ProbeConfig (their one home)
    runs: int = field(default=ProbeConfig.runs, metadata=integer(minimum=PROBE_MINIMUMS["runs"]))  # timed forward passes per batch size; latency_ms is the median at batch 1
    warmup: int = field(default=ProbeConfig.warmup, metadata=integer(minimum=PROBE_MINIMUMS["warmup"]))  # untimed passes first
    batch: int = field(default=ProbeConfig.batch, metadata=integer(minimum=PROBE_MINIMUMS["batch"]))  # also time this batch size: latency_b32_ms (0 = skip)
    precision: Precision = field(default=Precision[ProbeConfig.precision], metadata=choice("latency precision"))  # fp32 | bf16 | fp16: the deployment precision latency is timed in
    channels_last: bool = ProbeConfig.channels_last  # time in NHWC on CPU too (on CUDA the model is NHWC, as in training)
    # torch | onnxruntime: what runs the timed inferences, i.e. the runtime whose latency the search ranks
    # (onnxruntime: exported to ONNX, ONNX Runtime's CPU provider, same batch and threads; CPU and fp32 only)
    runtime: Runtime = field(default=Runtime[ProbeConfig.runtime], metadata=choice("latency runtime"))
    reference: bool = True  # also time the plain backbone interleaved: latency_rel = latency / plain latency
    # a latency table of the device the model will run on (python -m devices bundle, time_bundle.py there; docs/
    # latency.md): the search ranks latency_target_ms, predicted from it, instead of latency measured here (which
    # every trial still logs); null: rank latency_norm_ms, measured here
    table: Optional[str] = field(default=None, metadata=text("a latency table file (latency_table.json)"))


@dataclass
class TrainSettings:
    """How trials train on this host (the recipe itself, epochs, lr, ema, is the space's budget.*)."""

    # auto | fp32 | bf16: the CPU forward's arithmetic. auto: timed at search start on the plain backbone (fp32,
    # fp32 channels_last, bf16 channels_last; trials.speed.choose_precision) and kept on the parent run; bf16 trains
    # channels_last. On CUDA trials always run bf16 autocast.
    precision: TrainPrecision = field(default=TrainPrecision["auto"], metadata=choice("train precision"))


@dataclass
class MlflowConfig:
    # SQLite file in the current folder; or http://127.0.0.1:5000 for a server (reachability: search.settings.tracking_uri)
    tracking_uri: str = field(default=DEFAULT_TRACKING_URI, metadata=text(
        "a tracking URI such as sqlite:///mlflow.db or http://127.0.0.1:5000"))
    experiment: str = field(default="attnas", metadata=text())


@dataclass
class RayConfig:
    """Where trials run (search.execution.cluster): a local Ray started for the search, or an existing cluster it joins."""

    # null: start a local Ray and shut it down after the search; 'auto' or HOST:PORT: join that cluster (its nodes'
    # CPUs/GPUs run the trials; it is left running). Checked for reachability before anything is written.
    address: Optional[str] = field(default=None, metadata=RAY_ADDRESS)


@dataclass
class StudyConfig:
    """The Optuna study's RDB storage (search.plan_check.study_storage_url)."""

    # an Optuna RDB URL (sqlite:///FILE, postgresql://..., mysql://...); null: optuna.db beside a sqlite MLflow store,
    # else in the storage folder, else (storage is a URI) in the current folder. Resuming from another machine needs
    # it shared (a database server, or a file on a shared folder).
    storage: Optional[str] = field(default=None, metadata=text(
        "an Optuna RDB URL such as sqlite:///optuna.db or postgresql://HOST/DB", pattern=r"[a-z0-9+]+://.+"))


@dataclass
class FaultsConfig:
    """TESTING ONLY, not a user setting: make some trials fail on purpose, so the tests see a search survive failed
    trials (search.execution.faults). Off by default."""

    rate: float = field(default=0.0, metadata=fraction())  # fraction of trials (0.2: trials 4, 9, 14, ... fail)
    kind: FaultKind = field(default=FaultKind["mixed"], metadata=choice("failure kind"))  # raise | oom | nan | mixed (cycles oom, nan, raise)


@dataclass
class OneshotConfig:
    """strategy=oneshot: a weight-sharing supernet pre-screens the space, and the sampler's trials are its top picks
    (search.study.prescreen; its ranking measured against the ground truth in BENCHMARKS.md section 14)."""

    # supernet training epochs on the budget's training images; null: twice the budget's epochs (every path gets
    # a fraction of the steps, so it needs more than one trial)
    epochs: Optional[int] = field(default=None, metadata=integer(minimum=1))
    # distinct architectures drawn from the space (uniformly, as the supernet trains) and scored with inherited
    # weights; the budget.trials best by Pareto rank on (supernet val_acc, latency_norm_ms) are trained from scratch
    sample: int = field(default=48, metadata=integer(minimum=2))
    recal_batches: int = field(default=10, metadata=integer(minimum=1))  # BatchNorm re-estimation batches per path


@dataclass
class ConfirmConfig:
    """After the search: the front's top_k and the controls retrained from scratch on fresh seeds and scored on the
    dataset's official test split, with a verdict against the plain backbone (search.confirm.phase)."""

    enabled: bool = True  # false: skip the phase (export then picks from the search's front)
    # most accurate front architectures to confirm (besides every control); null: 3 on GPU, 1 on CPU
    # (search.plan_check.CONFIRM_DEFAULTS says why)
    top_k: Optional[int] = field(default=None, metadata=integer(minimum=1))
    # seeds every architecture gets before the first look; null: 3 (search.plan_check.CONFIRM_DEFAULTS)
    seeds: Optional[int] = field(default=None, metadata=integer(minimum=1))
    # seeds are added (paired, every architecture alike) until every 95% interval of the difference to the plain
    # backbone is at most this half-width (accuracy fraction; 0.01 = 1 point), or max_seeds is reached
    # (search.confirm.sequential); null: per hardware (CONFIRM_DEFAULTS)
    resolution: Optional[float] = field(default=None, metadata=number(above=0))
    # the seed cap (>= seeds); null: per hardware (CONFIRM_DEFAULTS), at least `seeds`
    max_seeds: Optional[int] = field(default=None, metadata=integer(minimum=1))
    # which controls are retrained beside the front's picks: all (plain and the space's SE/CBAM references) or plain
    # only (the verdict's reference); null: per hardware (CONFIRM_DEFAULTS: all on GPU, plain on CPU)
    controls: Optional[ConfirmControls] = field(default=None, metadata=choice("confirm.controls choice"))


@dataclass
class RunConfig:
    """``python -m search.run space=NAME [key=value ...]``: every key below can be overridden on the command line."""

    space: str = field(default="fashion_attention", metadata=text())  # spaces/NAME.yaml, or a path to a YAML file
    # search name (MLflow parent run, Ray experiment); default: SPACE-YYYYmmdd-HHMMSS
    name: Optional[str] = field(default=None, metadata=text("a name of letters, digits, '.', '_' and '-' only",
                                                             pattern=NAME_PATTERN))
    # tpe | nsga2 | random  (Optuna, multi-objective: val_acc max, latency_norm_ms min; search.outcomes.OBJECTIVES)
    # tpe_mv: on the ground-truth table its front's hypervolume at 13 trials (about the CPU search's size) beats plain
    # tpe's by more than the replays' noise, and ties at 40 trials (BENCHMARKS.md section 7)
    sampler: Sampler = field(default=Sampler["tpe_mv"], metadata=choice("sampler"))
    seed: int = field(default=0, metadata=integer(minimum=0))  # sampler and training seed
    # auto | cpu | cuda   (auto: cuda when available; picks the gpu or cpu budget)
    device: Device = field(default=Device["auto"], metadata=choice("device"))
    # trials at once; default: CPU cores / cpu_per_trial (CPU) or GPUs / gpu_per_trial (GPU), summed over the
    # nodes on a Ray cluster (ray.address; search.execution.cluster.trial_slots)
    concurrency: Optional[int] = field(default=None, metadata=integer(minimum=1))
    budget: BudgetOverrides = field(default_factory=BudgetOverrides)
    constraints: ConstraintsConfig = field(default_factory=ConstraintsConfig)
    asha: AshaConfig = field(default_factory=AshaConfig)
    data: DataConfig = field(default_factory=DataConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    train: TrainSettings = field(default_factory=TrainSettings)
    # torch.compile the training forward (latency and export use the eager model). Off: on CPU its compile time is
    # not paid back by the faster steps within one trial at the CPU budget (BENCHMARKS.md section 9)
    compile: bool = False
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    faults: FaultsConfig = field(default_factory=FaultsConfig)  # testing only (fault injection), not a user setting
    confirm: ConfirmConfig = field(default_factory=ConfirmConfig)
    # multi_trial: the sampler proposes every trial (default); oneshot: a supernet pre-screens the space first and
    # the trials are its picks (oneshot.*)
    strategy: Strategy = field(default=Strategy["multi_trial"], metadata=choice("search strategy"))
    oneshot: OneshotConfig = field(default_factory=OneshotConfig)
    # Ray Tune experiment folders and checkpoints (runs/NAME/...): a folder or a URI (s3://BUCKET/attnas); on a
    # cluster every node must reach it (a shared folder at the same path, or a URI; checked before any trial)
    storage: str = field(default="runs", metadata=STORAGE)
    ray: RayConfig = field(default_factory=RayConfig)
    study: StudyConfig = field(default_factory=StudyConfig)

    def __post_init__(self) -> None:
        check(self)


@dataclass
class ExportConfig:
    """``python -m search.export [key=value ...]``."""

    search: str = field(default="latest", metadata=text())  # search name (MLflow parent run name) or 'latest'
    # pick the most accurate front trial with latency_ms <= this; null: most accurate overall
    max_latency_ms: Optional[float] = field(default=None, metadata=number(above=0))
    out: str = field(default="exported", metadata=FOLDER)  # the export goes to OUT/<module_name>/
    # default: attnas_<search name>, made a valid Python identifier
    module_name: Optional[str] = field(default=None, metadata=text("a valid Python identifier",
                                                                   pattern=r"[A-Za-z_]\w*"))
    overwrite: bool = False  # true: replace an existing OUT/<module_name>/ (false: refuse, write nothing)
    register: bool = True  # register the model in the MLflow Model Registry under the search's parent run
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)

    def __post_init__(self) -> None:
        check(self)


# A budget on the proxy check's command line: EPOCHSxTRAIN_SIZE, e.g. 3x3000 (3 epochs on 3,000 training images)
BUDGET_PATTERN = r"[1-9][0-9]*x[1-9][0-9]*"
BUDGET_TEXT = "a budget EPOCHSxTRAIN_SIZE such as 3x3000"


@dataclass
class ProxyConfig:
    """``python -m search.proxy space=NAME [key=value ...]``: the proxy-task check (does a cheap budget rank
    architectures as a long one does?), as Vertex AI NAS runs it for its users (search.proxy)."""

    space: str = field(default="fashion_attention", metadata=text())  # spaces/NAME.yaml, or a path to a YAML file
    # architectures compared: the plain backbone, the space's controls, then distinct random draws from the space
    archs: int = field(default=10, metadata=integer(minimum=3))
    seeds: int = field(default=3, metadata=integer(minimum=2))  # training seeds per architecture and budget
    reference: str = field(default="4x8000", metadata=text(BUDGET_TEXT, pattern=BUDGET_PATTERN))  # the long budget
    # the cheap budgets to judge against the reference (each EPOCHSxTRAIN_SIZE)
    budgets: list[str] = field(default_factory=lambda: ["2x3000", "3x3000", "3x6000"])
    effect: float = field(default=0.01, metadata=number(above=0))  # the test_acc difference to resolve (fraction)
    min_tau: float = field(default=0.65, metadata=fraction())  # Kendall tau a cheap budget must reach
    seed: int = field(default=0, metadata=integer(minimum=0))  # draws of the random architectures, the data split
    # trials at once (processes, one core each on CPU); default: CPU cores // the budget's cpu_per_trial
    workers: Optional[int] = field(default=None, metadata=integer(minimum=1))
    out: str = field(default="proxy", metadata=FOLDER)  # OUT/SPACE.json: every finished run; rerun to resume
    report: bool = False  # true: print the figures of the runs recorded so far and train nothing (a check under way)
    device: Device = field(default=Device["auto"], metadata=choice("device"))
    train: TrainSettings = field(default_factory=TrainSettings)
    data: DataConfig = field(default_factory=DataConfig)
    # the rest of the recipe (lr, batch_size, ema, ...) as search.run takes it; epochs and train_size come from budgets
    budget: BudgetOverrides = field(default_factory=BudgetOverrides)

    def __post_init__(self) -> None:
        check(self)
        for budget in self.budgets:
            if re.fullmatch(BUDGET_PATTERN, budget) is None:
                raise UserError(f"budgets={budget!r} must be {BUDGET_TEXT}")


# Hydra's settings for both commands: no log files or handlers of Hydra's, no outputs/ or .hydra/ folder (a search
# writes only mlflow.db, mlartifacts/ and runs/), the working folder stays the current one.
_HYDRA_DEFAULTS = ["_self_", {"override hydra/job_logging": "none"}, {"override hydra/hydra_logging": "none"}]
_HYDRA = {"output_subdir": None, "run": {"dir": "."}}
SCHEMAS: dict[str, type] = {"run": RunConfig, "export": ExportConfig, "proxy": ProxyConfig}  # config name -> its dataclass


def _register() -> None:
    store = ConfigStore.instance()
    for config_name, schema in SCHEMAS.items():
        store.store(name=f"{config_name}_schema", node=schema)
        store.store(name=config_name, node={"defaults": [f"{config_name}_schema", *_HYDRA_DEFAULTS], "hydra": _HYDRA})


_register()


# ---- typed settings from a composed config --------------------------------------------------------------------

def run_settings(cfg: Union[DictConfig, RunConfig]) -> RunConfig:
    """``cfg`` (a composed ``run`` config, a mapping of its keys, or already a :class:`RunConfig`) as a checked
    :class:`RunConfig`; bad input raises :class:`UserError`."""
    return _typed(cfg, RunConfig)


def proxy_settings(cfg: Union[DictConfig, ProxyConfig]) -> ProxyConfig:
    """``cfg`` as a checked :class:`ProxyConfig` (see :func:`run_settings`)."""
    return _typed(cfg, ProxyConfig)


def export_settings(cfg: Union[DictConfig, ExportConfig]) -> ExportConfig:
    """``cfg`` as a checked :class:`ExportConfig` (see :func:`run_settings`)."""
    return _typed(cfg, ExportConfig)


def _typed(cfg: Any, schema: type) -> Any:
    if isinstance(cfg, schema):
        return cfg  # checked by its __post_init__
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), cfg))
    except OmegaConfBaseException as exc:
        raise explain(exc, schema) from None


def check(settings: Any, prefix: str = "") -> None:
    """Apply every field's :class:`Rule` to ``settings`` (a config dataclass, nested ones included)."""
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if dataclasses.is_dataclass(value):
            check(value, f"{prefix}{f.name}.")
        else:
            _apply(f.metadata.get("rule"), f"{prefix}{f.name}", value)


def check_setting(schema: type, key: str, value: Any) -> None:
    """Apply the rule of setting ``key`` (dotted) of ``schema`` to a value computed from others (a default name)."""
    found = _field(schema, key)
    _apply(found[0].metadata.get("rule") if found else None, key, value)


def _apply(rule: Rule | None, key: str, value: Any) -> None:
    if rule is None or value is None:
        return
    try:
        good = rule.ok(value)
    except TypeError:  # a dataclass built by hand with a value of the wrong type
        good = False
    if not good:
        raise UserError(f"{key}={_show(value)} must be {rule.valid}")


# ---- one-line errors ------------------------------------------------------------------------------------------

def explain(exc: OmegaConfBaseException, schema: type) -> UserError:
    """One line for an OmegaConf error about the settings of ``schema``: the setting, the bad value, what is valid."""
    key = str(getattr(exc, "full_key", None) or getattr(exc, "key", None) or "")
    if not key:
        return UserError(str(exc).splitlines()[0])
    problem = unknown_setting(schema, key)
    if problem:
        return UserError(problem)
    f, kind = _field(schema, key)
    value = getattr(exc, "value", None)
    if dataclasses.is_dataclass(kind):
        return UserError(f"{key}={_show(value)}: {key!r} is a group of settings, not a value; set one of them as "
                         f"{key}.NAME=VALUE; valid settings under {key}: {settings_list(schema, key)}")
    if isinstance(value, dict):
        return UserError(f"{key!r} is a single value, not a group of settings (write {key}=VALUE)")
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        if not isinstance(value, str) and str(value).lower() in kind.__members__:  # faults.kind=nan: a float
            name = str(value).lower()
            return UserError(f"{key}={value}: Hydra reads {value} as a number here; quote it: {key}='{name}'")
        noun = f.metadata.get("noun", key)
        nouns = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
        return UserError(f"unknown {noun} {_show(value)}; valid {nouns}: {', '.join(kind.__members__)}")
    return UserError(f"{key}={_show(value)} must be {_valid(f, kind)}")


def settings_list(schema: type, group: str = "") -> str:
    """The settings of ``schema`` (under the dotted ``group``) as ``space, name, budget.*, ...``."""
    node = _field(schema, group)[1] if group else schema
    hints = typing.get_type_hints(node)
    return ", ".join(f"{f.name}.*" if dataclasses.is_dataclass(hints[f.name]) else f.name
                     for f in dataclasses.fields(node))


def unknown_setting(schema: type, key: str) -> str | None:
    """The error for a dotted ``key`` that is not a setting of ``schema`` (listing the valid ones), else None."""
    node: Any = schema
    parts = key.split(".")
    for depth, part in enumerate(parts):
        parent = ".".join(parts[:depth])
        if not dataclasses.is_dataclass(node):
            return f"unknown setting {key!r}; {parent!r} is a single value, not a group (write {parent}=VALUE)"
        hints = typing.get_type_hints(node)
        if part not in hints or part not in {f.name for f in dataclasses.fields(node)}:
            under = f" under {parent}" if parent else ""
            return f"unknown setting {key!r}; valid settings{under}: {settings_list(schema, parent)}"
        node = hints[part]
    return None


def _field(schema: type, key: str) -> tuple[dataclasses.Field, Any] | None:
    """The dataclass field of dotted ``key`` and its type (Optional unwrapped), or None when there is none."""
    node: Any = schema
    found = None
    for part in key.split("."):
        if not dataclasses.is_dataclass(node):
            return None
        fields = {f.name: f for f in dataclasses.fields(node)}
        if part not in fields:
            return None
        kind = typing.get_type_hints(node)[part]
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if typing.get_origin(kind) is Union and len(args) == 1:
            kind = args[0]
        found = (fields[part], kind)
        node = kind
    return found


def _valid(f: dataclasses.Field, kind: Any) -> str:
    if "rule" in f.metadata:
        return f.metadata["rule"].valid
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(kind, str(kind))


def _show(value: Any) -> str:
    """``2`` for 2.0 (the number as typed), else repr: ``'abc'``, ``-0.5``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, enum.Enum):
        return repr(value.name)
    return repr(value)
