"""`python -m dhns predict`: rankings agree with the model, known answers are filtered, bad input exits 2."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from configs import model_config
from dhns.__main__ import main
from dhns.data import KnowledgeGraph, write_prepared
from dhns.features.bundle import write_feature_bundle
from dhns.features.store import FeatureTable
from dhns.models.kgc import KGCModel, save_model

REPO = Path(__file__).resolve().parents[1]

ENTITIES = {  # name -> text ("Label: description" as in DB15K / MKG-W, or just the cleaned name)
    "Paris": "Paris: capital and largest city of France",
    "France": "France: republic in Western Europe with several overseas regions and territories",
    "Berlin": "Berlin: capital of Germany",
    "Germany": "Germany",
    "Europe": "Europe",
    "http://www.wikidata.org/entity/Q3820": "Libreville: capital of Gabon",
    "Gabon": "Gabon: country in Central Africa",
    "Springfield_IL": "Springfield: city in Illinois",
    "Springfield_MA": "Springfield: city in Massachusetts",
    "Rome": "Rome",
}
RELATIONS = ("capitalOf", "locatedIn")
NAMES = tuple(ENTITIES)
ID = {name: index for index, name in enumerate(NAMES)}
CAPITAL_OF, LOCATED_IN = 0, 1


def triples(*rows: tuple[str, int, str]) -> torch.Tensor:
    return torch.tensor([[ID[h], r, ID[t]] for h, r, t in rows], dtype=torch.int64).reshape(-1, 3)


def tiny_graph() -> KnowledgeGraph:
    """(Paris, locatedIn, ?) has two known tails in different splits; (?, capitalOf, France) one head."""
    return KnowledgeGraph(
        name="TINY",
        entity_names=NAMES,
        entity_texts=tuple(ENTITIES.values()),
        relation_names=RELATIONS,
        train=triples(("Paris", CAPITAL_OF, "France"), ("Berlin", CAPITAL_OF, "Germany"),
                      ("Paris", LOCATED_IN, "France"), ("France", LOCATED_IN, "Europe"),
                      ("http://www.wikidata.org/entity/Q3820", CAPITAL_OF, "Gabon")),
        valid=triples(("Berlin", LOCATED_IN, "Germany")),
        test=triples(("Paris", LOCATED_IN, "Europe")),
    )


def tiny_model(graph: KnowledgeGraph, features: dict | None = None) -> KGCModel:
    torch.manual_seed(0)
    config = model_config(name="distmult", embedding_dim=8, use_features=features is not None)
    return KGCModel(config, graph.num_entities, graph.num_relations, features).eval()


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, KGCModel]:
    """A folder laid out like the pipeline's outputs: models/train, data/prepared, no features."""
    graph = tiny_graph()
    write_prepared(graph, tmp_path / "data" / "prepared")
    model = tiny_model(graph)
    save_model(model, tmp_path / "models" / "train")
    return tmp_path, model


def paths(root: Path) -> list[str]:
    return ["--model", str(root / "models" / "train"), "--prepared", str(root / "data" / "prepared"),
            "--features", str(root / "data" / "features")]


def run_json(root: Path, capsys: pytest.CaptureFixture, *query: str) -> list[dict]:
    assert main(["predict", *query, "--json", *paths(root)]) == 0
    return json.loads(capsys.readouterr().out)


def expected_ranking(scores: torch.Tensor, removed: set[int]) -> list[int]:
    """Independent of the code under test: sort every unremoved entity by score, best first."""
    return sorted((i for i in range(len(scores)) if i not in removed), key=lambda i: -float(scores[i]))


def test_top_k_tails_match_the_models_ranking_with_known_tails_filtered(project, capsys) -> None:
    root, model = project
    rows = run_json(root, capsys, "--head", "Paris", "--relation", "locatedIn", "--top-k", "5")
    with torch.no_grad():
        scores = model.score_tails(torch.tensor([ID["Paris"]]), torch.tensor([LOCATED_IN]))[0]
    expected = expected_ranking(scores, {ID["France"], ID["Europe"], ID["Paris"]})[:5]  # known, and itself
    assert [row["entity"] for row in rows] == [NAMES[i] for i in expected]
    assert [row["rank"] for row in rows] == [1, 2, 3, 4, 5]
    assert [row["score"] for row in rows] == pytest.approx([float(scores[i]) for i in expected])
    assert [row["id"] for row in rows] == expected


