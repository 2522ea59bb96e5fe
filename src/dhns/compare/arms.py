"""The arms of the paired comparison: which negatives the train stage uses, with everything else equal.

Every arm of one (dataset, scorer, seed) starts from the same pretrained model (and, for DHNS, the same
generator trained on it): only `train.sampler` and, for DHNS, the form of its hard loss and the reverse
chain that generates its negatives differ (`<arm>_strided`: the strided chain, the generator unchanged). Each DHNS
form trains at its own mu, chosen on validation (`scorers.<name>.train.<form>` in params.yaml).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable, Mapping

from dhns.config import HARD_LOSS_FORMS, SAMPLER_PRESETS, NegativeScheme, negative_scheme, preset_of

CHAINS = {"full": (1, 1.0), "strided": (0, 1.0)}  # (stride, eta): every DDPM step | only the kept steps (4 calls, not 45)


@dataclass(frozen=True)
class Arm:
    """One arm as the decisions that make it, from which its name and its `-S` settings are both composed.

    `scheme` is the train stage's negative scheme; `form` and `chain` matter only where it generates
    negatives (the hard loss's form, the reverse chain). Names are `<preset>[_per_view][_strided]`, and
    `joint_<name>` under the joint protocol, so that cells of either protocol never share a file.
    """

    scheme: NegativeScheme
    form: str = "reference"  # HARD_LOSS_FORMS
    chain: str = "full"  # CHAINS
    protocol: str = "finetune"  # config.PROTOCOLS

    @property
    def generates(self) -> bool:
        return self.scheme.uses_generator

    @property
    def caches(self) -> bool:
        """Draws real hard negatives from a cache (NSCaching): the third comparator, not a classic sampler."""
        return self.scheme.cached

    @property
    def name(self) -> str:
        preset = preset_of(self.scheme)
        if preset is None:
            raise ValueError(f"train settings {self.scheme} are no arm of the comparison (no sampler preset names them)")
        name = preset
        if self.generates:
            name += "_per_view" if self.form == "per_view" else ""
            name += "_strided" if self.chain == "strided" else ""
        return PROTOCOL_PREFIXES[self.protocol] + name

    def settings(self) -> dict[str, str]:
        """What `dvc exp run -S` sets for this arm (strings, as on a command line)."""
        settings = {"train.sampler": str(preset_of(self.scheme)), "train.hard_loss": self.form}
        if self.generates:
            stride, eta = CHAINS[self.chain]
            settings |= {"train.chain_stride": str(stride), "train.chain_eta": str(eta)}
        if self.protocol != "finetune":
            settings["train.protocol"] = self.protocol
        return settings

    def own_base(self) -> "Arm":
        """The classic arm whose negatives and weights this arm's generated negatives are added to."""
        return Arm(NegativeScheme(self.scheme.corruption, self.scheme.weighting), protocol=self.protocol)

    def on_full_chain(self) -> "Arm":
        return dataclasses.replace(self, chain="full")

    def unprefixed(self) -> "Arm":
        return dataclasses.replace(self, protocol="finetune")


PROTOCOL_PREFIXES = {"finetune": "", "joint": "joint_"}


def _compose_arms() -> list[Arm]:
    """Every arm the comparison can run, in the tables' order: classic presets, then each DHNS preset in both
    forms on the full chain, then the same on the strided chain, then the cache presets."""
    classic = [Arm(scheme) for scheme in SAMPLER_PRESETS.values() if not scheme.uses_generator and not scheme.cached]
    generated = [scheme for scheme in SAMPLER_PRESETS.values() if scheme.uses_generator]
    full = [Arm(scheme, form) for scheme in generated for form in HARD_LOSS_FORMS]
    cached = [Arm(scheme) for scheme in SAMPLER_PRESETS.values() if scheme.cached and not scheme.uses_generator]
    return classic + full + [dataclasses.replace(arm, chain="strided") for arm in full] + cached


FINETUNE_ARMS: tuple[Arm, ...] = tuple(_compose_arms())
ARMS: dict[str, dict[str, str]] = {arm.name: arm.settings() for arm in FINETUNE_ARMS}
BY_NAME: dict[str, Arm] = {arm.name: arm for arm in FINETUNE_ARMS}
BASELINES = tuple(arm.name for arm in FINETUNE_ARMS if not arm.generates and not arm.caches)
CACHE_ARMS = tuple(arm.name for arm in FINETUNE_ARMS if arm.caches)  # DHNS's third comparator, listed once run
DHNS_ARMS = tuple(arm.name for arm in FINETUNE_ARMS if arm.generates)
GRID_ARMS = BASELINES + ("dhns", "dhns_per_view")  # `all`: the grid; the Bernoulli-sided DHNS arms on request
OPTIONAL_ARMS = tuple(arm for arm in ARMS if arm not in GRID_ARMS)  # listed in the tables only once they have cells
OWN_BASE = {arm.name: arm.own_base().name for arm in FINETUNE_ARMS if arm.generates}
FULL_CHAIN_ARM = {arm.name: arm.on_full_chain().name for arm in FINETUNE_ARMS if arm.chain == "strided"}
FORM_NAMES = {arm.name: "per-view form" if arm.form == "per_view" else "reference form"
              for arm in FINETUNE_ARMS if arm.generates}


@dataclass(frozen=True)
class Protocol:
    """How the arms were trained, and which of them make its grid.

    The paper's protocol (train.protocol: joint) runs every arm again from scratch. Its cells are filed as
    `joint_<arm>`, so they never overwrite a fine-tune cell; tabulated, the prefix is stripped and the same
    tables are drawn for each protocol from its own cells.
    """

    name: str  # train.protocol's value
    title: str  # how tables and the figure name it
    prefix: str  # of its cells' arm names
    grid_arms: tuple[str, ...]  # listed even while missing (unprefixed)
    forms: tuple[str, ...]  # its two DHNS forms as the grid runs them: the summary's and the figure's rows
    pairs: tuple[tuple[str, str], ...] = ()  # the (dataset, scorer) pairs of its grid, listed while missing; (): all

    def arm_names(self, cells: Iterable[Mapping]) -> list[dict]:
        """This protocol's cells, each with its arm's unprefixed name (the cells themselves are not changed)."""
        return [{**cell, "arm": arm_named(str(cell["arm"])).unprefixed().name} for cell in cells
                if protocol_of(str(cell["arm"])) is self]


FINETUNE = Protocol("finetune", "fine-tune", PROTOCOL_PREFIXES["finetune"], GRID_ARMS, ("dhns", "dhns_per_view"))
# Joint: both DHNS forms on the strided chain (the full chain as a check: joint_dhns, joint_dhns_per_view).
# Its grid: TransE on both MKG sets, RotatE and the authors' DistMult on MKG-Y, DB15K TransE as time allows.
JOINT = Protocol("joint", "joint from scratch", PROTOCOL_PREFIXES["joint"], BASELINES + ("dhns_strided", "dhns_per_view_strided"),
                 ("dhns_strided", "dhns_per_view_strided"),
                 (("MKG-Y", "transe"), ("MKG-W", "transe"), ("MKG-Y", "rotate"), ("MKG-Y", "distmult"),
                  ("DB15K", "transe")))
PROTOCOLS = (FINETUNE, JOINT)
JOINT_ARMS: dict[str, dict[str, str]] = {dataclasses.replace(arm, protocol=JOINT.name).name:
                                         dataclasses.replace(arm, protocol=JOINT.name).settings()
                                         for arm in FINETUNE_ARMS}
JOINT_GRID_ARMS = tuple(JOINT.prefix + name for name in JOINT.grid_arms)
RUNNABLE_ARMS = ARMS | JOINT_ARMS  # what `compare run` can run


ALL_ARMS: dict[str, Arm] = {arm.name: arm for base in FINETUNE_ARMS
                            for arm in (dataclasses.replace(base, protocol=protocol.name) for protocol in PROTOCOLS)}


def arm_named(name: str) -> Arm:
    """The arm a cell file's name stands for (the names `Arm.name` composes, and no others)."""
    if name not in ALL_ARMS:
        raise ValueError(f"{name!r} is no arm of the comparison (arms: {', '.join(ALL_ARMS)})")
    return ALL_ARMS[name]


def protocol_of(arm: str) -> Protocol:
    """The protocol a cell file's arm name belongs to."""
    return next(protocol for protocol in PROTOCOLS if protocol.name == arm_named(arm).protocol)


def arm_of(train: Mapping[str, object]) -> str:
    """The arm a resolved train section belongs to (the inverse of `Arm.settings`).

    Read from the negative scheme, not the sampler's name, so `-S train.corruption=bernoulli` on the dhns
    preset is the bernoulli_dhns arm. Cells written before the axes, the chains or the protocol existed hold
    less: the missing ones are what those runs used (uniform axes from the preset, the full chain, finetune).
    """
    scheme = negative_scheme(str(train["sampler"]), str(train.get("corruption", "")), str(train.get("weighting", "")),
                             str(train.get("generated_negatives", "")), str(train.get("cache", "")))
    chain_values = (int(train.get("chain_stride", 1)), float(train.get("chain_eta", 1.0)))
    chain = next((name for name, values in CHAINS.items() if values == chain_values), None)
    if scheme.uses_generator and chain is None:
        raise ValueError(f"train chain stride {chain_values[0]}, eta {chain_values[1]:g} is no arm of the comparison "
                         "(arms: the full chain, stride 1 and eta 1, or the strided one, stride 0 and eta 1)")
    form = str(train.get("hard_loss", "reference")) if scheme.uses_generator else "reference"
    protocol = str(train.get("protocol", "finetune"))
    return Arm(scheme, form, chain or "full", protocol).name


def parse_arms(text: str) -> list[str]:
    """`all` (the fine-tune grid's six arms), `joint` (the joint protocol's six), or names separated by spaces or
    commas; unknown names are an error listing the known ones."""
    names = [name for name in text.replace(",", " ").split() if name]
    if names == ["all"]:
        return list(GRID_ARMS)
    if names == ["joint"]:
        return list(JOINT_GRID_ARMS)
    unknown = [name for name in names if name not in RUNNABLE_ARMS]
    if unknown or not names:
        raise ValueError(f"unknown arm(s) {unknown or names}; known: all, joint, {', '.join(RUNNABLE_ARMS)}")
    return names
