"""Canonical values for numbers, quantities, money, percentages and dates, and canonical keys.

Two texts state the same fact in different words ("$4,000" / "4000 dollars", "18 April 1521" /
"April 18, 1521"); the fitness layer matches facts by key, so every surface form of one value
must map to one key. Everything here is a pure function of strings, with no spaCy dependency,
so the rules are easy to test one by one.
"""

from __future__ import annotations

import math
import re

__all__ = [
    "parse_number",
    "format_number",
    "normalize_unit",
    "normalize_quantity",
    "normalize_date",
    "normalize_time",
    "canonical_words",
    "STOP_WORDS",
]

# A small, fixed stop list: spaCy's list is long (it holds "first", "two", "top") and would strip
# words that carry the information we want to match. These (determiners, possessive determiners,
# hedges, conjunctions) carry none in a key: "his sword" and "the sword" are one concept.
STOP_WORDS = frozenset(
    ["a", "an", "the", "this", "that", "these", "those", "some", "any", "each", "every", "such", "of", "'s", "'", "and", "or", "but", "nor", "to", "very", "just", "also", "really", "quite", "rather", "about", "approximately", "around", "roughly", "nearly", "almost", "only",
     "’s", "’", "my", "your", "his", "her", "its", "our", "their"]
)

_SMALL = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
    "a": 1, "an": 1, "half": 0.5, "quarter": 0.25, "couple": 2,
}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000,
           "trillion": 1_000_000_000_000, "dozen": 12, "k": 1_000, "m": 1_000_000, "mn": 1_000_000,
           "bn": 1_000_000_000}
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30, "hundredth": 100, "thousandth": 1000,
}
_NUM_RE = re.compile(r"^[-+]?(\d{1,3}(,\d{3})+|\d+)?(\.\d+)?$")
_ORD_RE = re.compile(r"^(\d+)(st|nd|rd|th)$")
_FRACTION_RE = re.compile(r"^(\d+)/(\d+)$")

# currency symbol or word -> ISO-like code; money keys are "<amount> <code>"
CURRENCIES = {
    "$": "usd", "us$": "usd", "usd": "usd", "dollar": "usd", "dollars": "usd", "buck": "usd", "bucks": "usd",
    "£": "gbp", "gbp": "gbp", "pound": "gbp", "pounds": "gbp", "quid": "gbp",
    "€": "eur", "eur": "eur", "euro": "eur", "euros": "eur",
    "¥": "jpy", "jpy": "jpy", "yen": "jpy",
    "cent": "usd/100", "cents": "usd/100", "¢": "usd/100",
}
# unit word or abbreviation -> canonical unit name (singular); unknown units are kept as their lemma
_UNIT_ALIASES = {
    "%": "percent", "percent": "percent", "per cent": "percent", "pct": "percent", "percentage": "percent",
    "km": "kilometre", "kilometer": "kilometre", "kilometers": "kilometre", "kilometres": "kilometre",
    "m": "metre", "meter": "metre", "meters": "metre", "metres": "metre",
    "cm": "centimetre", "centimeter": "centimetre", "centimeters": "centimetre", "centimetres": "centimetre",
    "mm": "millimetre", "millimeter": "millimetre", "millimeters": "millimetre", "millimetres": "millimetre",
    "mi": "mile", "miles": "mile", "ft": "foot", "feet": "foot", "foot": "foot", "in.": "inch",
    "inches": "inch", "yd": "yard", "yards": "yard",
    "kg": "kilogram", "kgs": "kilogram", "kilo": "kilogram", "kilos": "kilogram", "kilograms": "kilogram",
    "g": "gram", "grams": "gram", "gr": "gram", "mg": "milligram", "milligrams": "milligram",
    "lb": "pound", "lbs": "pound", "oz": "ounce", "ounces": "ounce", "t": "tonne", "tons": "tonne",
    "ton": "tonne", "tonnes": "tonne",
    "l": "litre", "liter": "litre", "liters": "litre", "litres": "litre", "ml": "millilitre",
    "s": "second", "sec": "second", "secs": "second", "seconds": "second", "min": "minute",
    "mins": "minute", "minutes": "minute", "h": "hour", "hr": "hour", "hrs": "hour", "hours": "hour",
    "days": "day", "weeks": "week", "months": "month", "years": "year", "yrs": "year",
    "mph": "mile per hour", "km/h": "kilometre per hour", "kph": "kilometre per hour",
    "°c": "degree celsius", "°f": "degree fahrenheit", "degrees": "degree",
}

_MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4,
    "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9,
    "sep": 9, "sept": 9, "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
}
_DATE_TOKEN_RE = re.compile(r"\d{4}s|[A-Za-z]+\.?|\d+(?:st|nd|rd|th)?|'\d\d|[/\-.]")
_ISO_RE = re.compile(r"^(\d{3,4})-(\d{1,2})-(\d{1,2})$")
_SLASH_RE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{2,4})$")
_TIME_RE = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*(a\.?m\.?|p\.?m\.?|o'clock)?$", re.IGNORECASE)


def parse_number(text: str) -> float | None:
    """The numeric value of a number written in digits or words, or ``None``.

    Handles thousands separators ("4,000"), decimals, signs, ordinals ("3rd", "third"),
    fractions ("1/2"), words ("four thousand", "twenty-five", "a dozen") and scale words
    mixed with digits ("4 million", "1.5bn", "23million"). Two numbers in digits side by side
    ("6 1" from a score "6-1", "50 60" from a range) are not one number: ``None``.
    """
    # hyphens join number words ("twenty-five"); a leading minus sign is kept
    words = re.sub(r"(?<=[a-z])[-\u2013](?=[a-z])", " ", text.strip().lower()).split()
    if not words:
        return None
    total, current, seen = 0.0, 0.0, False
    after_value = False  # the previous word was a number, not a scale word
    for word in words:
        word = word.strip(",")
        if word == "and" and seen:
            continue
        value = _word_value(word)
        if value is not None:
            if after_value and any(c.isdigit() for c in word) and not _FRACTION_RE.match(word):
                # two numbers in digits side by side are two numbers, not a sum: a score "6 - 1"
                # (the dash dropped as punctuation) is not 7, a range "50-60" not 110
                return None
            current += value
            seen = after_value = True
            continue
        after_value = False
        if word in _SCALES and seen:
            scale = _SCALES[word]
            if scale >= 1000:
                total += (current or 1) * scale
                current = 0.0
            else:
                current = (current or 1) * scale
            continue
        return None
    return total + current if seen else None


def _word_value(word: str) -> float | None:
    """Value of one number token (digits, ordinal, fraction or number word)."""
    if _NUM_RE.match(word) and any(c.isdigit() for c in word):
        return float(word.replace(",", ""))
    match = _ORD_RE.match(word)
    if match:
        return float(match.group(1))
    match = _FRACTION_RE.match(word)
    if match and int(match.group(2)):
        return int(match.group(1)) / int(match.group(2))
    # "1.5bn", "4k", "23million" (British papers write "£23million"): digits glued to a scale word
    match = re.match(r"^(\d+(?:\.\d+)?)(k|m|bn|mn|thousand|million|billion|trillion)$", word)
    if match:
        return float(match.group(1)) * _SCALES[match.group(2)]
    if word in _SMALL:
        return float(_SMALL[word])
    if word in _ORDINALS:
        return float(_ORDINALS[word])
    return None


def format_number(value: float) -> str:
    """Canonical text of a number: integers without a decimal point, others to 6 significant digits."""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6g}"


