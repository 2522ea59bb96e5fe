"""The arms of the paired comparison: which negatives the train stage uses, with everything else equal.

Every arm of one (dataset, scorer, seed) starts from the same pretrained model (and, for DHNS, the same
generator trained on it): only `train.sampler` and, for DHNS, the form of its hard loss and the reverse
chain that generates its negatives differ (`<arm>_strided`: the strided chain, the generator unchanged). Each DHNS
form trains at its own mu, chosen on validation (`scorers.<name>.train.<form>` in params.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from dhns.config import negative_scheme, preset_of

ARMS: dict[str, dict[str, str]] = {
    "uniform": {"train.sampler": "uniform", "train.hard_loss": "reference"},
    "bernoulli": {"train.sampler": "bernoulli", "train.hard_loss": "reference"},
    "self_adversarial": {"train.sampler": "self_adversarial", "train.hard_loss": "reference"},
    "bernoulli_self_adversarial": {"train.sampler": "bernoulli_self_adversarial", "train.hard_loss": "reference"},
    "dhns": {"train.sampler": "dhns", "train.hard_loss": "reference"},
    "dhns_per_view": {"train.sampler": "dhns", "train.hard_loss": "per_view"},
    # DHNS on Bernoulli sides: does it add to the best classic base, not only to its own uniform one?
    "bernoulli_dhns": {"train.sampler": "bernoulli_dhns", "train.hard_loss": "reference"},
    "bernoulli_dhns_per_view": {"train.sampler": "bernoulli_dhns", "train.hard_loss": "per_view"},
}
FULL = {"train.chain_stride": "1", "train.chain_eta": "1.0"}  # every DDPM step (the chain of the first cells)
STRIDED = {"train.chain_stride": "0", "train.chain_eta": "1.0"}  # only the kept steps: 4 denoiser calls, not 45
for _name in [name for name, settings in ARMS.items() if settings["train.sampler"].endswith("dhns")]:
    ARMS[_name] = ARMS[_name] | FULL
    ARMS[f"{_name}_strided"] = ARMS[_name] | STRIDED  # the same arm with only the reverse chain changed
BASELINES = ("uniform", "bernoulli", "self_adversarial", "bernoulli_self_adversarial")
DHNS_ARMS = tuple(name for name in ARMS if ARMS[name]["train.sampler"].endswith("dhns"))
GRID_ARMS = BASELINES + ("dhns", "dhns_per_view")  # `all`: the grid; the Bernoulli-sided DHNS arms on request
OPTIONAL_ARMS = tuple(arm for arm in ARMS if arm not in GRID_ARMS)  # listed in the tables only once they have cells
OWN_BASE = {  # the classic sampler whose negatives and weights a DHNS arm adds its generated negatives to
    name: "bernoulli_self_adversarial" if name.startswith("bernoulli") else "self_adversarial" for name in DHNS_ARMS
}
FULL_CHAIN_ARM = {name: name.removesuffix("_strided") for name in DHNS_ARMS if name.endswith("_strided")}


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
        return [{**cell, "arm": cell["arm"].removeprefix(self.prefix)} for cell in cells
                if protocol_of(str(cell["arm"])) is self]


FINETUNE = Protocol("finetune", "fine-tune", "", GRID_ARMS, ("dhns", "dhns_per_view"))
# Joint: both DHNS forms on the strided chain (the full chain as a check: joint_dhns, joint_dhns_per_view).
# Its grid: TransE on both MKG sets, RotatE and the authors' DistMult on MKG-Y, DB15K TransE as time allows.
JOINT = Protocol("joint", "joint from scratch", "joint_", BASELINES + ("dhns_strided", "dhns_per_view_strided"),
                 ("dhns_strided", "dhns_per_view_strided"),
                 (("MKG-Y", "transe"), ("MKG-W", "transe"), ("MKG-Y", "rotate"), ("MKG-Y", "distmult"),
                  ("DB15K", "transe")))
PROTOCOLS = (FINETUNE, JOINT)
JOINT_ARMS: dict[str, dict[str, str]] = {JOINT.prefix + name: settings | {"train.protocol": JOINT.name}
                                         for name, settings in ARMS.items()}
JOINT_GRID_ARMS = tuple(JOINT.prefix + name for name in JOINT.grid_arms)
RUNNABLE_ARMS = ARMS | JOINT_ARMS  # what `compare run` can run
FORM_NAMES = {arm: "per-view form" if "per_view" in arm else "reference form" for arm in DHNS_ARMS}


def protocol_of(arm: str) -> Protocol:
    """The protocol a cell file's arm name belongs to."""
    return JOINT if arm.startswith(JOINT.prefix) else FINETUNE


def arm_of(train: Mapping[str, object]) -> str:
    """The arm a resolved train section belongs to (the inverse of ARMS).

    Read from the negative scheme, not the sampler's name, so `-S train.corruption=bernoulli` on the dhns
    preset is the bernoulli_dhns arm. Cells written before the axes existed hold the sampler alone. Under
    `train.protocol: joint` the arm is named `joint_<arm>`, so those cells never overwrite a fine-tune cell.
    """
    if train.get("protocol", FINETUNE.name) == JOINT.name:  # its own cells, never a fine-tune cell's file
        return JOINT.prefix + arm_of({**train, "protocol": FINETUNE.name})
    scheme = negative_scheme(str(train["sampler"]), str(train.get("corruption", "")), str(train.get("weighting", "")),
                             str(train.get("generated_negatives", "")))
    preset = preset_of(scheme)
    if preset is None:
        raise ValueError(f"train settings {scheme} are no arm of the comparison (arms: {', '.join(ARMS)})")
    if not scheme.uses_generator:
        return preset
    arm = preset if train.get("hard_loss", "reference") == "reference" else f"{preset}_per_view"
    chain = (int(train.get("chain_stride", 1)), float(train.get("chain_eta", 1.0)))  # cells before chains: full
    if chain == (1, 1.0):
        return arm
    if chain == (0, 1.0):
        return f"{arm}_strided"
    raise ValueError(f"train chain stride {chain[0]}, eta {chain[1]:g} is no arm of the comparison "
                     "(arms: the full chain, stride 1 and eta 1, or the strided one, stride 0 and eta 1)")


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
