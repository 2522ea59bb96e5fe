"""`python -m dhns COMMAND`: questions for the pipeline's outputs, one subcommand each.

The stages stay in `stages/` under DVC; this entry point is for people reading the results. Each
subcommand is added by an `_add_<name>` function that registers its options and a handler
`(args) -> exit code`, so a new command touches only this file and its own library module.
Bad input (unknown names, missing stage outputs) exits with code 2 and a one-line message, no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from dhns import predict
from dhns.pipeline.paths import FEATURES_DIR, PREPARED_DIR

PROG = "python -m dhns"
EXIT_BAD_INPUT = 2  # argparse's code for usage errors; bad names and missing data are the same kind of mistake


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Query the outputs of the dhns pipeline.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_predict(commands)
    _add_evaluate(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: the command line) and run the chosen subcommand; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, OSError) as error:  # bad names, data or files: say what, not where in the code
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


# --------------------------------------------------------------------------------------------------
# predict


def _add_predict(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "predict",
        help="rank the answers to (head, relation, ?) or (?, relation, tail) with the trained model",
        description=(
            "Link prediction with the trained model: --head NAME predicts tails, --tail NAME predicts heads. "
            "Answers already known in train, valid or test are filtered out unless --no-filter. Names are "
            "matched exactly, else case-insensitively on the name or the entity's label."
        ),
    )
    side = parser.add_mutually_exclusive_group(required=True)
    side.add_argument("--head", metavar="NAME", help="the known head: predicts tails of (NAME, relation, ?)")
    side.add_argument("--tail", metavar="NAME", help="the known tail: predicts heads of (?, relation, NAME)")
    parser.add_argument("--relation", required=True, metavar="NAME", help="relation name (or its text)")
    parser.add_argument("--top-k", type=_positive_int, default=10, metavar="K", help="answers to show (default 10)")
    _add_model_options(parser)
    parser.add_argument("--no-filter", dest="filter_known", action="store_false",
                        help="keep known answers in the ranking (marked known:<split>)")
    own = parser.add_mutually_exclusive_group()
    own.add_argument("--exclude-self", dest="exclude_self", action="store_const", const=True, default=None,
                     help="drop the query's own entity from the answers (default: when train has no self-loop "
                          "for the relation)")
    own.add_argument("--keep-self", dest="exclude_self", action="store_const", const=False,
                     help="keep the query's own entity as a candidate (marked self)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of {rank, entity, score, id, mark}")
    parser.set_defaults(handler=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    model, graph = predict.load_for_prediction(args.model, args.prepared, args.features, args.device)
    target, given = ("tail", args.head) if args.head is not None else ("head", args.tail)
    entity_id = predict.resolve_entity(graph, given)
    relation_id = predict.resolve_relation(graph, args.relation)
    answer = predict.predict_link(model, graph, entity_id, relation_id, target, args.top_k, args.filter_known,
                                  args.exclude_self)
    if args.json:
        print(json.dumps(predict.answer_to_json(answer), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(predict.format_answer(answer))
    return 0


# --------------------------------------------------------------------------------------------------
# evaluate


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="filtered link prediction of any saved model (e.g. models/pretrain: the pretrain-only baseline)",
        description=(
            "The evaluate stage's computation for a model folder of your choice: filtered ranks of the "
            "split's triples in both directions under every tie policy. The evaluate stage itself scores "
            "models/train; this answers 'how good was the model before NTAT?' with models/pretrain."
        ),
    )
    _add_model_options(parser)
    parser.add_argument("--split", choices=("valid", "test"), action="append",
                        help="split to rank; repeat for both (default: valid and test)")
    parser.add_argument("--batch-size", type=_positive_int, default=256, metavar="N")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every metric as JSON to FILE")
    parser.set_defaults(handler=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    import torch

    from dhns.evaluation import build_filter_index, evaluate_link_prediction
    from dhns.io import write_json

    model, graph = predict.load_for_prediction(args.model, args.prepared, args.features, args.device)
    index = build_filter_index(graph.all_triples().to(model.device), graph.num_entities)
    results = {}
    with torch.inference_mode():
        for split in args.split or ("valid", "test"):
            results[split] = evaluate_link_prediction(model, getattr(graph, split).to(model.device), index,
                                                      batch_size=args.batch_size)
            for policy in ("realistic", "optimistic"):
                m = results[split]["both"][policy]
                print(f"{args.model} {split} ({policy} ties): mrr {m['mrr']:.4f} hits@1 {m['hits_at_1']:.4f} "
                      f"hits@3 {m['hits_at_3']:.4f} hits@10 {m['hits_at_10']:.4f} mean rank {m['mean_rank']:.1f}")
    if args.json:
        write_json(args.json, {"model": str(args.model), **results})
    return 0


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    """Where a command finds the model, the graph and the features, and where it runs: shared by every command."""
    parser.add_argument("--model", type=Path, default=predict.TRAINED_MODEL_DIR, metavar="DIR",
                        help=f"trained model folder (default {predict.TRAINED_MODEL_DIR})")
    parser.add_argument("--prepared", type=Path, default=PREPARED_DIR, metavar="DIR",
                        help=f"prepared graph folder (default {PREPARED_DIR})")
    parser.add_argument("--features", type=Path, default=FEATURES_DIR, metavar="DIR",
                        help=f"feature bundle folder, read only if the model fuses features (default {FEATURES_DIR})")
    parser.add_argument("--device", default="cpu", help="torch device, or 'auto' for CUDA when present (default cpu)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


if __name__ == "__main__":
    sys.exit(main())
