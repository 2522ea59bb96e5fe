"""Stage evaluate: filtered link prediction on valid and test with the NTAT stage's selected checkpoint.

metrics/eval.json holds the headline (both directions, every tie policy, seconds) and
metrics/eval_breakdowns.json the rest (per direction, per relation category, without self-loops, without
the triples whose entity or relation never occurs in training).
"""

import logging
import time

import torch

from dhns.evaluation import build_filter_index, categorize_relations, evaluate_link_prediction, split_headline
from dhns.io import write_json
from dhns.models.kgc import load_model
from dhns.pipeline.inputs import load_stage_inputs, stage_params
from dhns.pipeline.paths import EVAL_BREAKDOWNS_FILE, EVAL_FILE, model_dir
from dhns.stage import run_stage


def main() -> None:
    inputs = load_stage_inputs(stage_params())
    params, device, graph, features = inputs.params, inputs.device, inputs.graph, inputs.features
    model = load_model(model_dir("train"), features, device).eval()
    filter_index = build_filter_index(graph.all_triples().to(device), graph.num_entities)
    categories = categorize_relations(graph.train, graph.num_relations)  # 1-1 / 1-N / N-1 / N-N from train
    results = {}
    for split in ("valid", "test"):
        started = time.perf_counter()
        results[split] = evaluate_link_prediction(model, getattr(graph, split).to(device), filter_index,
                                                  batch_size=params.evaluate.batch_size, show_progress=True,
                                                  relation_categories=categories, train_triples=graph.train)
        results[split]["seconds"] = round(time.perf_counter() - started, 3)
        shown = results[split]["both"][params.evaluate.tie_policy]
        logging.info("%s: mrr %.4f hits@1 %.4f hits@10 %.4f amri %.4f (%s ranks)", split, shown["mrr"],
                     shown["hits_at_1"], shown["hits_at_10"],
                     shown["adjusted_arithmetic_mean_rank_index"], params.evaluate.tie_policy)
    headline, breakdowns = split_headline(results)
    write_json(EVAL_FILE, headline)
    write_json(EVAL_BREAKDOWNS_FILE, breakdowns)


if __name__ == "__main__":
    run_stage(torch.inference_mode()(main))
