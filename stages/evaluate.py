"""Stage evaluate: filtered link prediction on valid and test with the NTAT stage's selected checkpoint."""

import logging
import sys
import time
from pathlib import Path

import torch

from dhns.evaluation import build_filter_index, categorize_relations, evaluate_link_prediction
from dhns.io import write_json
from dhns.models.kgc import load_model
from dhns.pipeline import load_stage_inputs


def main() -> None:
    inputs = load_stage_inputs()
    params, device, graph, features = inputs.params, inputs.device, inputs.graph, inputs.features
    model = load_model(Path("models/train"), features, device).eval()
    filter_index = build_filter_index(graph.all_triples().to(device), graph.num_entities)
    categories = categorize_relations(graph.train, graph.num_relations)  # 1-1 / 1-N / N-1 / N-N from train
    results = {}
    for split in ("valid", "test"):
        started = time.perf_counter()
        results[split] = evaluate_link_prediction(model, getattr(graph, split).to(device), filter_index,
                                                  batch_size=params.evaluate.batch_size, show_progress=True,
                                                  relation_categories=categories)
        results[split]["seconds"] = round(time.perf_counter() - started, 3)
        headline = results[split]["both"][params.evaluate.tie_policy]
        logging.info("%s: mrr %.4f hits@1 %.4f hits@10 %.4f amri %.4f (%s ranks)", split, headline["mrr"],
                     headline["hits_at_1"], headline["hits_at_10"],
                     headline["adjusted_arithmetic_mean_rank_index"], params.evaluate.tie_policy)
    write_json("metrics/eval.json", results)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    with torch.inference_mode():
        main()
