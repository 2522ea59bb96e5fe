"""The docs stay honest: links resolve, figures equal their sources, the README stays short, no page is orphaned."""

from __future__ import annotations

import json
from pathlib import Path

from dhns.doc_figures import figure_mismatches, fix_page, main as figures_main, render_like
from dhns.doc_links import anchors, broken_links, slug, unreachable_pages

REPO = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# The repository's own docs.

def test_every_relative_link_and_image_in_the_docs_resolves():
    assert [str(link) for link in broken_links(REPO)] == []


def test_every_figure_link_equals_its_source():
    assert [str(mismatch) for mismatch in figure_mismatches(REPO)] == [], "run `python -m dhns.doc_figures --fix`"


def test_the_readme_is_short():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/"


def test_every_docs_page_is_reachable_from_the_readme():
    assert [str(page.relative_to(REPO)) for page in unreachable_pages(REPO)] == []


def test_the_readme_quotes_the_committed_headline_as_a_figure_link():
    """The default run's result is quoted once, from metrics/eval.json, not typed (it drifted four ways before)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert '(metrics/eval.json "test.both.realistic.mrr")' in readme


# The checkers catch what they exist to catch, on tiny trees made here.

def test_a_broken_link_a_broken_image_and_a_broken_anchor_are_reported(tmp_path):
    write(tmp_path / "docs" / "page.md", "# A page\n\n## Some heading: with punctuation\n")
    write(tmp_path / "README.md", "\n".join([
        "# Title",
        "[ok](docs/page.md) and [ok anchor](docs/page.md#some-heading-with-punctuation) [self](#title)",
        "[gone](docs/missing.md)",
        "![gone image](docs/images/missing.png)",
        "[bad anchor](docs/page.md#no-such-heading)",
        "[outside](../elsewhere/design.md)",
        "`[in code](docs/nowhere.md)` and [web](https://example.org/x.md)",
        "```",
        "[in a fence](docs/nowhere.md)",
        "```",
    ]) + "\n")
    found = {(link.line, link.target, link.problem) for link in broken_links(tmp_path)}
    assert found == {
        (3, "docs/missing.md", "no such file"),
        (4, "docs/images/missing.png", "no such file"),
        (5, "docs/page.md#no-such-heading", "no heading #no-such-heading in page.md"),
        (6, "../elsewhere/design.md", "points outside the repository"),
    }


def test_headings_slug_as_github_does_with_repeats_numbered(tmp_path):
    assert slug("MKG-Y, transe (fine-tune)") == "mkg-y-transe-fine-tune"
    assert slug("The paper's protocol (`train.protocol: joint`): trained from scratch") == \
        "the-papers-protocol-trainprotocol-joint-trained-from-scratch"
    page = write(tmp_path / "p.md", "# Notes\n## Notes\n```\n# not a heading\n```\n")
    assert anchors(page) == {"notes", "notes-1"}


def test_a_page_no_link_reaches_is_reported(tmp_path):
    write(tmp_path / "README.md", "[a](docs/a.md)\n")
    write(tmp_path / "docs" / "a.md", "[b](sub/b.md)\n")
    write(tmp_path / "docs" / "sub" / "b.md", "back to [the start](../../README.md)\n")
    write(tmp_path / "docs" / "orphan.md", "nobody links here\n")
    assert unreachable_pages(tmp_path) == [tmp_path / "docs" / "orphan.md"]


def figure_tree(tmp_path: Path, shown: str, key: str = "test.mrr") -> Path:
    write(tmp_path / "metrics" / "eval.json", json.dumps({"test": {"mrr": 0.36924, "count": 21310,
                                                                    "rows": [{"share": 0.005129}]}}))
    write(tmp_path / "docs" / "page.md", f'MRR [{shown}](../metrics/eval.json "{key}") on test.\n')
    return write(tmp_path / "README.md", "[page](docs/page.md)\n")


def test_a_figure_that_differs_from_its_source_is_reported_with_file_line_and_value(tmp_path):
    figure_tree(tmp_path, "0.3714")
    [mismatch] = figure_mismatches(tmp_path)
    assert (mismatch.page, mismatch.line, mismatch.shown, mismatch.source) == \
        (tmp_path / "docs" / "page.md", 1, "0.3714", "0.3692")


def test_a_figure_rounded_as_shown_matches(tmp_path):
    figure_tree(tmp_path, "0.369")
    assert figure_mismatches(tmp_path) == []


def test_a_figure_whose_key_or_file_is_missing_is_reported(tmp_path):
    figure_tree(tmp_path, "0.3692", key="test.hits_at_1")
    [mismatch] = figure_mismatches(tmp_path)
    assert "no 'hits_at_1' in 'test.hits_at_1'" in mismatch.source
    write(tmp_path / "docs" / "page.md", '[1](../metrics/nothing.json "a")\n')
    assert figure_mismatches(tmp_path)[0].source == "no file ../metrics/nothing.json"


def test_percent_integers_separators_and_signs_render_as_shown():
    assert render_like("0.51%", 0.005129) == "0.51%"
    assert render_like("21,310", 21310) == "21,310" and render_like("21310", 21310.4) == "21310"
    assert render_like("+0.0014", 0.00142) == "+0.0014" and render_like("-5.54", -5.5369) == "-5.54"
    assert render_like("about", 1.0) is None


def test_fix_rewrites_each_shown_number_from_its_source(tmp_path):
    figure_tree(tmp_path, "0.3714")
    page = tmp_path / "docs" / "page.md"
    write(page, page.read_text() + '[9.9%](../metrics/eval.json "test.rows.0.share") and '
                                   '[1](../metrics/eval.json "test.count")\n')
    assert fix_page(page) == 3
    assert page.read_text() == ('MRR [0.3692](../metrics/eval.json "test.mrr") on test.\n'
                                '[0.5%](../metrics/eval.json "test.rows.0.share") and '
                                '[21310](../metrics/eval.json "test.count")\n')
    assert figures_main(["--root", str(tmp_path)]) == 0
