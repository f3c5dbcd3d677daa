"""The front door: a README of one or two screens whose first screen holds the generated results table, and
docs pages that each open with a title and a three-line summary; the README's table is the report's."""
import json
import re
from pathlib import Path

from studies.har.manifest import HEADLINE, HEADLINE_COLUMNS
from studies.report import HEADLINE_BEGIN, HEADLINE_END, headline_table

REPO = Path(__file__).resolve().parents[1]


def test_the_readme_is_short_and_opens_with_the_generated_table():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 250
    assert HEADLINE_BEGIN in lines[:60] and HEADLINE_END in lines[:60]


def test_the_readme_table_is_the_reports_table_of_the_committed_records():
    text = (REPO / "README.md").read_text()
    block = text.split(HEADLINE_BEGIN + "\n", 1)[1].split("\n" + HEADLINE_END, 1)[0]
    table = json.loads((REPO / "resources" / "study" / "downstream.json").read_text())["rows"]
    assert block.splitlines() == headline_table(table, HEADLINE, HEADLINE_COLUMNS)


def test_headline_table_cells_are_means_and_missing_ones_a_dash():
    table = [{"method": "a", "mode": "linear", "fraction": 0.01, "macro_f1_mean": 0.91234},
             {"method": "x/a", "mode": "linear", "fraction": 0.1, "macro_f1_mean": 0.5}]
    lines = headline_table(table, [("A", "a", "linear")], [("1%", "", 0.01), ("x 10%", "x/", 0.1), ("100%", "", 1.0)])
    assert lines[-1] == "| A | 0.912 | 0.500 | - |"


def test_every_docs_page_opens_with_a_title_and_a_three_line_summary():
    pages = sorted((REPO / "docs").glob("*.md"))
    assert pages
    for page in pages:
        title, blank, *summary = page.read_text().splitlines()[:6]
        assert title.startswith("# ") and blank == "", page
        assert all(line and not line.startswith("#") for line in summary[:3]) and summary[3] == "", page


def test_the_readme_links_only_to_files_that_exist():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", (REPO / "README.md").read_text()):
        if "://" not in target:
            assert (REPO / target).exists(), target
