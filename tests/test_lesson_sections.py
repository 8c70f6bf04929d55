"""Lessons are numbered consistently: the file's number, its docstring's "Lesson NN" and its
``Lesson(NN, ...)`` agree, and the numbered sections of the markdown cells ("## 3. ...") are the
numbered headings the script prints (``lesson.section("3. ...")``), in the same order - so that
what a learner reads in the book and what the run prints point at the same section."""
from __future__ import annotations

import os
import re

import pytest

LESSONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lessons")
FILES = sorted(f for f in os.listdir(LESSONS) if re.match(r"\d\d_\w+\.py$", f))
_NUMBER = r"([A-Z]?\d+[a-z]?)\."


def _text(name):
    with open(os.path.join(LESSONS, name), encoding="utf-8") as f:
        return f.read()


@pytest.mark.parametrize("name", FILES)
def test_the_lesson_number_is_the_file_number(name):
    text, number = _text(name), int(name[:2])
    assert re.match(rf'"""Lesson {number:02d} ', text), f"{name}: the docstring must start 'Lesson {number:02d} '"
    assert re.search(rf"^lesson = Lesson\({number}, ", text, re.M), f"{name}: expected Lesson({number}, ...)"


@pytest.mark.parametrize("name", FILES)
def test_markdown_sections_and_printed_headings_agree(name):
    text = _text(name)
    markdown = re.findall(rf"^# #+ {_NUMBER}", text, re.M)
    printed = re.findall(rf'lesson\.section\(f?"{_NUMBER}', text)
    assert markdown, f"{name}: no numbered markdown sections"
    assert markdown == printed, f"{name}: markdown sections {markdown}, printed headings {printed}"
