"""Tests for dhns.data: OpenKE reading and validation, split hygiene, parquet round trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from configs import data_config
from dhns.data import (
    DataFormatError,
    KnowledgeGraph,
    clean_entity_name,
    clean_relation_name,
    drop_leaked_triples,
    hold_out_validation,
    load_prepared,
    read_openke_benchmark,
    split_report,
    write_prepared,
)

RAW_DATA = Path(__file__).resolve().parents[1] / "data" / "raw"

# A tiny, valid benchmark. Ids are listed out of order on purpose; triple lines are `head tail relation`.
TINY: dict[str, str] = {
    "entity2id.txt": (
        "5\n"
        "<http://dbpedia.org/resource/Gilles_Mbang_Ondo> 0\n"
        "<http://dbpedia.org/resource/Libreville> 1\n"
        "<http://dbpedia.org/resource/Gabon>\t3\n"
        "<http://dbpedia.org/resource/Caf%C3%A9_de_Flore> 2\n"
        "AC/DC 4\n"
    ),
    "relation2id.txt": "3\nwasBornIn 0\n<http://www.w3.org/2000/01/rdf-schema#seeAlso> 1\nhasCapital 2\n",
    "train2id.txt": "4\n0 1 0\n3 1 2\n1 3 1\n4 2 1\n",
    "valid2id.txt": "2\n2 3 1\n4 0 1\n",
    "test2id.txt": "2\n0 3 1\n2 4 1\n",
    "entity2text.tsv": (
        "<http://dbpedia.org/resource/Gilles_Mbang_Ondo>\tGilles Mbang Ondo: Gabonese footballer\n"
        "<http://dbpedia.org/resource/Libreville>\tLibreville\n"
        "<http://dbpedia.org/resource/Caf%C3%A9_de_Flore>\tCafé de Flore: café in Paris\n"
        "<http://dbpedia.org/resource/Gabon>\tGabon: country in Central Africa\n"
        "AC/DC\tAC/DC: Australian rock band\n"
    ),
}


def write_benchmark(root: Path, overrides: dict[str, str | None] | None = None) -> Path:
    """Write TINY (with some files replaced, or removed when the override is None) into root/TINY."""
    raw = root / "TINY"
    raw.mkdir(parents=True, exist_ok=True)
    files: dict[str, str | None] = {**TINY, **(overrides or {})}
    for name, content in files.items():
        if content is not None:
            (raw / name).write_text(content, encoding="utf-8")
    return raw


def assert_same_graph(left: KnowledgeGraph, right: KnowledgeGraph) -> None:
    for field in dataclasses.fields(KnowledgeGraph):
        a, b = getattr(left, field.name), getattr(right, field.name)
        if isinstance(a, torch.Tensor):
            assert a.dtype == b.dtype == torch.int64, field.name
            assert torch.equal(a, b), field.name
        else:
            assert a == b, field.name


def assert_format_error(raw: Path, file: str, line: int | None, *problem: str) -> str:
    """Reading raw must fail, naming the file (by path), the 1-based line and the problem."""
    with pytest.raises(DataFormatError) as caught:
        read_openke_benchmark(raw)
    message = str(caught.value)
    assert str(raw / file) in message, message
    if line is not None:
        assert f"line {line}:" in message, message
    for fragment in problem:
        assert fragment in message, message
    return message


Rows = list[list[int]]


def as_tensor(rows: Rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.int64).reshape(-1, 3)


def graph(train: Rows, valid: Rows, test: Rows, entities: int, relations: int) -> KnowledgeGraph:
    """A KnowledgeGraph from (head, relation, tail) lists, for the hygiene tests."""
    names = tuple(f"e{i}" for i in range(entities))
    return KnowledgeGraph(
        name="hand",
        entity_names=names,
        entity_texts=names,
        relation_names=tuple(f"r{i}" for i in range(relations)),
        train=as_tensor(train),
        valid=as_tensor(valid),
        test=as_tensor(test),
    )


# --------------------------------------------------------------------------------------------------
# Reading a valid benchmark


def test_read_tiny_benchmark_reorders_columns_and_maps_ids(tmp_path: Path) -> None:
    kg = read_openke_benchmark(write_benchmark(tmp_path))
    assert kg.name == "TINY"
    assert (kg.num_entities, kg.num_relations) == (5, 3)
    assert kg.entity_names[2] == "<http://dbpedia.org/resource/Caf%C3%A9_de_Flore>"
    assert kg.entity_names[3] == "<http://dbpedia.org/resource/Gabon>"
    assert kg.entity_texts[2] == "Café de Flore: café in Paris"
    assert kg.entity_texts[3] == "Gabon: country in Central Africa"
    # no relation2text.tsv: cleaned names, camelCase split
    assert kg.relation_texts == ("was born in", "see also", "has capital")
    # file line "3 1 2" is head 3, tail 1, relation 2
    assert kg.train.tolist() == [[0, 0, 1], [3, 2, 1], [1, 1, 3], [4, 1, 2]]
    assert kg.train.dtype == torch.int64
    assert kg.all_triples().shape == (8, 3)


def test_round_trip_read_write_load_is_exact(tmp_path: Path) -> None:
    kg = read_openke_benchmark(write_benchmark(tmp_path))
    out = tmp_path / "prepared"
    write_prepared(kg, out)
    assert sorted(p.name for p in out.iterdir()) == [
        "dataset.json", "entities.parquet", "relations.parquet", "test.parquet", "train.parquet", "valid.parquet",
    ]
    assert pq.read_schema(out / "train.parquet").names == ["head", "relation", "tail"]
    assert pq.read_schema(out / "entities.parquet").names == ["id", "name", "text"]
    assert_same_graph(load_prepared(out), kg)


def test_texts_fall_back_to_cleaned_names_and_relation2text_is_used(tmp_path: Path) -> None:
    relation_text = (
        "wasBornIn\tplace of birth\n"
        "<http://www.w3.org/2000/01/rdf-schema#seeAlso>\tsee also\n"
        "hasCapital\tcapital\n"
    )
    raw = write_benchmark(tmp_path, {"entity2text.tsv": None, "relation2text.tsv": relation_text})
    kg = read_openke_benchmark(raw)
    assert kg.entity_texts == ("Gilles Mbang Ondo", "Libreville", "Café de Flore", "Gabon", "AC/DC")
    assert kg.relation_texts == ("place of birth", "see also", "capital")


def test_trailing_whitespace_and_crlf_are_accepted(tmp_path: Path) -> None:
    raw = write_benchmark(tmp_path, {"train2id.txt": "4\r\n0 1 0\r\n3 1 2 \r\n1 3 1\r\n4 2 1\r\n\r\n  \n\n"})
    assert read_openke_benchmark(raw).train.tolist()[1] == [3, 2, 1]


# --------------------------------------------------------------------------------------------------
# Bad input: each case names file, line and problem


def test_truncated_file_count_header_mismatch(tmp_path: Path) -> None:
    raw = write_benchmark(tmp_path, {"train2id.txt": "4\n0 1 0\n3 1 2\n1 3 1\n"})
    assert_format_error(raw, "train2id.txt", 1, "count header says 4", "found 3")


def test_truncated_mid_line_reports_that_line(tmp_path: Path) -> None:
    lines = "".join(f"{i % 5} {(i + 1) % 5} {i % 3}\n" for i in range(15))
    raw = write_benchmark(tmp_path, {"train2id.txt": f"20\n{lines}4 0 1\n4 2"})
    assert_format_error(raw, "train2id.txt", 18, "expected 3 integer fields", "found 2", "'4 2'")


def test_non_integer_header(tmp_path: Path) -> None:
    raw = write_benchmark(tmp_path, {"valid2id.txt": "two\n2 3 1\n4 0 1\n"})
    assert_format_error(raw, "valid2id.txt", 1, "count header", "'two'")


def test_non_integer_field(tmp_path: Path) -> None:
    raw = write_benchmark(tmp_path, {"train2id.txt": "4\n0 1 0\n3 x12 2\n1 3 1\n4 2 1\n"})
    message = assert_format_error(raw, "train2id.txt", 3, "field 2 (tail) 'x12' is not an integer", "'3 x12 2'")
    assert "found 3" not in message, message  # three fields is right; the message must not suggest otherwise


def test_decimal_field_is_not_an_integer(tmp_path: Path) -> None:
    raw = write_benchmark(tmp_path, {"test2id.txt": "2\n0 3 1\n2 4 1.0\n"})
    assert_format_error(raw, "test2id.txt", 3, "field 3 (relation) '1.0' is not an integer", "'2 4 1.0'")
    raw = write_benchmark(tmp_path, {"test2id.txt": "2\n0 3 1\nh 4 1\n"})
    assert_format_error(raw, "test2id.txt", 3, "field 1 (head) 'h' is not an integer")


def test_two_fields(tmp_path: Path) -> None:
    raw = write_benchmark(tmp_path, {"test2id.txt": "2\n0 3\n2 4 1\n"})
    assert_format_error(raw, "test2id.txt", 2, "expected 3 integer fields", "found 2")


def test_four_fields(tmp_path: Path) -> None:
    # 2 + 4 fields: the total token count is right, only the per-line check catches it
    raw = write_benchmark(tmp_path, {"train2id.txt": "4\n0 1 0\n3 1\n1 3 1 2\n4 2 1\n"})
    assert_format_error(raw, "train2id.txt", 3, "found 2")
    raw = write_benchmark(tmp_path, {"train2id.txt": "4\n0 1 0\n3 1 2 0\n1 3 1\n4 2 1\n"})
    assert_format_error(raw, "train2id.txt", 3, "expected 3 integer fields", "found 4")


def test_entity_id_out_of_range(tmp_path: Path) -> None:
    raw = write_benchmark(tmp_path, {"valid2id.txt": "2\n2 3 1\n4 5 1\n"})
    assert_format_error(raw, "valid2id.txt", 3, "tail id 5", "[0, 5)")


def test_relation_id_out_of_range(tmp_path: Path) -> None:
    raw = write_benchmark(tmp_path, {"train2id.txt": "4\n0 1 0\n3 1 2\n1 3 3\n9 2 1\n"})
    # line 4 has the bad relation; line 5's bad head comes later
    assert_format_error(raw, "train2id.txt", 4, "relation id 3", "[0, 3)")


def test_negative_id(tmp_path: Path) -> None:
    raw = write_benchmark(tmp_path, {"test2id.txt": "2\n0 3 1\n-1 4 1\n"})
    assert_format_error(raw, "test2id.txt", 3, "head id -1", "[0, 5)")


def test_duplicate_entity_id_names_both_lines(tmp_path: Path) -> None:
    entities = "5\nA 0\nB 1\nC 2\nD 1\nE 4\n"
    raw = write_benchmark(tmp_path, {"entity2id.txt": entities, "entity2text.tsv": None})
    assert_format_error(raw, "entity2id.txt", 5, "duplicate id 1", "line 3")


def test_duplicate_entity_name_names_both_lines(tmp_path: Path) -> None:
    entities = "5\nA 0\nB 1\nC 2\nA 3\nE 4\n"
    raw = write_benchmark(tmp_path, {"entity2id.txt": entities, "entity2text.tsv": None})
    assert_format_error(raw, "entity2id.txt", 5, "duplicate name 'A'", "line 2")


def test_entity_ids_must_cover_zero_to_n_minus_one(tmp_path: Path) -> None:
    entities = "5\nA 0\nB 1\nC 2\nD 3\nE 5\n"
    raw = write_benchmark(tmp_path, {"entity2id.txt": entities, "entity2text.tsv": None})
    assert_format_error(raw, "entity2id.txt", 6, "id 5", "[0, 5)")


def test_non_integer_relation_id(tmp_path: Path) -> None:
    raw = write_benchmark(tmp_path, {"relation2id.txt": "3\nwasBornIn 0\nseeAlso one\nhasCapital 2\n"})
    assert_format_error(raw, "relation2id.txt", 3, "integer", "'one'")


@pytest.mark.parametrize("missing", ["entity2id.txt", "relation2id.txt", "train2id.txt", "valid2id.txt", "test2id.txt"])
def test_missing_file(tmp_path: Path, missing: str) -> None:
    raw = write_benchmark(tmp_path, {missing: None})
    assert_format_error(raw, missing, None, "missing")


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_empty_split(tmp_path: Path, split: str) -> None:
    raw = write_benchmark(tmp_path, {f"{split}2id.txt": "0\n"})
    assert_format_error(raw, f"{split}2id.txt", 1, "the split is empty", "every split needs triples")


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_empty_file_has_no_count_header(tmp_path: Path, content: str) -> None:
    raw = write_benchmark(tmp_path, {"valid2id.txt": content})
    assert_format_error(raw, "valid2id.txt", 1, "file is empty", "count header")


def test_truncated_without_final_newline_reports_the_cut_line(tmp_path: Path) -> None:
    # the count promises 4 triples; the file stops in the middle of the 4th
    raw = write_benchmark(tmp_path, {"train2id.txt": "4\n0 1 0\n3 1 2\n1 3 1\n4 "})
    assert_format_error(raw, "train2id.txt", 5, "expected 3 integer fields", "found 1", "'4 '")


def test_blank_line_mid_file(tmp_path: Path) -> None:
    raw = write_benchmark(tmp_path, {"train2id.txt": "4\n0 1 0\n3 1 2\n\n1 3 1\n4 2 1\n"})
    assert_format_error(raw, "train2id.txt", 4, "blank line")


def test_blank_line_mid_id_file(tmp_path: Path) -> None:
    raw = write_benchmark(tmp_path, {"relation2id.txt": "3\nwasBornIn 0\n\nseeAlso 1\nhasCapital 2\n"})
    assert_format_error(raw, "relation2id.txt", 3, "blank line")


def test_entity_text_missing_an_entity(tmp_path: Path) -> None:
    text = TINY["entity2text.tsv"].replace("<http://dbpedia.org/resource/Libreville>\tLibreville\n", "")
    raw = write_benchmark(tmp_path, {"entity2text.tsv": text})
    assert_format_error(raw, "entity2text.tsv", None, "no line for 1 of 5", "<http://dbpedia.org/resource/Libreville>")


def test_entity_text_naming_an_unknown_entity(tmp_path: Path) -> None:
    raw = write_benchmark(tmp_path, {"entity2text.tsv": TINY["entity2text.tsv"] + "Nowhere\tNowhere\n"})
    assert_format_error(raw, "entity2text.tsv", 6, "unknown name 'Nowhere'", "entity2id.txt")


def test_entity_text_second_line_for_an_entity(tmp_path: Path) -> None:
    raw = write_benchmark(tmp_path, {"entity2text.tsv": TINY["entity2text.tsv"] + "AC/DC\tagain\n"})
    assert_format_error(raw, "entity2text.tsv", 6, "second line for 'AC/DC'", "line 5")


def test_entity_text_without_tab(tmp_path: Path) -> None:
    text = TINY["entity2text.tsv"].replace("AC/DC\tAC/DC", "AC/DC AC/DC")
    raw = write_benchmark(tmp_path, {"entity2text.tsv": text})
    assert_format_error(raw, "entity2text.tsv", 5, "2 tab-separated columns", "found 1")


def test_invalid_utf8_reports_line(tmp_path: Path) -> None:
    raw = write_benchmark(tmp_path)
    (raw / "entity2id.txt").write_bytes(b"5\nA 0\nB 1\n\xff 2\nD 3\nE 4\n")
    assert_format_error(raw, "entity2id.txt", 4, "UTF-8")


@pytest.mark.parametrize("file", ["entity2text.tsv", "train2id.txt", "entity2id.txt"])
@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_bom_is_named_as_utf16(tmp_path: Path, file: str, encoding: str) -> None:
    """Such a text file used to fail as "unknown name 'E\\x00n\\x00...'", far from its real problem."""
    raw = write_benchmark(tmp_path)
    (raw / file).write_bytes(TINY[file].encode(encoding))
    message = assert_format_error(raw, file, None, "looks like UTF-16 text (NUL bytes between characters)",
                                  "save it as UTF-8")
    assert "\\x00" not in message and "unknown name" not in message, message


@pytest.mark.parametrize(("encoding", "named"), [("utf-16", "UTF-16"), ("utf-32", "UTF-32"), ("utf-32-be", "UTF-32")])
def test_utf16_or_utf32_is_named_with_or_without_a_bom(tmp_path: Path, encoding: str, named: str) -> None:
    raw = write_benchmark(tmp_path)
    (raw / "valid2id.txt").write_bytes(TINY["valid2id.txt"].encode(encoding))
    message = assert_format_error(raw, "valid2id.txt", None, f"{named} text", "save it as UTF-8")
    assert "count header" not in message, message


def test_latin1_text_names_the_line_the_byte_and_the_likely_encoding(tmp_path: Path) -> None:
    raw = write_benchmark(tmp_path)
    (raw / "entity2text.tsv").write_bytes(TINY["entity2text.tsv"].encode("latin-1"))
    assert_format_error(raw, "entity2text.tsv", 3, "not valid UTF-8", "byte 0xE9", "Café de Flore: café in Paris'",
                        "Latin-1", "save it as UTF-8")


def test_a_nul_byte_in_utf8_text_names_its_line(tmp_path: Path) -> None:
    raw = write_benchmark(tmp_path)
    (raw / "relation2id.txt").write_bytes(b"3\nwasBornIn 0\nseeAlso\x00 1\nhasCapital 2\n")
    assert_format_error(raw, "relation2id.txt", 3, "NUL byte")


def big_train_file(newline: str, num_triples: int = 48_000) -> str:
    """A valid train2id.txt of about 280 KB over TINY's ids, with the given line ending."""
    lines = [str(num_triples)] + [f"{i % 5} {(i * 7 + 1) % 5} {i % 3}" for i in range(num_triples)]
    return newline.join(lines) + newline


