"""Parse chat text into a command, or raise a ``UsageError`` that says what was wrong.

The grammar, the same in Teams, Slack and the CLI::

    [/]request-admin <duration> [<justification>]   aliases: request, elevate
    [/]request-admin                                 no arguments: the front end opens a form
    [/]status | [/]cancel | [/]release              no arguments
    [/]extend <duration>
    [/]help [<topic>]                                alias: ?
    (empty text)                                     help

The command word is case-insensitive, the leading ``/`` optional, extra whitespace is
tolerated, and Teams ``<at>…</at>`` / Slack ``<@U…>`` mentions are removed first.

A duration is one of (case-insensitive):

- compact units, largest first: ``30m``, ``2h``, ``1h30m``, ``1d2h``, ``1.5h``;
- a number and a unit word: ``2 hours``, ``30 minutes``, ``1 day``, ``90 min``;
- ISO 8601: ``PT8H``, ``PT1H30M``, ``P1D`` (years and months are refused: their length varies).

It must be a whole number of minutes, at least 1 minute and at most 365 days.  Whether the
duration and the justification satisfy the access policy is the service's business, not the
parser's: a missing justification is ``""`` here.  Nothing is escaped; cards escape.

Everything here is pure: no I/O, no clock, stdlib and ``isodate`` only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction
from typing import TypeAlias

import isodate

from bot.errors import UsageError

__all__ = [
    "HELP_TEXT",
    "MAX_DURATION",
    "USAGE_EXAMPLES",
    "Cancel",
    "Command",
    "Extend",
    "Help",
    "Release",
    "RequestAdmin",
    "RequestForm",
    "Status",
    "format_duration",
    "parse",
    "parse_duration",
    "strip_mentions",
    "to_iso",
]


@dataclass(frozen=True, slots=True)
class RequestAdmin:
    """Ask for local admin rights for ``duration``; ``justification`` may be ``""``."""

    duration: timedelta
    justification: str


@dataclass(frozen=True, slots=True)
class RequestForm:
    """``request-admin`` without arguments: the front end shows the request form."""


@dataclass(frozen=True, slots=True)
class Status:
    """Show the user's open request or active admin rights."""


@dataclass(frozen=True, slots=True)
class Cancel:
    """Withdraw the user's pending request."""


@dataclass(frozen=True, slots=True)
class Extend:
    """Ask for ``duration`` more on the user's active admin rights."""

    duration: timedelta


@dataclass(frozen=True, slots=True)
class Release:
    """Give up the user's active admin rights now."""


@dataclass(frozen=True, slots=True)
class Help:
    """Show help, in general (``topic`` is ``None``) or about ``topic`` (verbatim, trimmed)."""

    topic: str | None


Command: TypeAlias = RequestAdmin | RequestForm | Status | Cancel | Extend | Release | Help
"""Everything :func:`parse` can return."""

MAX_DURATION = timedelta(days=365)
"""The longest duration the parser accepts; the policy's maximum is checked by the service."""
_MAX_SECONDS = int(MAX_DURATION.total_seconds())

USAGE_EXAMPLES: dict[str, str] = {
    "request-admin": "request-admin 8h fixing the printer driver",
    "status": "status",
    "extend": "extend 2h",
    "cancel": "cancel",
    "release": "release",
    "help": "help",
}
"""A correct example of each command, keyed by its canonical name."""

HELP_TEXT = """\
Elevate gives you local administrator rights on your PC for a limited time.

`request-admin 8h fixing the printer driver` – ask for admin rights for 8 hours, with your \
reason (just `request-admin` opens a form)
`status` – show your request or your admin rights and when they end
`extend 2h` – ask for 2 more hours
`cancel` – withdraw your pending request
`release` – give up your admin rights now
`help` – show this help

Durations: `30m`, `2h`, `1h30m`, `1d`, `2 hours` or ISO 8601 such as `PT8H`. \
The leading `/` is optional."""
"""Plain-text help listing every command with an example; only backticks as markup."""

_ALIASES: dict[str, str] = {
    "request-admin": "request-admin",
    "request": "request-admin",
    "elevate": "request-admin",
    "status": "status",
    "extend": "extend",
    "cancel": "cancel",
    "release": "release",
    "help": "help",
    "?": "help",
}

_NO_ARGUMENTS: dict[str, Command] = {"status": Status(), "cancel": Cancel(), "release": Release()}

# Unit word -> seconds.
_UNITS: dict[str, int] = {
    **dict.fromkeys(("d", "day", "days"), 86_400),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3_600),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
}

