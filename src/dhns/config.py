"""Typed, validated views of `params.yaml`: one frozen dataclass per stage section.

Unknown keys and out-of-range values fail loudly at load time, so a typo in `dvc exp run -S` never
silently falls back to a default. No field has a default in code: params.yaml is the one source of every
value, so the stages, `dhns.tune` and the benchmark cannot disagree with it (each reads a params file;
`load_params(overrides=...)` changes the few values a tool sets itself, by name).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

T = TypeVar("T")


class ParamsError(ValueError):
    """A params file or value the stages refuse; its message names the setting (a stage prints it as one line)."""


MODEL_NAMES = ("transe", "distmult", "rotate")
CORRUPTIONS = ("uniform", "bernoulli")  # which side a negative replaces: 50/50 (Bordes 2013) | per relation (Wang 2014)
WEIGHTINGS = ("uniform", "self_adversarial")  # how the loss weighs negatives: mean | softmax of their scores (Sun 2019)
GENERATED_NEGATIVES = ("none", "dhns")  # negatives added by a generator: none | DiffHEG's hierarchical ones (NTAT)
NEGATIVE_CACHES = ("none", "nscaching")  # where replacements come from: all entities | a cache of high scorers (Zhang 2019)
CACHE_REFRESH_RULES = ("importance", "top")  # keep N1 drawn with probability ~ exp(score) | the N1 highest
LR_SCHEDULES = ("none", "plateau")  # constant | multiplied by lr_decay_factor after lr_decay_patience stale validations
FROM_SAMPLER = ""  # an axis left "" takes the sampler preset's value
TIE_POLICIES = ("optimistic", "realistic", "pessimistic")
DIFFUSION_LOSSES = ("l1", "l2")
OPTIMIZERS = ("adam", "lazy_adam", "row_adagrad")
SPARSE_OPTIMIZERS = ("lazy_adam", "row_adagrad")  # sparse entity-table gradients: a step touches its rows only
PRECISIONS = ("fp32", "tf32", "bf16", "auto")  # auto: bf16 where the device has it natively (dhns.training.kgc)
REGULARIZERS = ("l2", "n3")
HARD_LOSS_FORMS = ("reference", "per_view")


@dataclasses.dataclass(frozen=True)
class ProtocolRules:
    """What `train.protocol` decides, decoded here once: the stages, the train stage's starting point and
    the objective read these flags and never compare the protocol's name."""

    starts_from_pretrained: bool  # train continues from models/pretrain (and models/diffusion's generator)
    generator_trains_first: bool  # the generator takes a step on each batch before the KGC step
    skipped_stages: tuple[str, ...]  # stages with nothing to do: they write outputs that say why


# finetune: NTAT continues from the pretrained model and the trained generator (this project's grid);
# joint: the paper's protocol, the KGC model and the generator from random initialisation, trained together
PROTOCOL_RULES: dict[str, ProtocolRules] = {
    "finetune": ProtocolRules(starts_from_pretrained=True, generator_trains_first=False, skipped_stages=()),
    "joint": ProtocolRules(starts_from_pretrained=False, generator_trains_first=True,
                           skipped_stages=("pretrain", "diffusion")),
}
PROTOCOLS = tuple(PROTOCOL_RULES)
IMAGE_BACKENDS = ("clip", "vit")
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")


@dataclasses.dataclass(frozen=True)
class NegativeScheme:
    """What a training stage's negatives are, one independent decision per field (PyKEEN keeps the
    corruption, the weighting and the loss apart in the same way)."""

    corruption: str  # CORRUPTIONS
    weighting: str  # WEIGHTINGS
    generated: str = "none"  # GENERATED_NEGATIVES
    cache: str = "none"  # NEGATIVE_CACHES

    @property
    def self_adversarial(self) -> bool:
        return self.weighting == "self_adversarial"

    @property
    def cached(self) -> bool:
        return self.cache != "none"

    @property
    def uses_generator(self) -> bool:
        return self.generated != "none"