@pytest.mark.parametrize("content", [big_train_file("\r\n"), "4\r\n0 1 0\r\n3 1 2\r\n1 3 1\r\n4 2 1\r"])
def test_crlf_with_or_without_final_line_break_is_accepted(tmp_path: Path, content: str) -> None:
    raw = write_benchmark(tmp_path, {"train2id.txt": content})
    lf = write_benchmark(tmp_path / "lf", {"train2id.txt": content.replace("\r\n", "\n").rstrip("\r") + "\n"})
    assert torch.equal(read_openke_benchmark(raw).train, read_openke_benchmark(lf).train)


def test_lone_cr_train_file_is_named_in_a_short_message(tmp_path: Path) -> None:
    content = big_train_file("\r")
    assert len(content) > 280_000
    raw = write_benchmark(tmp_path, {"train2id.txt": content})
    message = assert_format_error(
        raw, "train2id.txt", 1, "lines end in a lone carriage return (\\r)", "convert to \\n"
    )
    assert len(message) < 500, message


def test_lone_cr_entity_text_file_is_named(tmp_path: Path) -> None:
    raw = write_benchmark(tmp_path, {"entity2text.tsv": TINY["entity2text.tsv"].replace("\n", "\r")})
    message = assert_format_error(raw, "entity2text.tsv", 1, "lone carriage return (\\r)", "convert to \\n")
    assert len(message) < 500, message


