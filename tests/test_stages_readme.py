"""The report stage writes nothing outside ``reports/`` (issue 14): the README's results block is the
declared output ``reports/results_block.md``, and ``make readme`` (``python -m focus.eval.report``)
copies it into README.md."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from focus.errors import InputFileError
from focus.eval.pipeline import EvalPaths
from focus.eval.report import END_MARKER, START_MARKER, main, update_readme, write_reports

ROOT = Path(__file__).resolve().parents[1]


def _block(text: str) -> str:
    return text[text.index(START_MARKER) : text.index(END_MARKER) + len(END_MARKER)]


def test_committed_readme_block_is_the_report_stages_block():
    block = (ROOT / "reports" / "results_block.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert _block(readme) == block.strip("\n"), "README.md's results block is stale: run `make readme`"
    assert (
        main(["--block", str(ROOT / "reports/results_block.md"), "--readme", str(ROOT / "README.md"), "--check"]) == 0
    )


def test_report_code_on_the_committed_metrics_gives_the_committed_block(tmp_path):
    """Re-run the report code on a copy of the committed reports/: the block must come out the same,
    and nothing may be written outside reports/."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "reports", project / "reports")
    (project / "README.md").write_text("# untouched\n", encoding="utf-8")
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    r = project / "reports"
    paths = EvalPaths(
        misfit_reports=r / "misfit_prior",
        reports=r / "eval",
        train_reports=r / "train",
        report_md=r / "README.md",
        project_readme=project / "README.md",
        headline_fallback=r / "README_headline.md",
    )
    write_reports(params, paths)
    assert (project / "README.md").read_text(encoding="utf-8") == "# untouched\n"
    assert sorted(p.name for p in project.iterdir()) == ["README.md", "reports"]
    fresh = (r / "results_block.md").read_text(encoding="utf-8")
    assert fresh == (ROOT / "reports" / "results_block.md").read_text(encoding="utf-8")


def test_make_readme_copies_the_block_and_check_notices_a_stale_one(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# P\n\nintro\n\n{START_MARKER}\nold\n{END_MARKER}\n\nmore\n", encoding="utf-8")
    block = tmp_path / "results_block.md"
    block.write_text(f"{START_MARKER}\nnew numbers\n{END_MARKER}\n", encoding="utf-8")
    args = ["--block", str(block), "--readme", str(readme)]
    assert main([*args, "--check"]) == 1
    assert main(args) == 0
    assert readme.read_text(encoding="utf-8") == f"# P\n\nintro\n\n{START_MARKER}\nnew numbers\n{END_MARKER}\n\nmore\n"
    assert main([*args, "--check"]) == 0
    assert update_readme(readme, block.read_text(encoding="utf-8")) is False  # already up to date


def test_make_readme_refuses_a_readme_without_markers(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n", encoding="utf-8")
    with pytest.raises(InputFileError, match="README.md: has no block"):
        update_readme(readme, f"{START_MARKER}\nx\n{END_MARKER}")
    block = tmp_path / "b.md"
    block.write_text(f"{START_MARKER}\nx\n{END_MARKER}\n", encoding="utf-8")
    assert main(["--block", str(block), "--readme", str(readme)]) == 1
    assert "add the two markers" in capsys.readouterr().err
    assert readme.read_text(encoding="utf-8") == "# no markers\n"
    assert main(["--block", str(tmp_path / "missing.md"), "--readme", str(readme)]) == 1
