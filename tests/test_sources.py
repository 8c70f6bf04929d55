"""Every citation of a source article ("doc 003 §3.2") is defined in docs/sources.md, and nothing
points at a document outside the repository."""
from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = ROOT / "docs" / "sources.md"
CITING_FOLDERS = ("tinyattn", "lessons", "tests")

_SECTION = r"(?:§\d+(?:\.\d+)*(?:\s*[-–]\s*\d+(?:\.\d+)*)?|Q\d+)"
# "doc 000 §3.2", "doc 000 §3.2, §4.2", "doc 003 §3.3 and §8.3", "doc 002 Q4"
_CITATION = re.compile(rf"\bdoc (\d{{3}})((?:(?:\s*,\s*|\s+and\s+|\s+){_SECTION})+)")
# Written out so that this file does not match its own search.
_OUTSIDE = ("shared" + "/", "WORKED" + "_EXAMPLES")


def _files():
    for folder in CITING_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".md") and "__pycache__" not in path.parts:
                yield path


def _bounds(label):
    """'§5.2-5.4' -> ((5, 2), (5, 4)); '§3' -> ((3,), (3,)); 'Q4' -> (('Q', 4), ('Q', 4))."""
    if label.startswith("Q"):
        return ("Q", int(label[1:])), ("Q", int(label[1:]))
    ends = [tuple(int(n) for n in part.split(".")) for part in re.split(r"\s*[-–]\s*", label[1:])]
    return ends[0], ends[-1]


def _citations():
    """(doc, section label, file) for every citation in the code, lessons and tests."""
    for path in _files():
        for match in _CITATION.finditer(path.read_text(encoding="utf-8")):
            for label in re.findall(_SECTION, match.group(2)):
                yield match.group(1), label, path.relative_to(ROOT)


def _table_rows():
    """doc -> list of (low, high) section bounds from the sections table of docs/sources.md."""
    rows = {}
    for line in SOURCES.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.fullmatch(r"doc \d{3}", cells[0]) and re.fullmatch(_SECTION,
                                                                                     cells[1]):
            rows.setdefault(cells[0][4:], []).append(_bounds(cells[1]))
    return rows


def _defined(point, bounds):
    """point lies in one row's range, at the same depth (a §3 row does not define §3.7)."""
    return any(len(point) == len(low) and type(point[0]) is type(low[0]) and low <= point <= high
               for low, high in bounds)


def test_the_sections_table_is_found():
    rows = _table_rows()
    assert sorted(rows) == ["000", "001", "002", "003", "004"], sorted(rows)
    assert sum(len(r) for r in rows.values()) >= 20


def test_every_article_has_a_title_row():
    text = SOURCES.read_text(encoding="utf-8")
    for doc in ("000", "001", "002", "003", "004"):
        assert re.search(rf"^\| doc {doc} \| [^§|]", text, re.M), f"no title row for doc {doc}"


def test_every_cited_section_is_in_docs_sources():
    rows = _table_rows()
    cited = list(_citations())
    assert len(cited) >= 20, "the citation pattern no longer finds the lessons' citations"
    missing = [f"{path}: doc {doc} {label}" for doc, label, path in cited
               if not all(_defined(end, rows.get(doc, [])) for end in _bounds(label))]
    assert not missing, ("cited but not in the sections table of docs/sources.md:\n"
                         + "\n".join(missing))


def test_every_lesson_that_cites_an_article_points_to_docs_sources():
    citing = {path for _, _, path in _citations() if path.parts[0] == "lessons"}
    assert citing, "no lesson cites an article"
    for path in sorted(citing):
        text = (ROOT / path).read_text(encoding="utf-8")
        head = text.split('"""')[1] if text.startswith('"""') else ""
        assert "docs/sources.md" in head, f"{path}: its docstring does not name docs/sources.md"


def test_no_file_points_at_a_document_outside_the_repository():
    offenders = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
                 for path in _files() if path != pathlib.Path(__file__).resolve()
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if any(word in line for word in _OUTSIDE)
                 or re.search(r"docs/\d{3}", line)]
    assert not offenders, "references to documents the checkout lacks:\n" + "\n".join(offenders)