def test_all_candidates_drop_known_answers_and_the_query_entity_when_train_has_no_self_loop(project, capsys) -> None:
    root, _ = project
    rows = run_json(root, capsys, "--head", "Paris", "--relation", "locatedIn", "--top-k", "100")
    names = [row["entity"] for row in rows]
    assert len(names) == len(NAMES) - 3
    assert "France" not in names and "Europe" not in names  # known in train and in test
    assert "Paris" not in names  # no (x, locatedIn, x) in train: the query entity is no answer


def test_keep_self_keeps_the_query_entity_marked_self(project, capsys) -> None:
    root, _ = project
    rows = run_json(root, capsys, "--head", "Paris", "--relation", "locatedIn", "--top-k", "100", "--keep-self")
    assert len(rows) == len(NAMES) - 2
    assert next(row for row in rows if row["entity"] == "Paris")["mark"] == "self"


def test_query_entity_kept_by_default_for_a_relation_with_self_loops_in_train(tmp_path, capsys) -> None:
    base = tiny_graph()
    graph = KnowledgeGraph(name=base.name, entity_names=base.entity_names, entity_texts=base.entity_texts,
                           relation_names=base.relation_names, valid=base.valid, test=base.test,
                           train=torch.cat([base.train, triples(("Rome", LOCATED_IN, "Rome"))]))
    write_prepared(graph, tmp_path / "data" / "prepared")
    save_model(tiny_model(graph), tmp_path / "models" / "train")
    rows = run_json(tmp_path, capsys, "--head", "Paris", "--relation", "locatedIn", "--top-k", "100")
    assert "Paris" in [row["entity"] for row in rows]
    rows = run_json(tmp_path, capsys, "--head", "Paris", "--relation", "locatedIn", "--top-k", "100", "--exclude-self")
    assert "Paris" not in [row["entity"] for row in rows]


def readme_predict_commands() -> list[list[str]]:
    """Every `python -m dhns predict ...` line of README.md, split as a shell would, without its comment."""
    commands = []
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("python -m dhns predict"):
            commands.append(shlex.split(line.strip(), comments=True)[3:])
    return commands


def test_every_readme_predict_command_runs_against_a_model_of_its_entities(tmp_path, capsys) -> None:
    """The README's queries name MKG-Y entities and relations; a tiny graph with those names (not Gabon: it is no MKG-Y entity) answers them."""
    names = ("Libreville", "Congo", "Brazzaville", "Colombo", "Sri_Lanka", "Gilles_Mbang_Ondo")
    relations = ("wasBornIn", "isLocatedIn", "hasCapital")
    index = {name: i for i, name in enumerate(names)}
    rows = [("Gilles_Mbang_Ondo", 0, "Libreville"), ("Libreville", 1, "Congo"), ("Brazzaville", 1, "Congo"),
            ("Sri_Lanka", 2, "Colombo")]
    train = torch.tensor([[index[h], r, index[t]] for h, r, t in rows])
    graph = KnowledgeGraph(name="MKG-Y", entity_names=names, entity_texts=tuple(n.replace("_", " ") for n in names),
                           relation_names=relations, train=train, valid=train[:1], test=train[1:2])
    write_prepared(graph, tmp_path / "data" / "prepared")
    save_model(tiny_model(graph), tmp_path / "models" / "train")
    commands = readme_predict_commands()
    assert len(commands) >= 4
    for command in commands:
        assert main([*command, *paths(tmp_path)]) == 0, command
        assert capsys.readouterr().out.strip()


def test_head_side_variant_ranks_heads(project, capsys) -> None:
    root, model = project
    rows = run_json(root, capsys, "--tail", "France", "--relation", "capitalOf", "--top-k", "3")
    with torch.no_grad():
        scores = model.score_heads(torch.tensor([CAPITAL_OF]), torch.tensor([ID["France"]]))[0]
    expected = expected_ranking(scores, {ID["Paris"]})[:3]
    assert [row["entity"] for row in rows] == [NAMES[i] for i in expected]
    assert [row["score"] for row in rows] == pytest.approx([float(scores[i]) for i in expected])


def test_no_filter_keeps_known_answers_and_marks_their_split(project, capsys) -> None:
    root, model = project
    rows = run_json(root, capsys, "--head", "Paris", "--relation", "locatedIn", "--top-k", "100", "--no-filter",
                    "--keep-self")
    assert len(rows) == len(NAMES)
    marks = {row["entity"]: row["mark"] for row in rows}
    assert marks["France"] == "known:train" and marks["Europe"] == "known:test" and marks["Berlin"] is None
    with torch.no_grad():
        scores = model.score_tails(torch.tensor([ID["Paris"]]), torch.tensor([LOCATED_IN]))[0]
    assert [row["id"] for row in rows] == expected_ranking(scores, set())


