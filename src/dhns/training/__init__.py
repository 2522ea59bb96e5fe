"""Every training loop and what they share, one module per concern.

kgc (the KGC loop with validation-based selection and early stopping, its losses, and a KGC stage's run),
ntat (NTAT's hard-negative objective and the one builder of a stage's negatives), diffusion (the DiffHEG
generator's trainer), checkpoint (resumable snapshots, the NaN guard) and step (precision, Adam, the
optimiser step and one pass over the data, shared by all loops). The package imports none of them, so a
stage depends on exactly the loops it runs.
"""