SAMPLER_PRESETS: dict[str, NegativeScheme] = {  # the names the comparison's arms and earlier runs use
    "uniform": NegativeScheme("uniform", "uniform"),
    "bernoulli": NegativeScheme("bernoulli", "uniform"),
    "self_adversarial": NegativeScheme("uniform", "self_adversarial"),
    "bernoulli_self_adversarial": NegativeScheme("bernoulli", "self_adversarial"),
    "dhns": NegativeScheme("uniform", "self_adversarial", "dhns"),  # the reference: its base loss is self-adversarial
    "bernoulli_dhns": NegativeScheme("bernoulli", "self_adversarial", "dhns"),  # the same on Bernoulli's sides
    # NSCaching as published: replacements drawn from each query's cache of high-scoring entities, weighed alike
    "nscaching": NegativeScheme("uniform", "uniform", cache="nscaching"),
    "bernoulli_nscaching": NegativeScheme("bernoulli", "uniform", cache="nscaching"),
}
SAMPLER_NAMES = tuple(name for name, scheme in SAMPLER_PRESETS.items() if not scheme.uses_generator)
TRAIN_SAMPLER_NAMES = tuple(SAMPLER_PRESETS)


def negative_scheme(sampler: str, corruption: str = FROM_SAMPLER, weighting: str = FROM_SAMPLER,
                    generated: str = FROM_SAMPLER, cache: str = FROM_SAMPLER) -> NegativeScheme:
    """The preset `sampler` with each axis that is set ("" = the preset's) in its place."""
    preset = SAMPLER_PRESETS[sampler]
    return NegativeScheme(corruption or preset.corruption, weighting or preset.weighting, generated or preset.generated,
                          cache or preset.cache)


def preset_of(scheme: NegativeScheme) -> str | None:
    """The preset name that means exactly `scheme`, if one does."""
    return next((name for name, preset in SAMPLER_PRESETS.items() if preset == scheme), None)