def test_one_lone_cr_among_lf_lines_names_its_line(tmp_path: Path) -> None:
    raw = write_benchmark(tmp_path, {"valid2id.txt": "2\n2 3 1\r4 0 1\n"})
    assert_format_error(raw, "valid2id.txt", 2, "lone carriage return")


LONG = "9" * 150_000


@pytest.mark.parametrize(
    ("file", "content", "line", "problem"),
    [
        ("train2id.txt", f"4\n0 1 0\n3 1 x{LONG}\n1 3 1\n4 2 1\n", 3, "field 3 (relation)"),
        ("train2id.txt", f"4\n0 1 0\n3 1 {LONG}\n1 3 1\n4 2 1\n", 3, "field 3 (relation)"),
        ("train2id.txt", f"4\n0 1 0\n3 1 {LONG}\n1 3 1\n4 2 1\n", 3, "does not fit in 64 bits"),
        ("valid2id.txt", f"x{LONG}\n2 3 1\n4 0 1\n", 1, "count header"),
        ("entity2id.txt", f"5\nA 0\nB 1\nC{LONG}\nD 3\nE 4\n", 4, "expected 'name id'"),
        ("entity2id.txt", f"5\nA 0\nB 1\nC {LONG}\nD 3\nE 4\n", 4, "does not fit in 64 bits"),
        ("entity2text.tsv", TINY["entity2text.tsv"] + f"x{LONG}\n", 6, "2 tab-separated columns"),
    ],
)
def test_a_very_long_bad_line_is_quoted_as_a_short_excerpt(
    tmp_path: Path, file: str, content: str, line: int, problem: str
) -> None:
    overrides = {file: content, "entity2text.tsv": None} if file == "entity2id.txt" else {file: content}
    raw = write_benchmark(tmp_path, overrides)
    message = assert_format_error(raw, file, line, problem, "...", "characters)")
    assert len(message) < 500, message
    assert "9" * 90 in message and "9" * 120 not in message, message