def normalize_unit(unit: str) -> str:
    """Canonical name of a unit or currency ("kg" -> "kilogram", "dollars" -> "usd")."""
    word = unit.strip().lower()
    if word in CURRENCIES:
        return CURRENCIES[word]
    if word in _UNIT_ALIASES:
        return _UNIT_ALIASES[word]
    # plural of an unknown unit: keep the lemma-like singular ("ships" -> "ship")
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def normalize_quantity(number: str, unit: str = "") -> tuple[str, str] | None:
    """``(key, unit)`` for a number and its (possibly empty) unit or currency, or ``None``.

    "$4,000" and "4000 dollars" both give ``("4000 usd", "usd")``; cents are converted to
    dollars; "25%" and "25 percent" give ``("25 percent", "percent")``.
    """
    value = parse_number(number)
    if value is None:
        return None
    canon = normalize_unit(unit) if unit else ""
    if canon == "usd/100":
        value, canon = value / 100, "usd"
    key = format_number(value) if not canon else f"{format_number(value)} {canon}"
    return key, canon


def normalize_date(text: str) -> str | None:
    """ISO-style key of a calendar date, or ``None`` when the text is not one.

    "18 April 1521", "April 18, 1521", "the 18th of April, 1521" and "1521-04-18" all give
    ``"1521-04-18"``; "April 1521" gives ``"1521-04"``; "1521" gives ``"1521"``; "the 1520s"
    gives ``"1520s"``. Relative dates ("last year") return ``None``: the caller keys them by
    their words.
    """
    raw = text.strip().lower()
    match = _ISO_RE.match(raw)
    if match:
        return _iso(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    match = _SLASH_RE.match(raw)
    if match:  # month/day/year, the US order (ambiguous; documented)
        year = int(match.group(3))
        year = year + 1900 if year < 100 else year
        return _iso(year, int(match.group(1)), int(match.group(2)))
    year = month = day = None
    decade = None
    for tok in _DATE_TOKEN_RE.findall(raw):
        tok = tok.rstrip(".")
        if tok in ("the", "of", "on", "in", "", "/", "-", "ad", "bc", "bce", "ce"):
            continue
        if tok in _MONTHS:
            if month is not None:
                return None
            month = _MONTHS[tok]
        elif re.fullmatch(r"\d{4}s", tok):
            decade = tok
        elif re.fullmatch(r"\d+(st|nd|rd|th)?", tok):
            num = int(re.sub(r"\D", "", tok))
            if len(re.sub(r"\D", "", tok)) >= 3 and year is None and not tok[-1].isalpha():
                year = num
            elif 1 <= num <= 31 and day is None:
                day = num
            else:
                return None
        elif tok.startswith("'") and year is None:
            year = 1900 + int(tok[1:])
        else:
            return None  # a word that is not part of a calendar date ("last", "century")
    if decade and not (year or month or day):
        return decade
    if year is None and month is None:
        return None
    if year is None:
        return f"--{month:02d}-{day:02d}" if day else f"--{month:02d}"
    if month is None:
        return str(year) if day is None else None
    return _iso(year, month, day)


def _iso(year: int, month: int, day: int | None) -> str | None:
    if not 1 <= month <= 12 or (day is not None and not 1 <= day <= 31):
        return None
    return f"{year:04d}-{month:02d}" + (f"-{day:02d}" if day else "")


def normalize_time(text: str) -> str | None:
    """24-hour ``HH:MM`` key of a clock time ("3 pm", "3:00 p.m.", "15:00"), or ``None``."""
    match = _TIME_RE.match(text.strip())
    if not match or (match.group(2) is None and match.group(3) is None):
        return None
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    suffix = (match.group(3) or "").lower().replace(".", "")
    if suffix == "pm" and hour < 12:
        hour += 12
    elif suffix == "am" and hour == 12:
        hour = 0
    if hour > 23 or minute > 59:
        return None
    return f"{hour:02d}:{minute:02d}"


def canonical_words(words: list[str]) -> str:
    """Join lower-cased words into a key, dropping stop words and punctuation-only words."""
    kept = [w for w in (w.lower().strip() for w in words) if w and w not in STOP_WORDS and any(c.isalnum() for c in w)]
    return " ".join(kept)
