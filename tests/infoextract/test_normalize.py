"""Every normalisation equivalence of the fact keys, on the pure functions."""

from __future__ import annotations

import pytest

from infoextract.normalize import (
    canonical_words,
    format_number,
    normalize_date,
    normalize_quantity,
    normalize_time,
    normalize_unit,
    parse_number,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4,000", 4000), ("4000", 4000), ("4.5", 4.5), ("-3", -3), ("four thousand", 4000),
        ("twenty-five", 25), ("one hundred and five", 105), ("a dozen", 12), ("4 million", 4_000_000),
        ("1.5bn", 1_500_000_000), ("3rd", 3), ("third", 3), ("1/2", 0.5), ("two hundred thousand", 200_000),
        # British papers glue the scale word: "£23million", "£1.5billion"
        ("23million", 23_000_000), ("1.5billion", 1_500_000_000), ("1.2mn", 1_200_000), ("1 1/2", 1.5),
    ],
)
def test_parse_number(text, value):
    assert parse_number(text) == pytest.approx(value)


# two numbers in digits side by side are two numbers: a score "6-1" (the dash dropped as
# punctuation) is not 7, a range "50-60" not 110, "4 -4" not 0
@pytest.mark.parametrize("text", ["", "apples", "4,00,0x", "million", "6 1", "50 60", "4 -4", "3 and 4"])
def test_parse_number_rejects_non_numbers(text):
    assert parse_number(text) is None


def test_format_number_drops_integral_decimal_point():
    assert format_number(4000.0) == "4000"
    assert format_number(0.5) == "0.5"
    assert format_number(1 / 3) == "0.333333"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("4,000", "$"), ("4000", "dollars")),
        (("4 million", "$"), ("four million", "USD")),
        (("50", "cents"), ("0.5", "dollar")),
        (("25", "%"), ("twenty-five", "percent")),
        (("30", "kg"), ("thirty", "kilograms")),
        (("3", "ships"), ("three", "ship")),
        (("10", "km"), ("10", "kilometers")),
    ],
)
def test_quantity_equivalences_share_a_key(a, b):
    assert normalize_quantity(*a) == normalize_quantity(*b)
    assert normalize_quantity(*a) is not None


def test_quantity_keeps_units_apart():
    assert normalize_quantity("4000", "$") == ("4000 usd", "usd")
    assert normalize_quantity("4000", "£")[0] == "4000 gbp"
    assert normalize_quantity("4000", "")[0] == "4000"
    assert normalize_quantity("30", "kg")[0] != normalize_quantity("30", "km")[0]


def test_unit_aliases():
    assert normalize_unit("kgs") == "kilogram"
    assert normalize_unit("€") == "eur"
    assert normalize_unit("Dollars") == "usd"
    assert normalize_unit("knights") == "knight"
    assert normalize_unit("glass") == "glass"  # a word ending in 'ss' is not a plural


@pytest.mark.parametrize(
    "text",
    ["18 April 1521", "April 18, 1521", "the 18th of April, 1521", "1521-04-18", "Apr. 18 1521", "4/18/1521"],
)
def test_calendar_dates_share_a_key(text):
    assert normalize_date(text) == "1521-04-18"


@pytest.mark.parametrize(
    ("text", "key"),
    [("April 1521", "1521-04"), ("1521", "1521"), ("the 1520s", "1520s"), ("May 5", "--05-05"),
     ("in July", "--07"), ("'69", "1969")],
)
def test_partial_dates(text, key):
    assert normalize_date(text) == key


@pytest.mark.parametrize("text", ["last year", "two days", "the summer", "April 45, 1521", "Monday"])
def test_non_calendar_dates_are_left_to_the_caller(text):
    assert normalize_date(text) is None


@pytest.mark.parametrize(("text", "key"), [("3 pm", "15:00"), ("3:30 p.m.", "15:30"), ("15:00", "15:00"),
                                           ("12 am", "00:00"), ("7 o'clock", "07:00")])
def test_times(text, key):
    assert normalize_time(text) == key


def test_times_reject_non_times():
    assert normalize_time("25:00") is None
    assert normalize_time("3") is None


def test_canonical_words_strip_determiners_stop_words_and_punctuation():
    assert canonical_words(["The", "old", "King", "'s", ",", "horse"]) == "old king horse"
    assert canonical_words(["a", "the", "of"]) == ""
