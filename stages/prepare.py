"""Stage prepare: read and validate the raw benchmark, report split hygiene, write parquet tables."""

import logging

from dhns.config import ParamsError, load_params
from dhns.data import (
    drop_leaked_triples,
    hold_out_validation,
    read_openke_benchmark,
    split_report,
    write_prepared,
)
from dhns.io import write_json
from dhns.pipeline.paths import DATA_METRICS_FILE, PREPARED_DIR, RAW_DIR, raw_dir
from dhns.stage import run_stage


def main() -> None:
    params = load_params()
    raw = raw_dir(params.data.dataset)
    if not raw.is_dir():
        raise ParamsError(f"params data.dataset: no folder {raw} (available: "
                          f"{sorted(p.name for p in RAW_DIR.iterdir() if p.is_dir())})")
    graph = read_openke_benchmark(raw)  # a bad line: DataFormatError, which run_stage prints as one line
    report = {"dataset": params.data.dataset, "raw": split_report(graph)}
    if params.data.drop_leaked:
        graph, dropped = drop_leaked_triples(graph)
        report["dropped"] = dropped
        report["prepared"] = split_report(graph)
    size = params.data.held_out_validation_size(len(graph.valid))
    try:
        graph, report["validation"] = hold_out_validation(graph, size, params.data.valid_seed)
    except ValueError as error:  # e.g. a star graph: every train triple holds an entity's only occurrence
        logging.warning("data.%s; keeping the file's %d validation triples", error, len(graph.valid))
        graph, report["validation"] = hold_out_validation(graph, 0, params.data.valid_seed)
        report["validation"]["held_out_impossible"] = str(error)
    validation = report["validation"]
    if validation["source"] == "valid_from_train":
        report["prepared"] = split_report(graph)
        if validation["shortfall"]:
            logging.warning("data.valid_from_train=%d: only %d train triples can be held out without removing the "
                            "last train occurrence of an entity or relation", validation["requested"],
                            validation["held_out"])
    write_prepared(graph, PREPARED_DIR)
    write_json(DATA_METRICS_FILE, report)
    logging.info("prepared %s: %d entities, %d relations, %d/%d/%d triples", graph.name, graph.num_entities,
                 graph.num_relations, len(graph.train), len(graph.valid), len(graph.test))


if __name__ == "__main__":
    run_stage(main)
