"""Typed answers are read leniently and judged with the question's tolerance."""

from __future__ import annotations

import pytest

from quiz.answers import Unreadable, judge, numbers, parse, show
from quiz.catalog import Location, Question, Texts

_T = {"en": Texts("?", "!"), "ja": Texts("?", "!")}


def q(answer: str, **kw) -> Question:
    return Question("x", "counts", "model/", "forward", answer, _T, "", **kw)


@pytest.mark.parametrize(
    "typed",
    [
        "(1, 384, 32, 32)",
        "1x384x32x32",
        "1 × 384 × 32 × 32",
        "[1,384,32,32]",
        "torch.Size([1, 384, 32, 32])",
        "（１，　３８４，　３２，　３２）",  # full width, as a Japanese input method types it
    ],
)
def test_shapes_in_any_usual_notation(typed):
    assert parse(q("shape"), typed) == (1, 384, 32, 32)


@pytest.mark.parametrize(
    "typed, value",
    [
        ("53,323,425", 53323425),
        ("53 323 425", 53323425),
        ("53_323_425", 53323425),
        ("53323425", 53323425),
        ("5.3323425e7", 53323425),
        ("after batch 4", 4),
        ("５３，３２３，４２５", 53323425),
    ],
)
def test_whole_numbers_with_separators(typed, value):
    assert parse(q("int"), typed) == value


@pytest.mark.parametrize(
    "typed, value",
    [
        ("1.43e-4", 1.43e-4),
        ("1.43E-04", 1.43e-4),
        ("1.43 × 10^-4", 1.43e-4),
        ("1.43x10**-4", 1.43e-4),
        ("0.000143", 1.43e-4),
        (".857", 0.857),
        ("0,857", 0.857),
        ("40%", 0.4),
        ("-0.5", -0.5),
        ("− 0.5", -0.5),
    ],
)
def test_decimals_in_any_usual_notation(typed, value):
    assert parse(q("float"), typed) == pytest.approx(value)


@pytest.mark.parametrize(
    "answer, typed, key",
    [
        ("shape", "no idea", "shape"),
        ("int", "", "int"),
        ("int", "3 or 4", "int"),
        ("int", "2.5", "int"),
        ("float", "about a half", "float"),
        ("choice", "e", "choice"),
        ("choice", "5", "choice"),
        ("location", "train.py", "location"),
    ],
)
def test_text_without_an_answer_is_unreadable_not_wrong(answer, typed, key):
    with pytest.raises(Unreadable) as e:
        parse(q(answer), typed, n_options=4)
    assert e.value.key == key


@pytest.mark.parametrize("typed", ["b", "B", "(b)", "b)", "2", "ｂ"])
def test_a_choice_as_letter_or_number(typed):
    assert parse(q("choice"), typed, n_options=4) == "b"


@pytest.mark.parametrize(
    "typed, got",
    [
        ("train.py:58", ("train.py", 58, 58)),
        ("train.py 57-59", ("train.py", 57, 59)),
        ("train.py, lines 57 to 59", ("train.py", 57, 59)),
        ("train.py#L57-L59", ("train.py", 57, 59)),
        ("src_inference1\\utils.py:24", ("src_inference1/utils.py", 24, 24)),
        ("utils.py: 25–24", ("utils.py", 24, 25)),
    ],
)
def test_a_place_in_the_published_code(typed, got):
    assert parse(q("location"), typed) == got


LOC = Location("DrHB/2nd-place-contrails", "src_inference1/utils.py", 24, 25, "e" * 40)


@pytest.mark.parametrize(
    "got, right, note",
    [
        (("utils.py", 24, 25), True, ""),
        (("src_inference1/utils.py", 25, 25), True, ""),
        (("utils.py", 20, 25), False, "file"),  # right file, lines reach outside
        (("data.py", 24, 25), False, ""),
        (("other/utils.py", 24, 25), False, ""),
    ],
)
def test_a_place_is_right_when_the_file_matches_and_the_lines_lie_inside(got, right, note):
    v = judge(q("location"), LOC, got)
    assert (v.right, v.note) == (right, note)


def test_float_tolerance_is_relative_or_absolute():
    rel = q("float", rel_tol=0.005)
    assert judge(rel, 1.428e-4, 1.43e-4).right  # 0.14 % off
    assert not judge(rel, 1.428e-4, 1.45e-4).right  # 1.5 % off
    absolute = q("float", abs_tol=0.001)
    assert judge(absolute, 0.8571, 0.857).right
    assert not judge(absolute, 0.8571, 0.86).right


def test_shapes_and_ints_must_match_exactly():
    assert judge(q("shape"), (2, 5, 320, 12, 20), (2, 5, 320, 12, 20)).right
    assert not judge(q("shape"), (2, 5, 320, 12, 20), (2, 5, 320, 20, 12)).right
    assert not judge(q("int"), 53323425, 53323424).right


def test_answers_print_as_the_quiz_shows_them():
    assert show(q("shape"), (1, 3, 512, 512)) == "(1, 3, 512, 512)"
    assert show(q("int"), 53323425) == "53,323,425"
    assert show(q("float", format=".3e"), 1.4278e-4) == "1.428e-04"
    assert show(q("location"), ("train.py", 57, 59)) == "train.py:57-59"
    assert numbers("(3, 0, 1)") == [3.0, 0.0, 1.0]
