"""The stage layer: what every stage starts from, where it writes, and how a training stage runs.

Split by what a stage imports, so each stage's DVC deps stay narrow: `paths` (every output's path, no
imports; prepare and features read only it), `inputs` (params, device, graph and features of the modelling
stages, and the protocol's skip), `kgc` (the KGC training stages' lifecycle: the run, curves, summary;
pretrain and train), `starting_point` (what train starts from; train and tune only). The library below (`dhns.training`, `dhns.models`, ...) imports nothing
from here.
"""
