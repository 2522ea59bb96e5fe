"""The comparison table from `dvc exp show --json`: grouping, seeds, mean and sample std."""

import math

from dhns.compare import comparison_table, experiment_runs


def exp_rev(name: str, sampler: str, seed: int, test_mrr: float, error: bool = False) -> dict:
    metrics = {"mrr": test_mrr, "hits_at_1": test_mrr / 2, "hits_at_3": test_mrr, "hits_at_10": 2 * test_mrr,
               "mean_rank": 100.0}
    data = {
        "params": {"params.yaml": {"data": {"seed": seed, "data": {"dataset": "MKG-Y"}, "model": {"name": "transe"},
                                             "train": {"sampler": sampler}}}},
        "metrics": {"metrics/eval.json": {"data": {"test": {"both": {"realistic": metrics}},
                                                   "valid": {"both": {"realistic": metrics}}}}},
    }
    return {"rev": name * 8, "name": name, "data": None if error else data, "error": {"msg": "x"} if error else None}


def test_table_pools_seeds_per_sampler_and_skips_workspace_and_failed_runs():
    payload = [
        {"rev": "workspace", "data": exp_rev("w", "dhns", 9, 0.9)["data"], "experiments": None},
        {"rev": "abc", "name": "main", "data": exp_rev("b", "dhns", 9, 0.9)["data"], "experiments": [
            {"name": "e1", "revs": [exp_rev("e1", "dhns", 0, 0.30)]},
            {"name": "e2", "revs": [exp_rev("e2", "dhns", 1, 0.34)]},
            {"name": "e3", "revs": [exp_rev("e3", "uniform", 0, 0.20)]},
            {"name": "e4", "revs": [exp_rev("e4", "uniform", 1, 0.0, error=True)]},
        ]},
    ]
    runs = list(experiment_runs(payload))
    assert sorted(run["name"] for run in runs) == ["e1", "e2", "e3"]
    table = comparison_table(runs).splitlines()
    assert table[0].startswith("| dataset | model | sampler | seeds | test mrr")
    dhns = next(line for line in table if "| dhns |" in line)
    std = math.sqrt(((0.30 - 0.32) ** 2 + (0.34 - 0.32) ** 2) / 1)
    assert f"0.3200 ± {std:.4f}" in dhns and "| 0,1 |" in dhns
    uniform = next(line for line in table if "| uniform |" in line)
    assert "| 0.2000 |" in uniform  # a single run has no spread to report