# --------------------------------------------------------------------------------------------------
# Atomic output


def test_write_prepared_failing_midway_keeps_previous_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kg = read_openke_benchmark(write_benchmark(tmp_path))
    out = tmp_path / "prepared"
    write_prepared(kg, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    real_write_table = pq.write_table
    calls = []

    def fail_on_third(*args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            raise OSError("disk full")
        return real_write_table(*args, **kwargs)

    monkeypatch.setattr(pq, "write_table", fail_on_third)
    smaller, _ = drop_leaked_triples(dataclasses.replace(kg, name="OTHER"))
    with pytest.raises(OSError, match="disk full"):
        write_prepared(smaller, out)
    assert len(calls) == 3
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind
    assert_same_graph(load_prepared(out), kg)


def test_load_prepared_rejects_missing_table(tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    write_prepared(read_openke_benchmark(write_benchmark(tmp_path)), out)
    (out / "valid.parquet").unlink()
    with pytest.raises(DataFormatError, match=r"valid\.parquet: required file is missing; run `dvc repro prepare`"):
        load_prepared(out)


def test_load_prepared_without_dataset_json_names_the_stage(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"dataset\.json: required file is missing; run `dvc repro prepare`"):
        load_prepared(tmp_path / "never_prepared")


def _prepared(tmp_path: Path) -> Path:
    out = tmp_path / "prepared"
    write_prepared(read_openke_benchmark(write_benchmark(tmp_path)), out)
    return out


def test_load_prepared_rejects_an_empty_split(tmp_path: Path) -> None:
    out = _prepared(tmp_path)
    pq.write_table(pq.read_table(out / "test.parquet").slice(0, 0), out / "test.parquet")
    with pytest.raises(DataFormatError, match=r"test\.parquet: the split is empty \(0 triples\)"):
        load_prepared(out)


def test_load_prepared_names_the_row_and_field_of_an_out_of_range_id(tmp_path: Path) -> None:
    out = _prepared(tmp_path)
    table = pq.read_table(out / "valid.parquet")
    relations = table.column("relation").to_pylist()
    relations[1] = 7  # 3 relations
    table = table.set_column(1, "relation", pa.array(relations, pa.int64()))
    pq.write_table(table, out / "valid.parquet")
    with pytest.raises(DataFormatError, match=r"valid\.parquet, row 1: relation id 7 is outside \[0, 3\)"):
        load_prepared(out)


def test_load_prepared_rejects_a_corrupt_table(tmp_path: Path) -> None:
    out = _prepared(tmp_path)
    data = (out / "entities.parquet").read_bytes()
    (out / "entities.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=r"entities\.parquet: not a readable parquet file"):
        load_prepared(out)


def test_write_prepared_refuses_an_empty_split_and_keeps_previous_output(tmp_path: Path) -> None:
    kg = read_openke_benchmark(write_benchmark(tmp_path))
    out = tmp_path / "prepared"
    write_prepared(kg, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    emptied = dataclasses.replace(kg, valid=kg.valid[:0])
    with pytest.raises(DataFormatError, match=r"prepared: not written, the valid split of TINY has no triples left"):
        write_prepared(emptied, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# --------------------------------------------------------------------------------------------------
# Split hygiene

# (head, relation, tail); 6 entities, 3 relations (relation 2 never used in train)
HAND_TRAIN = [[0, 0, 1], [1, 0, 2], [2, 1, 0], [3, 1, 3], [0, 0, 1]]  # one duplicate, one self-loop
HAND_VALID = [[0, 0, 1], [4, 0, 5], [4, 0, 5], [5, 1, 5], [1, 1, 0]]  # in train, in test (twice), self-loop, new
HAND_TEST = [[4, 0, 5], [1, 0, 2], [2, 2, 0]]  # in valid, in train, new with unseen relation


def test_split_report_counts_hand_built_case() -> None:
    report = split_report(graph(HAND_TRAIN, HAND_VALID, HAND_TEST, entities=6, relations=3))
    assert report["train"] == {
        "num_triples": 5, "num_distinct": 4, "num_duplicates": 1, "num_self_loops": 1, "num_with_id_unseen_in_train": 0,
    }
    assert report["valid"] == {
        "num_triples": 5, "num_distinct": 4, "num_duplicates": 1, "num_self_loops": 1, "num_with_id_unseen_in_train": 3,
    }
    assert report["test"] == {
        "num_triples": 3, "num_distinct": 3, "num_duplicates": 0, "num_self_loops": 0, "num_with_id_unseen_in_train": 2,
    }
    assert (report["valid_in_train"], report["test_in_train"], report["valid_in_test"]) == (1, 1, 1)
    assert (report["num_entities"], report["num_relations"]) == (6, 3)
    assert report["num_entities_unseen_in_train"] == 2  # entities 4 and 5
    assert report["num_relations_unseen_in_train"] == 1  # relation 2


def test_drop_leaked_triples_hand_built_case() -> None:
    kg = graph(HAND_TRAIN, HAND_VALID, HAND_TEST, entities=6, relations=3)
    cleaned, dropped = drop_leaked_triples(kg)
    assert torch.equal(cleaned.train, kg.train)
    assert cleaned.valid.tolist() == [[5, 1, 5], [1, 1, 0]]  # file order kept
    assert cleaned.test.tolist() == [[4, 0, 5], [2, 2, 0]]  # shared with valid: stays in test
    assert dropped["valid"] == {"before": 5, "duplicates": 1, "in_train": 1, "in_test": 1, "after": 2}
    assert dropped["test"] == {"before": 3, "duplicates": 0, "in_train": 1, "after": 2}
    report = split_report(cleaned)
    assert (report["valid_in_train"], report["test_in_train"], report["valid_in_test"]) == (0, 0, 0)
    assert report["valid"]["num_duplicates"] == report["test"]["num_duplicates"] == 0
    again, dropped_again = drop_leaked_triples(cleaned)
    assert dropped_again["valid"]["after"] == 2 and dropped_again["test"]["after"] == 2
    assert cleaned.relation_texts == kg.relation_texts


# --------------------------------------------------------------------------------------------------
# data.valid_from_train: validation held out of train

# 10 entities on two rings with two relations (every entity in 4 train triples), plus a duplicated triple.
RING_TRAIN = [[i, 0, (i + 1) % 10] for i in range(10)] + [[i, 1, (i + 3) % 10] for i in range(10)] + [[0, 1, 3]]
RING_VALID = [[0, 0, 5], [2, 1, 7]]  # known nowhere else
RING_TEST = [[0, 0, 2], [4, 1, 9]]


def triple_set(rows: torch.Tensor) -> set[tuple[int, ...]]:
    return {tuple(row) for row in rows.tolist()}


def ids_in(rows: set[tuple[int, ...]]) -> tuple[set[int], set[int]]:
    return {h for h, _, _ in rows} | {t for _, _, t in rows}, {r for _, r, _ in rows}


def test_valid_from_train_holds_out_n_train_triples_whose_ids_stay_in_train() -> None:
    kg = graph(RING_TRAIN, RING_VALID, RING_TEST, entities=10, relations=2)
    out, report = hold_out_validation(kg, 6, seed=0)
    held = [tuple(row) for row in out.valid[:6].tolist()]
    assert len(set(held)) == 6 and set(held) <= {tuple(row) for row in RING_TRAIN}
    remaining = triple_set(out.train)
    assert not remaining & set(held)  # every copy removed, the duplicated [0, 1, 3] included
    assert remaining | set(held) == {tuple(row) for row in RING_TRAIN}
    assert len(out.train) == len(RING_TRAIN) - 6 - (1 if (0, 1, 3) in held else 0)
    entities, relations = ids_in(remaining)
    held_entities, held_relations = ids_in(set(held))
    assert held_entities <= entities and held_relations <= relations
    assert torch.equal(out.test, kg.test)
    assert (report["source"], report["requested"], report["held_out"], report["shortfall"]) == ("valid_from_train", 6, 6, 0)
    assert report["num_triples"] == len(out.valid) == 8 and report["file_valid_triples"] == 2


def test_valid_from_train_keeps_file_valid_out_of_train_and_in_the_filter() -> None:
    valid = RING_VALID + [[0, 0, 2], [1, 0, 2], [0, 0, 5]]  # in test, in train, duplicate: already known elsewhere
    kg = graph(RING_TRAIN, valid, RING_TEST, entities=10, relations=2)
    out, report = hold_out_validation(kg, 4, seed=3)
    file_valid = {tuple(row) for row in valid}
    remaining, known = triple_set(out.train), triple_set(out.all_triples())
    assert not remaining & {tuple(row) for row in RING_VALID}
    assert file_valid <= known  # the filter still excludes every file-valid triple
    assert {tuple(row) for row in RING_TRAIN} | {tuple(row) for row in RING_TEST} <= known
    assert triple_set(out.valid) >= {tuple(row) for row in RING_VALID}
    assert not triple_set(out.valid) & triple_set(out.test)
    assert len(out.valid) == len(triple_set(out.valid))  # no duplicates
    assert report["file_valid_triples"] == 5
    # [1, 0, 2] is in train: in valid once if held out, else known through train; either way not kept twice
    assert report["file_valid_kept"] == 2 and len(out.valid) == 4 + 2


def test_valid_from_train_same_seed_same_split_other_seed_other_split() -> None:
    kg = graph(RING_TRAIN, RING_VALID, RING_TEST, entities=10, relations=2)
    first, first_report = hold_out_validation(kg, 6, seed=7)
    again, again_report = hold_out_validation(kg, 6, seed=7)
    assert_same_graph(first, again)
    assert first_report == again_report
    other, _ = hold_out_validation(kg, 6, seed=8)
    assert triple_set(other.valid) != triple_set(first.valid)
    assert triple_set(other.train) != triple_set(first.train)


def test_valid_from_train_never_takes_the_last_occurrence_of_an_entity_or_relation() -> None:
    # e10 only in [0, 0, 10]; r2 only in [1, 2, 2]; e11 only in its self-loop, listed twice
    train = RING_TRAIN + [[0, 0, 10], [1, 2, 2], [11, 1, 11], [11, 1, 11]]
    kg = graph(train, RING_VALID, RING_TEST, entities=12, relations=3)
    protected = {(0, 0, 10), (1, 2, 2), (11, 1, 11)}
    for seed in range(20):
        out, report = hold_out_validation(kg, len(train), seed=seed)
        held = triple_set(out.valid) - {tuple(row) for row in RING_VALID}
        assert not held & protected, seed
        assert protected <= triple_set(out.train), seed
        entities, relations = ids_in(triple_set(out.train))
        assert entities == set(range(12)) and relations == {0, 1, 2}, seed
        assert report["shortfall"] > 0


def test_valid_from_train_more_than_possible_holds_out_a_maximal_set_or_refuses() -> None:
    # each leaf 1..4 has two edges to hub 0: exactly one per leaf can go, whatever the order
    train = [[0, 0, leaf] for leaf in range(1, 5)] + [[leaf, 0, 0] for leaf in range(1, 5)]
    kg = graph(train, [[1, 0, 2]], [[2, 0, 3]], entities=5, relations=1)
    for seed in range(10):
        out, report = hold_out_validation(kg, 100, seed=seed)
        held = triple_set(out.valid) - {(1, 0, 2)}
        assert len(held) == 4 and {h if t == 0 else t for h, _, t in held} == {1, 2, 3, 4}
        assert (report["requested"], report["held_out"], report["shortfall"]) == (100, 4, 96)
    star = graph([[0, 0, leaf] for leaf in range(1, 5)], [[1, 0, 2]], [[2, 0, 3]], entities=5, relations=1)
    with pytest.raises(ValueError, match="no train triple"):
        hold_out_validation(star, 3, seed=0)


def test_valid_from_train_zero_is_off() -> None:
    kg = graph(RING_TRAIN, RING_VALID, RING_TEST, entities=10, relations=2)
    out, report = hold_out_validation(kg, 0, seed=0)
    assert out is kg
    assert report == {"source": "valid_file", "requested": 0, "num_triples": 2, "file_valid_triples": 2}
    with pytest.raises(ValueError, match=">= 0"):
        hold_out_validation(kg, -1, seed=0)


def test_large_vocabulary_key_fallback_gives_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Vocabularies whose h*R*E key would overflow int64 use dense row keys; the answers must not change."""
    import dhns.data.splits

    kg = graph(HAND_TRAIN, HAND_VALID, HAND_TEST, entities=6, relations=3)
    expected_report, (expected_graph, expected_dropped) = split_report(kg), drop_leaked_triples(kg)
    monkeypatch.setattr(dhns.data.splits, "_INT64_MAX", 10)  # 6 * 3 * 6 no longer "fits"
    assert split_report(kg) == expected_report
    cleaned, dropped = drop_leaked_triples(kg)
    assert dropped == expected_dropped
    assert_same_graph(cleaned, expected_graph)


def test_knowledge_graph_rejects_out_of_range_ids() -> None:
    with pytest.raises(ValueError, match="tail"):
        graph([[0, 0, 6]], [[0, 0, 1]], [[0, 0, 1]], entities=6, relations=3)
    with pytest.raises(ValueError, match="int64"):
        dataclasses.replace(graph(HAND_TRAIN, HAND_VALID, HAND_TEST, 6, 3), test=torch.zeros(2, 3, dtype=torch.int32))


# --------------------------------------------------------------------------------------------------
# Name cleaning


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("<http://dbpedia.org/resource/Gilles_Mbang_Ondo>", "Gilles Mbang Ondo"),
        ("Gilles_Mbang_Ondo", "Gilles Mbang Ondo"),  # YAGO
        ("<http://dbpedia.org/resource/Caf%C3%A9_de_Flore>", "Café de Flore"),
        ("<http://dbpedia.org/resource/AC%2FDC>", "AC/DC"),  # decoded after cutting the path
        ("AC/DC", "AC/DC"),  # a plain name is not a path
        ("Ride_On_(AC/DC_song)", "Ride On (AC/DC song)"),
        ("Q42", ""),
        ("http://www.wikidata.org/entity/Q42", ""),
    ],
)
def test_clean_entity_name(name: str, text: str) -> None:
    assert clean_entity_name(name) == text


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("wasBornIn", "was born in"),
        ("<http://www.w3.org/2000/01/rdf-schema#seeAlso>", "see also"),
        ("<http://dbpedia.org/ontology/birthPlace>", "birth place"),
        ("hasGDP", "has GDP"),
        ("http://www.wikidata.org/entity/P161", ""),
    ],
)
def test_clean_relation_name(name: str, text: str) -> None:
    assert clean_relation_name(name) == text


# --------------------------------------------------------------------------------------------------
# The real benchmarks (about 1 s; skipped only where data/raw is not checked out)

needs_raw_data = pytest.mark.skipif(not (RAW_DATA / "DB15K").is_dir(), reason=f"{RAW_DATA} not present")


@needs_raw_data
def test_real_db15k_matches_published_facts() -> None:
    kg = read_openke_benchmark(RAW_DATA / "DB15K")
    assert (kg.num_entities, kg.num_relations) == (12_842, 279)
    assert (len(kg.train), len(kg.valid), len(kg.test)) == (79_222, 9_904, 9_902)
    report = split_report(kg)
    assert report["valid"]["num_distinct"] == 7_481
    assert report["valid_in_train"] == 6_584
    assert report["valid_in_test"] == 824
    assert report["train"]["num_self_loops"] == 768
    assert report["test"]["num_self_loops"] == 90


@needs_raw_data
@pytest.mark.parametrize(
    ("name", "sizes"),
    [
        ("DB15K", (12_842, 279, 79_222, 9_904, 9_902)),
        ("MKG-W", (15_000, 169, 34_196, 4_276, 4_274)),
        ("MKG-Y", (15_000, 28, 21_310, 2_665, 2_663)),
    ],
)
def test_real_benchmarks_read_with_text_for_every_entity(name: str, sizes: tuple[int, ...]) -> None:
    kg = read_openke_benchmark(RAW_DATA / name)
    assert (kg.num_entities, kg.num_relations, len(kg.train), len(kg.valid), len(kg.test)) == sizes
    assert all(text.strip() for text in kg.entity_texts)
    assert all(text.strip() for text in kg.relation_texts)


def test_held_out_validation_only_where_the_file_split_is_too_small() -> None:
    """Defaults: DB15K's 73 cleaned validation triples get 3,000 held out; MKG-Y's 2,665 stay as they are."""

    config = data_config()
    assert config.held_out_validation_size(73) == 3000
    assert config.held_out_validation_size(999) == 3000
    assert config.held_out_validation_size(1000) == 0
    assert config.held_out_validation_size(2665) == 0
    assert data_config(valid_file_min=0).held_out_validation_size(0) == 0
    assert data_config(valid_from_train=500, valid_file_min=10**9).held_out_validation_size(4276) == 500


def test_prepare_keeps_the_file_validation_when_nothing_can_be_held_out(tmp_path) -> None:
    """The default asks for held-out validation on small splits; a graph that allows none still prepares."""
    import json
    import subprocess
    import sys

    import yaml

    repo = Path(__file__).resolve().parents[1]
    raw = tmp_path / "data" / "raw" / "STAR"
    raw.mkdir(parents=True)
    names = [f"e{i}" for i in range(6)]
    (raw / "entity2id.txt").write_text("6\n" + "".join(f"{n}\t{i}\n" for i, n in enumerate(names)))
    (raw / "relation2id.txt").write_text("1\nr\t0\n")
    star = [(0, t, 0) for t in range(1, 6)]  # every tail occurs once: no triple can leave train
    for split, rows in {"train": star[:3], "valid": star[3:4], "test": star[4:]}.items():
        (raw / f"{split}2id.txt").write_text(f"{len(rows)}\n" + "".join(f"{h} {t} {r}\n" for h, t, r in rows))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"]["dataset"] = "STAR"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run([sys.executable, str(repo / "stages" / "prepare.py")], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "keeping the file's" in result.stderr
    validation = json.loads((tmp_path / "metrics" / "data.json").read_text())["validation"]
    assert validation["source"] == "valid_file" and "held_out_impossible" in validation
