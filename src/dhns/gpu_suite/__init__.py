"""Every check that needs a GPU, in one prepared call: benchmark, evaluation, stages, torchrun, CUDA tests.

Why one call: a GPU is lent to few tasks, for one command of at most 10 minutes and 15 minutes of device
time in all, on a bare machine with no network, no DVC and nothing of ours installed. So the whole round of
GPU checks is prepared here, on the CPU, and runs as one command there:

    python3 scripts/gpu_suite.py --device cuda --out /tmp/gpu-suite --archive $OUT/gpu-suite.tar.gz

(`python -m dhns.gpu_suite` is the same, where src/ is importable.)

Parts (run in this order, cheap correctness checks first, so a slow benchmark cannot crowd them out):
  5 cuda-tests  `pytest -m cuda` on the test files that carry the marker;
  3 stages      the stage scripts end to end on a tiny graph in a temp project (no DVC: `python stages/X.py`),
                and a SIGKILL mid-pretrain, a rerun, and the model bytes against the uninterrupted run;
  4 torchrun    pretrain and train under `torchrun --standalone --nproc-per-node=1`;
  2 eval        `python -m dhns.bench --stages none --eval` on MKG-Y and DB15K;
  1 bench       the bench's reference config (DistMult 1024 + DHNS) and RotatE 512 in fp32, tf32 and bf16.
Every command is a subprocess in its own process group with a deadline: a hang ends that command, the rest
of its part reports "timed out", and the next part still runs. `--budget` caps the whole run. summary.json
and summary.md (and the `--archive` tarball) are rewritten after every part, so a call cut short still
brings back what finished.

No DVC there: `dhns.training.kgc` imports `dhns.live`, which imports dvclive, which imports dvc. Where
dvclive is missing (or with --as-gpu-machine) the children get a stand-in `dvclive` that writes the files
the stages declare, and the packages the GPU machine lacks (dvc, open_clip, ...) refuse to import, so
nothing the suite calls can lean on them unseen.

CPU form: `--device cpu --tiny` shrinks every part (synthetic or sliced graphs, one timed batch, small
dims) to well under two minutes on two cores; tests/test_gpu_suite.py runs it, so the suite cannot rot.

Modules, one concern each: `cli` (options, entry point), `suite` (the parts in turn under the budget),
`registry` (which parts, their order and timeouts), `commands` (a part's subprocesses and deadlines),
`environment` (what the children import), `part_*` (each part's body), `report` and `archive` (what comes
back). No pipeline stage imports this package: it checks the stages from outside, as the device tool runs them.
This file imports nothing, so `python -m dhns.gpu_suite.<helper>` in a child stays cheap.
"""