def test_table_shows_rank_name_description_score_and_known_count(project, capsys) -> None:
    root, _ = project
    assert main(["predict", "--head", "Paris", "--relation", "locatedIn", "--top-k", "10", *paths(root)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "TINY: (Paris, locatedIn, ?), top 7 tails"  # 10 less 2 known less Paris itself
    assert lines[1] == "(2 known tails filtered); Paris itself left out"
    assert lines[2].split() == ["rank", "entity", "description", "score", "mark"]
    assert lines[3].split()[0] == "1" and len(lines) == 3 + 7
    assert "Libreville: capital of Gabon" in out  # the label/description of a Wikidata-named entity
    assert "France: republic" not in out  # filtered
    assert "Springfield: city in Massachusetts" in out


def test_unfiltered_table_marks_known_answers_and_truncates_long_texts(project, capsys) -> None:
    root, _ = project
    query = ["predict", "--head", "Paris", "--relation", "locatedIn", "--top-k", "100", "--no-filter", "--keep-self"]
    assert main([*query, *paths(root)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1] == "(2 known tails not filtered; marked known:<split>)"
    france = next(line for line in out.splitlines() if line.split()[1] == "France")
    assert "France: republic in Western Europe" in france and france.rstrip().endswith("known:train")
    assert ENTITIES["France"] not in out and "...  " in france


def test_names_match_case_insensitively_and_by_label(project, capsys) -> None:
    root, _ = project
    by_name = run_json(root, capsys, "--head", "Paris", "--relation", "locatedIn")
    assert run_json(root, capsys, "--head", "  paris ", "--relation", "LOCATEDIN") == by_name
    assert run_json(root, capsys, "--head", "PARIS", "--relation", "located in") == by_name  # relation text
    by_id_name = run_json(root, capsys, "--head", "http://www.wikidata.org/entity/Q3820", "--relation", "capitalOf")
    assert run_json(root, capsys, "--head", "libreville", "--relation", "capitalOf") == by_id_name
    assert "Gabon" not in [row["entity"] for row in by_id_name]  # its known tail


def test_ambiguous_label_is_an_error_listing_the_exact_names(project, capsys) -> None:
    root, _ = project
    assert main(["predict", "--head", "springfield", "--relation", "locatedIn", *paths(root)]) == 2
    err = capsys.readouterr().err
    assert "ambiguous" in err and "matches 2 entities" in err and "'Springfield_IL'" in err and "'Springfield_MA'" in err
    assert "Traceback" not in err


def test_unknown_names_exit_2_with_close_matches(project, capsys) -> None:
    root, _ = project
    assert main(["predict", "--head", "Pariss", "--relation", "locatedIn", *paths(root)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "unknown entity 'Pariss' in TINY; close matches: 'Paris'" in captured.err
    assert main(["predict", "--head", "Paris", "--relation", "locatedAt", *paths(root)]) == 2
    assert "unknown relation 'locatedAt' in TINY; close matches: 'locatedIn'" in capsys.readouterr().err
    assert main(["predict", "--head", "Libreviile", "--relation", "capitalOf", *paths(root)]) == 2
    assert "'http://www.wikidata.org/entity/Q3820' (Libreville)" in capsys.readouterr().err
    assert main(["predict", "--head", "zzzz", "--relation", "capitalOf", *paths(root)]) == 2
    assert "no close matches" in capsys.readouterr().err


def test_missing_model_or_data_names_the_folder_and_the_stage(project, capsys) -> None:
    root, _ = project
    query = ["predict", "--head", "Paris", "--relation", "locatedIn"]
    missing_model = root / "models" / "nothing"
    assert main([*query, *paths(root), "--model", str(missing_model)]) == 2
    err = capsys.readouterr().err
    assert str(missing_model) in err and "dvc repro train" in err and "Traceback" not in err
    missing_data = root / "data" / "nothing"
    assert main([*query, *paths(root), "--prepared", str(missing_data)]) == 2
    err = capsys.readouterr().err
    assert str(missing_data) in err and "dvc repro prepare" in err


def test_model_trained_on_other_data_is_refused(project, capsys) -> None:
    root, _ = project
    other = tiny_graph()
    save_model(KGCModel(model_config(name="transe", embedding_dim=4, use_features=False), 3, 2), root / "other")
    assert main(["predict", "--head", "Paris", "--relation", "locatedIn", *paths(root), "--model", str(root / "other")]) == 2
    assert f"has {other.num_entities} and 2" in capsys.readouterr().err


def test_model_with_text_features_reads_the_bundle(tmp_path, capsys) -> None:
    graph = tiny_graph()
    write_prepared(graph, tmp_path / "data" / "prepared")
    torch.manual_seed(1)
    present = torch.tensor([True] * (graph.num_entities - 1) + [False])
    vectors = torch.randn(graph.num_entities, 4) * present[:, None]
    model = tiny_model(graph, {"text": (vectors, present)})
    save_model(model, tmp_path / "models" / "train")
    query = ["predict", "--tail", "Germany", "--relation", "capitalOf", *paths(tmp_path)]
    assert main(query) == 2
    assert "dvc repro features" in capsys.readouterr().err
    write_feature_bundle(tmp_path / "data" / "features", {"text": FeatureTable(vectors, present, "test")}, {})
    rows = run_json(tmp_path, capsys, *query[1:5])
    with torch.no_grad():
        scores = model.score_heads(torch.tensor([CAPITAL_OF]), torch.tensor([ID["Germany"]]))[0]
    assert [row["id"] for row in rows] == expected_ranking(scores, {ID["Berlin"], ID["Germany"]})[:10]


@pytest.mark.parametrize(
    "arguments",
    [
        ["--head", "Paris", "--tail", "France", "--relation", "capitalOf"],
        ["--relation", "capitalOf"],
        ["--head", "Paris"],
        ["--head", "Paris", "--relation", "capitalOf", "--top-k", "0"],
    ],
)
def test_argument_errors_exit_2(arguments, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", *arguments])
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_module_entry_point_uses_the_pipeline_folders_by_default(project) -> None:
    root, model = project
    env = dict(os.environ, HF_HUB_OFFLINE="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-m", "dhns", "predict", "--head", "Paris", "--relation", "locatedIn",
                             "--top-k", "3"], cwd=root, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    with torch.no_grad():
        scores = model.score_tails(torch.tensor([ID["Paris"]]), torch.tensor([LOCATED_IN]))[0]
    best = NAMES[expected_ranking(scores, {ID["France"], ID["Europe"], ID["Paris"]})[0]]
    assert result.stdout.splitlines()[1] == "(2 known tails filtered); Paris itself left out"
    assert result.stdout.splitlines()[3].split()[:2] == ["1", best]


def test_unavailable_or_unknown_device_exits_2(project, capsys) -> None:
    root, _ = project
    query = ["predict", "--head", "Paris", "--relation", "locatedIn", *paths(root)]
    assert main([*query, "--device", "tpu-please"]) == 2
    assert "'tpu-please' is not a torch device" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main([*query, "--device", "cuda"]) == 2
        assert "asks for CUDA but none is available" in capsys.readouterr().err


def test_evaluate_command_ranks_any_saved_model_with_the_filtered_protocol(project, capsys, tmp_path) -> None:
    """`python -m dhns evaluate`: the test triple (Paris, locatedIn, Europe) ranked by hand from the scores."""
    root, model = project
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--split", "test", "--json", str(out), *paths(root)]) == 0
    printed = capsys.readouterr().out
    assert "test (realistic ties): mrr" in printed and "test (optimistic ties): mrr" in printed
    with torch.no_grad():
        tails = model.score_tails(torch.tensor([ID["Paris"]]), torch.tensor([LOCATED_IN]))[0].tolist()
        heads = model.score_heads(torch.tensor([LOCATED_IN]), torch.tensor([ID["Europe"]]))[0].tolist()

    def realistic_rank(scores: list[float], true: int, filtered: set[int]) -> float:
        others = [s for i, s in enumerate(scores) if i != true and i not in filtered]
        better, tied = sum(s > scores[true] for s in others), sum(s == scores[true] for s in others)
        return 1 + better + tied / 2  # the mean of the optimistic and the pessimistic rank

    tail_rank = realistic_rank(tails, ID["Europe"], {ID["France"]})  # (Paris, locatedIn, France) is in train
    head_rank = realistic_rank(heads, ID["Paris"], {ID["France"]})  # (France, locatedIn, Europe) is in train
    result = json.loads(out.read_text())
    assert result["model"] == str(root / "models" / "train") and "valid" not in result
    assert result["test"]["both"]["realistic"]["mrr"] == pytest.approx((1 / tail_rank + 1 / head_rank) / 2)
