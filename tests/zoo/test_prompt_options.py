"""The predict commands' prompt options, read by one parser for every model, by class of problem."""

from __future__ import annotations

import pytest

from segblocks.zoo.common.prompt_options import parse_boxes, parse_points


def test_points_and_boxes_with_spaces_and_a_trailing_separator() -> None:
    assert parse_points(" 1,2 ; 3.5,4;") == [(1.0, 2.0), (3.5, 4.0)]
    assert parse_boxes("0,0,10,10; 5,5,6,7") == [(0.0, 0.0, 10.0, 10.0), (5.0, 5.0, 6.0, 7.0)]


@pytest.mark.parametrize("text", ["", " ; ", ";;"])
def test_nothing_given(text: str) -> None:
    with pytest.raises(ValueError, match=r"^--negative: expected at least one point 'x,y', e.g. "):
        parse_points(text, "--negative")
    with pytest.raises(ValueError, match=r"^--boxes: expected at least one box 'x1,y1,x2,y2'"):
        parse_boxes(text)


@pytest.mark.parametrize(
    ("text", "bad"), [("1,2;3", "point 1 '3'"), ("1,2,3", "point 0 '1,2,3'"), ("a,b", "point 0 'a,b'")]
)
def test_a_point_that_is_not_two_numbers(text: str, bad: str) -> None:
    with pytest.raises(ValueError, match=rf"^--points: {bad} is not 'x,y' \(points are separated by ';'"):
        parse_points(text)


@pytest.mark.parametrize("text", ["1,2,3", "1,2,3,4,5", "1,2,x,4"])
def test_a_box_that_is_not_four_numbers(text: str) -> None:
    with pytest.raises(
        ValueError, match=r"^--boxes: box 0 .* is not 'x1,y1,x2,y2' \(boxes are separated by ';'"
    ):
        parse_boxes(text)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_number_that_is_not_finite(value: str) -> None:
    with pytest.raises(ValueError, match=r"^--points: point 0 .* has a value that is not a finite number$"):
        parse_points(f"1,{value}")
    with pytest.raises(ValueError, match=r"^--boxes: box 1 .* has a value that is not a finite number$"):
        parse_boxes(f"0,0,1,1;0,0,{value},1")


@pytest.mark.parametrize("bad", [None, 3, ["1,2"]])
def test_not_a_string(bad: object) -> None:
    with pytest.raises(TypeError, match=r"^--points: expected a string such as '12,30;40,8', got "):
        parse_points(bad)  # type: ignore[arg-type]