_NUMBER = r"[0-9]+(?:[.,][0-9]{1,6})?"
_NUMBER_RE = re.compile(_NUMBER)
_SPACED_RE = re.compile(rf"({_NUMBER})\s+([a-z]+)")
_COMPACT_RE = re.compile(rf"(?:{_NUMBER}[a-z]+)+")
_PART_RE = re.compile(rf"({_NUMBER})([a-z]+)")
_ISO_ITEM = r"[0-9]+(?:[.,][0-9]+)?"
_ISO_RE = re.compile(
    rf"P(?=[0-9T])(?:{_ISO_ITEM}Y)?(?:{_ISO_ITEM}M)?(?:{_ISO_ITEM}W)?(?:{_ISO_ITEM}D)?"
    rf"(?:T(?=[0-9])(?:{_ISO_ITEM}H)?(?:{_ISO_ITEM}M)?(?:{_ISO_ITEM}S)?)?"
)
# Teams: <at>Elevate</at> or <at id="0">Elevate</at>; Slack: <@U012AB3CD> or <@U012AB3CD|name>.
# Character classes stop at "<" so a pathological message cannot make the search quadratic.
_MENTION_RE = re.compile(r"<at(?:\s[^<>]*)?>[^<]*</at>|<@[UW][A-Z0-9]+(?:\|[^<>]*)?>", re.I)

_DURATION_FORMS = "e.g. 2h, 30m, 1h30m or PT8H."
_MAX_QUOTE = 40


def strip_mentions(text: str) -> str:
    """Remove Teams ``<at>…</at>`` and Slack ``<@U…>`` mentions and the whitespace around them.

    Whitespace inside the remaining text is kept as it is; the result is trimmed.
    """
    pieces = (piece.strip() for piece in _MENTION_RE.split(text))
    return " ".join(piece for piece in pieces if piece)