def _check_choice(section: str, key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ParamsError(f"params {section}.{key}: {value!r} is not one of {', '.join(allowed)}")


def _check_positive(section: str, key: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ParamsError(f"params {section}.{key}: {value!r} must be {bound}")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    dataset: str  # folder under data/raw/
    drop_leaked: bool  # remove valid/test triples already in train (DB15K's valid leaks thousands)
    valid_from_train: int  # train triples held out for validation when the file's split is too small
    valid_file_min: int  # the file's validation split (after drop_leaked) is used if it has this many
    valid_seed: int  # seeds that sample; not `seed`, so a seed sweep keeps one validation split (and features)

    def __post_init__(self) -> None:
        _check_positive("data", "valid_from_train", self.valid_from_train, allow_zero=True)
        _check_positive("data", "valid_seed", self.valid_seed, allow_zero=True)
        _check_positive("data", "valid_file_min", self.valid_file_min, allow_zero=True)

    def held_out_validation_size(self, file_valid_triples: int) -> int:
        """How many train triples to hold out: none while the file's own split is large enough.

        DB15K keeps 73 validation triples once leaks are dropped (a coin toss for model selection), MKG-W
        and MKG-Y thousands: with the defaults DB15K validates on 3,000 held-out train triples and the
        others on their own split. `valid_file_min: 0` always keeps the file's split.
        """
        return self.valid_from_train if file_valid_triples < self.valid_file_min else 0


@dataclasses.dataclass(frozen=True)
class FeaturesConfig:
    text_encoder: str  # "minilm" (shipped offline), a local folder, or a hub model id
    text_batch_size: int
    text_max_length: int  # tokens per entity text
    image_backend: str  # clip (open_clip) | vit (transformers)
    image_model: str  # open_clip architecture, or a ViT folder / model id
    image_pretrained: str  # clip: open_clip tag or weights file (required); vit: ""; "random": opt-in random init
    image_batch_size: int
    import_dir: str  # folder with {DATASET}-visual.pth / {DATASET}-textual.pth to use instead

    def __post_init__(self) -> None:
        _check_choice("features", "image_backend", self.image_backend, IMAGE_BACKENDS)
        for key in ("text_batch_size", "text_max_length", "image_batch_size"):
            _check_positive("features", key, getattr(self, key))


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    name: str  # transe | distmult | rotate
    embedding_dim: int  # RotatE entities are complex: 2 * embedding_dim real numbers
    margin: float  # gamma in gamma - distance (TransE, RotatE); unused by DistMult
    use_features: bool  # fuse text/image features with the structural embedding

    def __post_init__(self) -> None:
        _check_choice("model", "name", self.name, MODEL_NAMES)
        _check_positive("model", "embedding_dim", self.embedding_dim)
        _check_positive("model", "margin", self.margin, allow_zero=True)


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    sampler: str  # a preset of the axes below: (bernoulli_)self_adversarial | uniform | bernoulli | (bernoulli_)nscaching
    corruption: str  # uniform | bernoulli; "" = the sampler's
    weighting: str  # uniform | self_adversarial; "" = the sampler's
    cache: str  # none | nscaching (replacements from each query's cache of high scorers); "" = the sampler's
    cache_size: int  # N1: entities cached per (h, r) for tails and per (r, t) for heads
    cache_pool: int  # N2: entities drawn uniformly at each refresh to compete with the cached ones
    cache_refresh: str  # importance (N1 drawn without replacement, probability ~ exp(score)) | top (the N1 highest)
    num_negatives: int
    adversarial_temperature: float  # only where the weighting is self_adversarial
    batch_size: int
    kgc_lr: float
    regularization: float  # weight of `regularizer` on the embeddings a batch touches
    regularizer: str  # l2: mean squared entry | n3: mean over triples of sum |x|^3 of h, r, t (Lacroix 2018)
    num_epochs: int  # the budget; early stopping (patience) usually ends a run before it
    eval_every: int  # epochs between validation passes
    patience: int  # validation passes without improvement before stopping; 0 = never stop early
    min_epochs: int  # no early stop before this many epochs: a noisy start cannot end a run
    lr_schedule: str  # none | plateau: every learning rate times lr_decay_factor after lr_decay_patience stale validations
    lr_decay_factor: float  # in (0, 1)
    lr_decay_patience: int  # stale validation passes before each decay (the count restarts after a decay or a gain)
    eval_batch_size: int
    max_grad_norm: float  # clip the gradient's global L2 norm to this; 0 = no clipping
    checkpoint_every: int  # epochs between resumable checkpoints in checkpoints/<stage>; 0 = none
    num_processes: int  # > 1: data-parallel over this many processes (torchrun, one per GPU or CPU gloo)
    precision: str  # fp32 | tf32 (CUDA matmuls) | bf16 (autocast) for the training steps
    # adam (dense: every entity row, every step) | lazy_adam | row_adagrad (only the rows a batch touches)
    optimizer: str
    row_adagrad_lr: float  # the entity table's step size under row_adagrad (Adagrad's scale); others keep kgc_lr

    def __post_init__(self) -> None:
        self._check_common("pretrain", SAMPLER_NAMES)

    @property
    def negatives(self) -> NegativeScheme:
        """The one place a stage's negative settings are decoded: the sampler preset with its axes overridden."""
        return negative_scheme(self.sampler, self.corruption, self.weighting, cache=self.cache)

    def loss_temperature(self) -> float | None:
        """The self-adversarial temperature, or None where the loss weighs negatives uniformly."""
        return self.adversarial_temperature if self.negatives.self_adversarial else None

    def _check_common(self, section: str, samplers: tuple[str, ...]) -> None:
        _check_choice(section, "sampler", self.sampler, samplers)
        _check_choice(section, "corruption", self.corruption, (FROM_SAMPLER,) + CORRUPTIONS)
        _check_choice(section, "weighting", self.weighting, (FROM_SAMPLER,) + WEIGHTINGS)
        _check_choice(section, "cache", self.cache, (FROM_SAMPLER,) + NEGATIVE_CACHES)
        _check_choice(section, "cache_refresh", self.cache_refresh, CACHE_REFRESH_RULES)
        _check_choice(section, "precision", self.precision, PRECISIONS)
        _check_choice(section, "lr_schedule", self.lr_schedule, LR_SCHEDULES)
        if not 0.0 < self.lr_decay_factor < 1.0:
            raise ParamsError(f"params {section}.lr_decay_factor: {self.lr_decay_factor!r} must be in (0, 1)")
        _check_choice(section, "regularizer", self.regularizer, REGULARIZERS)
        _check_choice(section, "optimizer", self.optimizer, OPTIMIZERS)
        for key in ("num_negatives", "cache_size", "cache_pool", "batch_size", "kgc_lr", "row_adagrad_lr", "num_epochs",
                    "eval_every", "eval_batch_size", "num_processes", "lr_decay_patience"):
            _check_positive(section, key, getattr(self, key))
        for key in ("adversarial_temperature", "regularization", "patience", "min_epochs", "max_grad_norm",
                    "checkpoint_every"):
            _check_positive(section, key, getattr(self, key), allow_zero=True)


@dataclasses.dataclass(frozen=True)
class HardnessLevel:
    step: int  # denoising steps left when the reverse chain's state is taken: 0 = fully denoised, hardest
    weight: float  # w_i of this level in the hardness-adaptive loss
    margin: float  # margin factor m_i: generated negatives are pushed below -(m_i * model.margin)

    def __post_init__(self) -> None:
        _check_positive("train.hardness_levels", "step", self.step, allow_zero=True)
        _check_positive("train.hardness_levels", "weight", self.weight, allow_zero=True)
        _check_positive("train.hardness_levels", "margin", self.margin, allow_zero=True)


@dataclasses.dataclass(frozen=True)
class ReverseChain:
    """How the reverse chain walks from T to the kept steps (dhns.diffusion.schedule runs it).

    stride: the most steps one denoiser call may cover; 1 is the full DDPM chain, 0 jumps straight from one
    kept step to the next (DDIM-style updates). eta: the strided chain's stochasticity, 1 = DDPM's posterior
    variance for each jump, 0 = deterministic.
    """

    stride: int = 1
    eta: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.stride, bool) or not isinstance(self.stride, int) or self.stride < 0:
            raise ParamsError(f"params chain stride: expected an integer >= 0 (0 = only the kept steps), got {self.stride!r}")
        if not 0.0 <= self.eta <= 1.0:
            raise ParamsError(f"params chain eta: expected a number in [0, 1], got {self.eta!r}")

    @property
    def is_full(self) -> bool:
        """Every DDPM step: run in DDPM's own form, so runs from before strided chains are bit-identical."""
        return self.stride == 1 and self.eta == 1.0

    @property
    def label(self) -> str:
        return "full" if self.is_full else f"stride_{self.stride}_eta_{self.eta:g}"


FULL_CHAIN = ReverseChain()
STRIDED_CHAIN = ReverseChain(stride=0, eta=1.0)  # only the steps the hardness levels keep


@dataclasses.dataclass(frozen=True)
class TrainConfig(PretrainConfig):
    """NTAT: continue from the pretrained model; `dhns` adds mu * the hardness-adaptive loss on generated negatives."""

    protocol: str  # PROTOCOLS: finetune (from the pretrained model) | joint (from scratch, the paper's)
    sampler: str  # a pretrain sampler, or dhns / bernoulli_dhns (self-adversarial base + generated negatives)
    generated_negatives: str  # none | dhns; "" = the sampler's
    hard_loss_weight: float  # mu
    hard_loss: str  # reference (the authors' NTAT loss) | per_view (each semantic level apart)
    distmult_hard_margin: float  # delta: DistMult's stand-in for gamma in the hard margins; 0 = reference
    hardness_levels: tuple[HardnessLevel, ...]
    joint_generator: bool  # also update the generator each batch, with its own optimizer
    generator_lr: float  # for joint_generator
    diffusion_loss: str  # for joint_generator
    chain_stride: int  # reverse chain: 0 = only the kept steps; 1 = every DDPM step; n = jumps of at most n steps
    chain_eta: float  # the strided chain's noise: 1 = DDPM's posterior variance, 0 = deterministic

    def __post_init__(self) -> None:
        self._check_common("train", TRAIN_SAMPLER_NAMES)
        try:
            self.chain
        except ValueError as error:
            raise ParamsError(str(error).replace("params chain ", "params train.chain_")) from None
        _check_choice("train", "protocol", self.protocol, PROTOCOLS)
        _check_choice("train", "generated_negatives", self.generated_negatives, (FROM_SAMPLER,) + GENERATED_NEGATIVES)
        _check_positive("train", "hard_loss_weight", self.hard_loss_weight, allow_zero=True)
        _check_positive("train", "distmult_hard_margin", self.distmult_hard_margin, allow_zero=True)
        _check_choice("train", "hard_loss", self.hard_loss, HARD_LOSS_FORMS)
        _check_positive("train", "generator_lr", self.generator_lr)
        _check_choice("train", "diffusion_loss", self.diffusion_loss, DIFFUSION_LOSSES)
        if self.negatives.uses_generator and not self.hardness_levels:
            raise ParamsError("params train.hardness_levels: generated negatives need at least one level")

    @property
    def negatives(self) -> NegativeScheme:
        return negative_scheme(self.sampler, self.corruption, self.weighting, self.generated_negatives, self.cache)

    @property
    def chain(self) -> ReverseChain:
        return ReverseChain(self.chain_stride, self.chain_eta)

    @property
    def protocol_rules(self) -> ProtocolRules:
        return PROTOCOL_RULES[self.protocol]


@dataclasses.dataclass(frozen=True)
class DiffusionConfig:
    num_diffusion_steps: int  # T
    beta_start: float  # linear beta schedule from beta_start to beta_end
    beta_end: float
    loss: str  # noise-prediction error: l1 (the reference) | l2
    hidden_multiplier: int  # denoiser MLP width = hidden_multiplier * entity width
    num_epochs: int
    batch_size: int
    generator_lr: float
    report_steps: tuple[int, ...]  # hardness levels (steps left) measured in metrics
    report_triples: int  # validation triples used for the hardness report
    report_chains: tuple[ReverseChain, ...]  # reverse chains measured side by side
    max_grad_norm: float  # clip the denoisers' gradient norm to this; 0 = no clipping
    checkpoint_every: int  # epochs between resumable checkpoints in checkpoints/diffusion; 0 = none
    precision: str  # fp32 | tf32 | bf16 for the denoisers' training steps

    def __post_init__(self) -> None:
        _check_choice("diffusion", "loss", self.loss, DIFFUSION_LOSSES)
        _check_choice("diffusion", "precision", self.precision, PRECISIONS)
        for key in ("max_grad_norm", "checkpoint_every"):
            _check_positive("diffusion", key, getattr(self, key), allow_zero=True)
        for key in ("num_diffusion_steps", "beta_start", "beta_end", "hidden_multiplier", "num_epochs",
                    "batch_size", "generator_lr", "report_triples"):
            _check_positive("diffusion", key, getattr(self, key))
        if not self.beta_start <= self.beta_end < 1:
            raise ParamsError(f"params diffusion: need beta_start <= beta_end < 1, got {self.beta_start}, {self.beta_end}")
        labels = [chain.label for chain in self.report_chains]
        if not labels or len(set(labels)) != len(labels):
            raise ParamsError(f"params diffusion.report_chains: need at least one chain, each once, got {labels}")
        bad = [step for step in self.report_steps if not 0 <= step <= self.num_diffusion_steps]
        if bad or not self.report_steps:
            raise ParamsError(f"params diffusion.report_steps: need a non-empty list within [0, {self.num_diffusion_steps}], got {list(self.report_steps)}")


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    batch_size: int  # queries scored against all entities at once; bounds memory
    tie_policy: str  # headline rank and model-selection policy

    def __post_init__(self) -> None:
        _check_choice("evaluate", "tie_policy", self.tie_policy, TIE_POLICIES)
        _check_positive("evaluate", "batch_size", self.batch_size)


@dataclasses.dataclass(frozen=True)
class Params:
    seed: int
    device: str  # auto | cpu | cuda | cuda:N | mps
    data: DataConfig
    features: FeaturesConfig
    model: ModelConfig
    pretrain: PretrainConfig
    diffusion: DiffusionConfig
    train: TrainConfig
    evaluate: EvaluateConfig

    def __post_init__(self) -> None:
        # checked here, not when a stage picks its device, so a typo fails before any stage starts
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise ParamsError(f"params device: {self.device!r} is not one of auto, cpu, cuda, cuda:N, mps")


def _coerce(section: str, key: str, value: Any, annotation: Any) -> Any:
    """Accept YAML's natural types for a field; reject anything that would change meaning."""
    if annotation is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"params {section}{key}: expected true/false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"params {section}{key}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"params {section}{key}: expected a number, got {value!r}")
        if not math.isfinite(value):  # YAML's .nan / .inf would slip past every range check
            raise ParamsError(f"params {section}{key}: expected a finite number, got {value!r}")
        return float(value)
    if dataclasses.is_dataclass(annotation):
        return from_mapping(annotation, value, f"{section}{key}")
    if typing.get_origin(annotation) is tuple:
        item_type = typing.get_args(annotation)[0]
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"params {section}{key}: expected a list, got {value!r}")
        return tuple(_coerce_item(section, key, index, item, item_type) for index, item in enumerate(value))
    if annotation is str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ParamsError(f"params {section}{key}: expected a string, got {value!r}")
        return value
    return value


