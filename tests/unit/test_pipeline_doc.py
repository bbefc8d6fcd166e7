"""flows/PIPELINE.md's generated sections follow the declarations, and --check notices."""

import pytest

from vgw_ryu.pipeline import doc, priorities
from vgw_ryu.pipeline.fields import FIELDS
from vgw_ryu.pipeline.tables import PUNTS


def test_pipeline_md_is_current():
    text = doc.PIPELINE_MD.read_text()
    assert doc.render_pipeline_md(text) == text, "run: python -m vgw_ryu.pipeline.doc"


def test_generated_tables_list_every_declaration():
    regs = doc.registers_md()
    assert all(f"| {f.bits} |" in regs for f in FIELDS)
    prios = doc.priorities_md()
    assert all(f"`{p.name}`" in prios for p in priorities.PRIORITIES)
    assert all(f"| {p.purpose} | {p.table} " in doc.punts_md() for p in PUNTS)


def test_a_stale_section_is_rewritten():
    text = doc.PIPELINE_MD.read_text()
    stale = text.replace("| reg3 |", "| reg9 |")
    assert stale != text
    assert doc.render_pipeline_md(stale) == text


@pytest.mark.parametrize("section", sorted(doc.SECTIONS))
def test_a_missing_section_is_an_error(section):
    text = doc.PIPELINE_MD.read_text().replace(f"<!-- generated: {section} -->",
                                               "<!-- removed -->")
    with pytest.raises(ValueError, match=section):
        doc.render_pipeline_md(text)


def test_check_fails_on_a_stale_pipeline_md(tmp_path, monkeypatch):
    md = tmp_path / "PIPELINE.md"
    md.write_text(doc.PIPELINE_MD.read_text().replace("| reg3 |", "| reg9 |"))
    monkeypatch.setattr(doc, "PIPELINE_MD", md)
    assert doc.main(["--check"]) == 1
    assert "reg9" in md.read_text()  # --check writes nothing
