"""FHIR dates as ranges: a partial date ('2015', '2015-04') is every day it could be."""

from __future__ import annotations

import calendar
import functools
import re
from dataclasses import dataclass
from datetime import date, timedelta

from services.plan_builder.types import Tri

# \Z, not $: "$" also matches before a final newline ("2020-01-01\n" is no FHIR date)
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?\Z")
_DATETIME = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?)?)?\Z"
)
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})\Z")


@dataclass(frozen=True, slots=True)
class DateRange:
    """Inclusive range of calendar days; a full date has start == end."""

    start: date
    end: date

    @property
    def exact(self) -> bool:
        return self.start == self.end

    def __str__(self) -> str:
        if self.exact:
            return self.start.isoformat()
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


def _range(year: str, month: str | None, day: str | None) -> DateRange:
    y = int(year)
    if month is None:
        return DateRange(date(y, 1, 1), date(y, 12, 31))
    m = int(month)
    if day is None:
        return DateRange(date(y, m, 1), date(y, m, calendar.monthrange(y, m)[1]))
    d = date(y, m, int(day))
    return DateRange(d, d)


# Parsed dates are memoized (bounded): a record repeats its dates, and the same few thousand
# dates come back across patients; a DateRange is immutable. Errors are not cached.
@functools.lru_cache(maxsize=65_536)
def parse_date(text: str) -> DateRange:
    """A FHIR date (YYYY, YYYY-MM, YYYY-MM-DD); raises ValueError when it is not one."""
    match = _DATE.match(text)
    if not match:
        raise ValueError(f"not a FHIR date: {text!r}")
    return _range(*match.groups())


@functools.lru_cache(maxsize=65_536)
def parse_datetime(text: str) -> DateRange:
    """A FHIR date or dateTime, reduced to its calendar day(s) as written (offset ignored)."""
    match = _DATETIME.match(text)
    if not match:
        raise ValueError(f"not a FHIR dateTime: {text!r}")
    return _range(*match.groups())


def is_instant(text: str) -> bool:
    return bool(_INSTANT.match(text))


def add_months(day: date, months: int) -> date:
    """Calendar-month arithmetic; the day is clamped (29 February - 12 months -> 28 February)."""
    total = day.year * 12 + (day.month - 1) + months
    year, month = divmod(total, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def add_days(day: date, days: int) -> date:
    return day + timedelta(days=days)


def whole_years(born: date, at: date) -> int:
    years = at.year - born.year
    if (at.month, at.day) < (born.month, born.day):
        years -= 1
    return years


def age_range(birth: DateRange, at: date) -> tuple[int, int]:
    """Youngest and oldest possible age in whole years."""
    return whole_years(birth.end, at), whole_years(birth.start, at)


def below(low: int | None, high: int | None, threshold: int) -> Tri:
    """Is the value (known to lie in low..high) below the threshold? None when undecided."""
    if low is None or high is None:
        return None
    if high < threshold:
        return True
    if low >= threshold:
        return False
    return None


def on_or_after(value: DateRange, since: date) -> Tri:
    """Does the (possibly partial) date fall on or after `since`? None when it straddles it."""
    if value.start >= since:
        return True
    if value.end < since:
        return False
    return None