def _coerce_item(section: str, key: str, index: int, value: Any, annotation: Any) -> Any:
    """One list entry; its errors name the entry (`train.hardness_levels[2].margin`), since lists can be long."""
    try:
        return _coerce(section, key, value, annotation)
    except ValueError as error:
        where = f"params {section}{key}"
        raise ParamsError(str(error).replace(where, f"{where}[{index}]", 1)) from None


def from_mapping(cls: type[T], mapping: Mapping[str, Any] | None, section: str = "") -> T:
    """Build dataclass `cls` from a YAML mapping, recursing into nested sections."""
    mapping = {} if mapping is None else mapping
    if not isinstance(mapping, Mapping):
        raise ParamsError(f"params {section or 'file'}: expected a mapping, got {mapping!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - fields)
    prefix = f"{section}." if section else ""
    if unknown:
        raise ParamsError(f"params {prefix.rstrip('.') or 'file'}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    required = {f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    missing = sorted(required - set(mapping))
    if missing:
        raise ParamsError(f"params {prefix.rstrip('.') or 'file'}: missing key(s) {missing}")
    values = {}
    for key, value in mapping.items():
        annotation = hints[key]
        if dataclasses.is_dataclass(annotation):
            values[key] = from_mapping(annotation, value, prefix + key)
        else:
            values[key] = _coerce(prefix, key, value, annotation)
    return cls(**values)


SCORER_SECTIONS: dict[str, type] = {"model": ModelConfig, "pretrain": PretrainConfig, "train": TrainConfig}


def apply_scorer_settings(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge `scorers.<model.name>` into the model, pretrain and train sections; drop the other scorers'.

    Settings chosen on validation differ by scorer (a TransE learning rate is wrong for DistMult), so they
    live under `scorers.<name>.<section>` and `-S model.name=distmult` alone switches all of them. A key
    also set in the stage's own section wins (that is how `-S pretrain.kgc_lr=...` overrides one value for
    whichever scorer runs). Each hard-loss form has its own mu, so `scorers.<name>.train.<form>` (form:
    reference | per_view) holds settings that apply only while that form is selected: `-S
    train.hard_loss=per_view` alone then trains at the per-view form's chosen mu. Every scorer's settings
    are validated, not only the selected one's.
    """
    merged = dict(raw or {})
    scorers = merged.pop("scorers", None) or {}
    if not isinstance(scorers, Mapping):
        raise ParamsError(f"params scorers: expected a mapping of scorer name to settings, got {scorers!r}")
    for name, settings in scorers.items():
        _check_choice("scorers", "<name>", name, MODEL_NAMES)
        settings = settings or {}
        if not isinstance(settings, Mapping) or not set(settings) <= set(SCORER_SECTIONS) | {DATASET_BLOCK}:
            raise ParamsError(f"params scorers.{name}: expected sections among {sorted(SCORER_SECTIONS)} and "
                              f"{DATASET_BLOCK}, got {settings!r}")
        _check_dataset_blocks(name, settings.get(DATASET_BLOCK))
    resolved = dict(merged)
    model = merged.get("model") or {}
    name = model.get("name") if isinstance(model, Mapping) else None  # none: the complete check names it
    data = merged.get("data") or {}
    dataset = data.get("dataset") if isinstance(data, Mapping) else None
    for section, values in for_dataset(scorers.get(name) or {}, dataset).items():
        own = merged.get(section) or {}
        if not isinstance(own, Mapping):
            raise ParamsError(f"params {section}: expected a mapping, got {own!r}")
        if section == "train":
            plain = _train_preset(values or {}, own)
        else:
            plain = dict(values or {})
        resolved[section] = {**plain, **own}
    for name, settings in scorers.items():  # each checked on top of the selected scorer's sections
        for label, sections in _preset_layers(name, settings or {}):
            for section, values in sections.items():
                _validate_preset(label, section, values or {}, resolved.get(section))
    return resolved


def _preset_layers(name: str, settings: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, sections) of a scorer's presets as they resolve: alone, then with each dataset's block merged in."""
    datasets = settings.get(DATASET_BLOCK) or {}
    layers = [(f"{name}.{DATASET_BLOCK}.{dataset}", for_dataset(settings, dataset)) for dataset in datasets]
    return [(name, for_dataset(settings, None))] + layers


DATASET_BLOCK = "datasets"  # scorers.<name>.datasets.<dataset>: settings chosen on that dataset's validation split


def for_dataset(settings: Mapping[str, Any], dataset: str | None) -> dict[str, Any]:
    """A scorer's sections with `datasets.<dataset>` merged in, key by key (a form or joint block only where it
    names a key): a learning rate or mu chosen on DB15K's validation split is DB15K's, not every benchmark's."""
    sections = {key: value for key, value in settings.items() if key != DATASET_BLOCK}
    return _merged(sections, ((settings.get(DATASET_BLOCK) or {}).get(dataset) or {}) if dataset else {})


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        inner = merged.get(key)
        merged[key] = _merged(inner, value) if isinstance(inner, Mapping) and isinstance(value, Mapping) else value
    return merged


def _check_dataset_blocks(name: str, blocks: Any) -> None:
    if blocks is None:
        return
    where = f"scorers.{name}.{DATASET_BLOCK}"
    if not isinstance(blocks, Mapping):
        raise ParamsError(f"params {where}: expected a mapping of dataset name to sections, got {blocks!r}")
    for dataset, sections in blocks.items():
        if not isinstance(sections, Mapping) or not set(sections) <= set(SCORER_SECTIONS):
            raise ParamsError(f"params {where}.{dataset}: expected sections among {sorted(SCORER_SECTIONS)}, "
                              f"got {sections!r}")


def _train_preset(values: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """A scorer's train preset for the selected protocol and hard-loss form, later layers winning: the plain
    keys, the form's block, then (under `protocol: joint`) the joint block's plain keys and its form's block."""
    plain, by_form, joint = _split_form_presets(values)
    protocol = own.get("protocol", plain.get("protocol"))
    joint_plain, joint_forms, _ = _split_form_presets(joint) if protocol == "joint" else ({}, {}, {})
    form = own.get("hard_loss", joint_plain.get("hard_loss", plain.get("hard_loss")))
    return {**plain, **by_form.get(form, {}), **joint_plain, **joint_forms.get(form, {})}


def _split_form_presets(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Mapping[str, Any]],
                                                            Mapping[str, Any]]:
    """A train preset's plain keys, its per-form blocks (`reference: {...}`, `per_view: {...}`) and its
    `joint: {...}` block (the joint protocol's settings, with per-form blocks of its own)."""
    blocks = HARD_LOSS_FORMS + ("joint",)
    plain = {key: value for key, value in values.items() if key not in blocks}
    return (plain, {key: value or {} for key, value in values.items() if key in HARD_LOSS_FORMS},
            values.get("joint") or {})


def _form_candidates(where: str, base: Mapping[str, Any], by_form: Mapping[str, Any]) -> list[tuple[str, dict]]:
    """(name, settings) of each per-form block on top of `base`, for validation; a malformed block is refused."""
    candidates = []
    for form, block in by_form.items():
        if not isinstance(block, Mapping) or "hard_loss" in block:
            raise ParamsError(f"params {where}.{form}: expected a mapping of train settings for the {form} form "
                             f"(without hard_loss), got {block!r}")
        candidates.append((f"{where}.{form}", {**base, **block, "hard_loss": form}))
    return candidates


def _validate_preset(name: str, section: str, values: Mapping[str, Any], base: Any) -> None:
    """Check a scorer's preset (each form and joint block too) as the section it would become: on top of
    `base`, the section as resolved for the selected scorer; where that is incomplete, each value alone."""
    if not isinstance(values, Mapping):
        raise ParamsError(f"params scorers.{name}.{section}: expected a mapping, got {values!r}")
    plain, by_form, joint = _split_form_presets(values) if section == "train" else (dict(values), {}, {})
    candidates = [(f"scorers.{name}.{section}", plain)] + _form_candidates(f"scorers.{name}.train", plain, by_form)
    if joint:
        where = f"scorers.{name}.train.joint"
        if not isinstance(joint, Mapping) or "protocol" in joint:
            raise ParamsError(f"params {where}: expected a mapping of train settings for the joint protocol "
                             f"(without protocol), got {joint!r}")
        joint_plain, joint_forms, nested = _split_form_presets(joint)
        if nested:
            raise ParamsError(f"params {where}: a joint block cannot hold another")
        joint_base = {**plain, **joint_plain, "protocol": "joint"}
        candidates += [(where, joint_base)] + _form_candidates(where, joint_base, joint_forms)
    cls = SCORER_SECTIONS[section]
    base = base if isinstance(base, Mapping) else {}
    required = {field.name for field in dataclasses.fields(cls)}
    for where, mapping in candidates:
        try:
            if required <= set(base) | set(mapping):
                from_mapping(cls, {**base, **mapping}, where)
            else:
                _check_values(cls, mapping, where)
        except ValueError as error:  # range checks name the plain section: say which preset it came from
            if _fails_alike(cls, base, section, error):
                continue  # the stage's own section is at fault: resolving it names that section
            raise ParamsError(str(error).replace(f"params {section}.", f"params {where}.", 1)) from None


def _fails_alike(cls: type, base: Mapping[str, Any], section: str, error: ValueError) -> bool:
    """Whether `base` alone fails with the same problem (a bad value of its own, not the preset's)."""
    try:
        from_mapping(cls, base, section)
    except ValueError as own:
        return str(own).split(":", 1)[-1] == str(error).split(":", 1)[-1]
    return False


def _check_values(cls: type, mapping: Mapping[str, Any], section: str) -> None:
    """Each value of a partial section: a known key of the type it must have (ranges need the whole section)."""
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(mapping) - set(hints))
    if unknown:
        raise ParamsError(f"params {section}: unknown key(s) {unknown}; allowed: {sorted(hints)}")
    for key, value in mapping.items():
        _coerce(f"{section}.", key, value, hints[key])


def load_params(path: str | Path = "params.yaml", *, overrides: Mapping[str, Any] | None = None) -> Params:
    """Read and validate the whole params file (each stage then uses only its own sections); a file that
    leaves any setting out is refused, naming it.

    `overrides` ({"model.name": "distmult", ...}) set values by dotted name before anything is resolved, as
    `dvc exp run -S` would: how the benchmark times another scorer under the same file.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except OSError as error:
        raise ParamsError(f"{path}: cannot read the params file ({error.strerror or error})") from None
    except yaml.YAMLError as error:  # its problem_mark says where: "line 12, column 3"
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ParamsError(f"{path}{where}: not valid YAML ({problem})") from None
    except UnicodeDecodeError as error:
        raise ParamsError(f"{path}: not UTF-8 text (byte {error.start}: {error.reason})") from None
    return resolve_params(with_overrides(raw, overrides or {}), str(path))


def with_overrides(raw: Any, overrides: Mapping[str, Any]) -> Any:
    """A copy of params data with each dotted key (`train.precision`, `scorers.transe.model.margin`) set."""
    if not overrides:
        return raw
    if raw is not None and not isinstance(raw, Mapping):
        return raw  # resolve_params names the problem
    result = copy.deepcopy(dict(raw or {}))
    for dotted, value in overrides.items():
        *sections, key = dotted.split(".")
        node = result
        for section in sections:
            child = node.get(section)
            if child is None:
                child = node[section] = {}
            if not isinstance(child, dict):
                raise ParamsError(f"params {dotted}: {section} is not a section")
            node = child
        node[key] = value
    return result


def resolve_params(raw: Any, source: str = "params.yaml") -> Params:
    """Params from a params file's YAML data (`source` names it in errors): the scorer's settings merged in,
    every value checked and every setting required (`load_params` and `dhns.tune` both come through here,
    so a tuning cell is refused exactly where a stage would be)."""
    if raw is not None and not isinstance(raw, Mapping):
        raise ParamsError(f"{source}: expected a mapping, got {raw!r}")
    merged = apply_scorer_settings(raw)
    unset = unset_settings(Params, merged)
    if unset:
        raise ParamsError(f"{source}: missing setting(s) {', '.join(unset)} (for model.name "
                          f"{(merged.get('model') or {}).get('name')!r}); every value a stage uses must be "
                          "in params.yaml, in its section or in scorers.<name>.<section>, so that DVC tracks it")
    return from_mapping(Params, merged)


def unset_settings(cls: type, mapping: Mapping[str, Any] | None, prefix: str = "") -> list[str]:
    """Dotted names of the fields `mapping` leaves to the dataclass defaults (sections recursively).

    A default in code is invisible to `dvc params diff` and to DVC's params tracking: a stage that used
    one would give a result no params file describes (DistMult's NTAT once ran at the dataclass's
    temperature 1.0 while its pretraining used 0.5). So the stages' params must set every field.
    """
    mapping = mapping if isinstance(mapping, Mapping) else {}
    hints = typing.get_type_hints(cls)
    unset = []
    for field in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[field.name]):
            unset += unset_settings(hints[field.name], mapping.get(field.name), f"{prefix}{field.name}.")
        elif field.name not in mapping:
            unset.append(prefix + field.name)
    return unset