def parse(text: str) -> Command:
    """Parse one chat message into a :data:`Command`.

    Raises :class:`~bot.errors.UsageError` (what was wrong and a correct example) for anything
    that is not a valid command.  Empty text is ``Help(None)``.
    """
    body = strip_mentions(text)
    if body.startswith("/"):
        body = body[1:]
    word, rest = _split_first(body)
    if not word:
        return Help(None)
    name = _ALIASES.get(word.lower())
    if name is None:
        raise UsageError(
            f"{_quote(word)} is not a command. The commands are: {', '.join(USAGE_EXAMPLES)}.",
            USAGE_EXAMPLES["request-admin"],
        )
    if name == "request-admin":
        return _parse_request(rest)
    if name == "extend":
        return _parse_extend(rest)
    if name == "help":
        return Help(rest or None)
    if rest:
        raise UsageError(f"`{name}` takes no arguments.", USAGE_EXAMPLES[name])
    return _NO_ARGUMENTS[name]


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as ``2h``, ``1h30m``, ``90 minutes`` or ``PT8H``.

    Raises :class:`~bot.errors.UsageError` unless it is a whole number of minutes between
    1 minute and 365 days.
    """
    return _duration(text.strip(), hint=f"Use {_DURATION_FORMS}", example="1h30m")


def format_duration(duration: timedelta) -> str:
    """Format a duration compactly for messages: ``45m``, ``8h``, ``1h30m``, ``1d``, ``1d2h``.

    Seconds are dropped (rounded down to the minute); under a minute is ``0m``.  Raises
    ``ValueError`` for a negative duration.
    """
    if duration < timedelta(0):
        raise ValueError(f"negative duration: {duration!r}")
    minutes = duration // timedelta(minutes=1)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return "".join(parts) or "0m"


def to_iso(duration: timedelta) -> str:
    """Format a duration as ISO 8601 for Graph: ``PT8H``, ``PT1H30M``, ``P1D``, ``P1DT2H``.

    Whole days are written as days (``P1D``, never ``PT24H``); zero is ``PT0S``.  Raises
    ``ValueError`` for a negative duration or one with fractions of a second.
    """
    if duration < timedelta(0):
        raise ValueError(f"negative duration: {duration!r}")
    if duration % timedelta(seconds=1):
        raise ValueError(f"duration with fractions of a second: {duration!r}")
    seconds = duration // timedelta(seconds=1)
    days, rest = divmod(seconds, 24 * 3600)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    time = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    date = f"{days}D" if days else ""
    if not date and not time:
        return "PT0S"
    return f"P{date}T{time}" if time else f"P{date}"


def _parse_request(rest: str) -> Command:
    """Parse the arguments of ``request-admin``."""
    if not rest:
        return RequestForm()
    duration_text, justification = _split_duration(rest)
    duration = _duration(
        duration_text,
        hint=f"Start with how long you need admin rights, {_DURATION_FORMS}",
        example=USAGE_EXAMPLES["request-admin"],
    )
    return RequestAdmin(duration, justification)


def _parse_extend(rest: str) -> Extend:
    """Parse the arguments of ``extend``."""
    example = USAGE_EXAMPLES["extend"]
    if not rest:
        raise UsageError("`extend` needs to know how much longer you need admin rights.", example)
    duration_text, extra = _split_duration(rest)
    duration = _duration(
        duration_text, hint=f"Say how much longer you need, {_DURATION_FORMS}", example=example
    )
    if extra:
        raise UsageError("`extend` takes only a duration.", example)
    return Extend(duration)


def _split_first(text: str) -> tuple[str, str]:
    """Split trimmed ``text`` into its first word and the trimmed rest (inner whitespace kept)."""
    parts = text.strip().split(maxsplit=1)
    if not parts:
        return "", ""
    return parts[0], parts[1] if len(parts) > 1 else ""


def _split_duration(text: str) -> tuple[str, str]:
    """Split off the leading duration: one word, or a number and a unit word (``2 hours``)."""
    first, rest = _split_first(text)
    if _NUMBER_RE.fullmatch(first):
        unit, after = _split_first(rest)
        if unit.lower() in _UNITS:
            return f"{first} {unit}", after
    return first, rest


def _duration(text: str, *, hint: str, example: str) -> timedelta:
    """Parse a trimmed duration; ``hint`` finishes the "is not a duration" sentence."""
    if not text:
        raise UsageError(f"The duration is missing. {hint}", example)
    negative = text[0] == "-"
    seconds = _seconds(text[1:] if negative else text, example=example)
    if seconds is None:
        if _NUMBER_RE.fullmatch(text):
            raise UsageError(
                f"{_quote(text)} needs a unit: m for minutes, h for hours or d for days.", example
            )
        raise UsageError(f"{_quote(text)} is not a duration. {hint}", example)
    if negative:
        raise UsageError("A duration can't be negative.", example)
    if seconds < 60:
        raise UsageError("The duration must be at least 1 minute.", example)
    if seconds % 60:
        raise UsageError("The duration must be a whole number of minutes.", example)
    if seconds > _MAX_SECONDS:
        raise UsageError("The duration must be at most 365 days.", example)
    return timedelta(seconds=int(seconds))


def _seconds(text: str, *, example: str) -> int | Fraction | None:
    """The length of a duration in seconds (exact: a ``Fraction`` only for decimals), or
    ``None`` if ``text`` is not a duration."""
    lower = text.lower()
    if match := _SPACED_RE.fullmatch(lower):
        parts = [(match[1], match[2])]
    elif _COMPACT_RE.fullmatch(lower):
        parts = _PART_RE.findall(lower)
    elif _ISO_RE.fullmatch(text.upper()):
        return _iso_seconds(text.upper(), example=example)
    else:
        return None
    total: int | Fraction = 0
    previous_unit = 10**9
    for number, unit_word in parts:
        unit = _UNITS.get(unit_word)
        if unit is None or unit >= previous_unit:  # unknown, repeated or out-of-order unit
            return None
        previous_unit = unit
        try:
            if number.isdigit():
                total += int(number) * unit
            else:  # a decimal such as 1.5 or 1,5: exact arithmetic
                total += Fraction(number.replace(",", ".")) * unit
        except ValueError:  # more digits than int() will convert
            raise UsageError("The duration must be at most 365 days.", example) from None
    return total


def _iso_seconds(text: str, *, example: str) -> Fraction:
    """The length in seconds of an ISO 8601 duration that ``_ISO_RE`` matched.

    ``_ISO_RE`` accepts a subset of what isodate's own pattern accepts (and none of its
    alternative ``PYYYY-MM-DD…`` forms), so isodate can only fail here by overflowing.
    """
    try:
        value: object = isodate.parse_duration(text)
    except OverflowError:
        raise UsageError("The duration must be at most 365 days.", example) from None
    if not isinstance(value, timedelta):  # an isodate.Duration: it has years or months
        raise UsageError(
            "Years and months can't be used in a duration because their length varies; "
            "use days instead, e.g. P30D.",
            example,
        )
    microseconds = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    return Fraction(microseconds, 1_000_000)


def _quote(text: str) -> str:
    """Quote user text for a message, shortened if long."""
    if len(text) > _MAX_QUOTE:
        text = text[: _MAX_QUOTE - 1] + "…"
    return f"“{text}”"
