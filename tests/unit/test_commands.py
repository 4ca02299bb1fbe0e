"""Tests for the chat command parser, ``bot.commands``."""

from __future__ import annotations

from datetime import timedelta

import isodate
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.commands import (
    HELP_TEXT,
    MAX_DURATION,
    USAGE_EXAMPLES,
    Cancel,
    Command,
    Extend,
    Help,
    Release,
    RequestAdmin,
    RequestForm,
    Status,
    format_duration,
    parse,
    parse_duration,
    strip_mentions,
    to_iso,
)
from bot.errors import ElevateError, UsageError

REQUEST_EXAMPLE = "request-admin 8h fixing the printer driver"
YEARS_AND_MONTHS = (
    "Years and months can't be used in a duration because their length varies; "
    "use days instead, e.g. P30D."
)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def usage_error(text: str) -> UsageError:
    """Parse ``text`` and return the UsageError it must raise."""
    with pytest.raises(UsageError) as info:
        parse(text)
    return info.value


# --- strip_mentions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<at>Elevate</at> status", "status"),
        ('<at id="0">Elevate</at>  /status ', "/status"),
        ("<AT>Elevate</AT>\nstatus", "status"),
        ("status <at>Elevate</at>", "status"),
        ("request-admin 2h for <at>Ann Lee</at> today", "request-admin 2h for today"),
        ("<@U012AB3CD> status", "status"),
        ("<@U012AB3CD|elevate> status", "status"),
        ("  status  ", "status"),
        ("<at>Elevate</at>", ""),
    ],
)
def test_strip_mentions_removes_mentions_and_surrounding_whitespace(
    text: str, expected: str
) -> None:
    """Teams and Slack mentions and the whitespace around them are removed, the rest trimmed."""
    assert strip_mentions(text) == expected


def test_strip_mentions_keeps_inner_whitespace() -> None:
    """Whitespace inside the text that is not next to a mention is kept verbatim."""
    assert strip_mentions("<at>E</at> a  b\n\tc ") == "a  b\n\tc"


def test_strip_mentions_leaves_unclosed_markup_alone() -> None:
    """Text that only looks like a mention (unclosed) is not touched."""
    assert strip_mentions("<at>Elevate status") == "<at>Elevate status"


# --- parse: the commands -----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "/", " / ", "<at>Elevate</at>"])
def test_parse_empty_text_is_general_help(text: str) -> None:
    """Empty text (after mentions and the slash) is a friendly Help(None), not an error."""
    assert parse(text) == Help(None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status", Status()),
        ("/status", Status()),
        ("STATUS", Status()),
        ("  /Status  ", Status()),
        ("/ status", Status()),
        ("cancel", Cancel()),
        ("/CANCEL", Cancel()),
        ("release", Release()),
        ("/release", Release()),
        ("<at>Elevate</at> release", Release()),
    ],
)
def test_parse_commands_without_arguments(text: str, expected: Command) -> None:
    """status, cancel and release parse with an optional slash, in any case, with spaces."""
    assert parse(text) == expected


@pytest.mark.parametrize("word", ["status", "cancel", "release"])
def test_parse_rejects_arguments_to_commands_that_take_none(word: str) -> None:
    """status, cancel and release with extra words raise a UsageError naming the command."""
    error = usage_error(f"/{word} please now")
    assert error.problem == f"`{word}` takes no arguments."
    assert error.example == word


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("help", Help(None)),
        ("/HELP", Help(None)),
        ("?", Help(None)),
        ("/?", Help(None)),
        ("help request-admin", Help("request-admin")),
        ("? extend", Help("extend")),
        ("help  durations  and  more ", Help("durations  and  more")),
    ],
)
def test_parse_help_with_optional_topic(text: str, expected: Help) -> None:
    """help and ? parse, the topic being the rest of the text, trimmed."""
    assert parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "request-admin",
        "/request-admin",
        "request",
        "/ELEVATE",
        "  Request-Admin  ",
        "<at>E</at> /request",
    ],
)
def test_parse_request_without_arguments_asks_for_the_form(text: str) -> None:
    """request-admin and its aliases without arguments give RequestForm (the front end's form)."""
    assert parse(text) == RequestForm()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "/request-admin 8h fixing the printer driver",
            RequestAdmin(timedelta(hours=8), "fixing the printer driver"),
        ),
        ("request 30m x", RequestAdmin(timedelta(minutes=30), "x")),
        ("elevate 1h30m install VS", RequestAdmin(timedelta(minutes=90), "install VS")),
        ("REQUEST-ADMIN PT8H Reason", RequestAdmin(timedelta(hours=8), "Reason")),
        ("request-admin 2 hours update BIOS", RequestAdmin(timedelta(hours=2), "update BIOS")),
        ("request-admin 2\tHours\tupdate", RequestAdmin(timedelta(hours=2), "update")),
        ("request-admin 1d", RequestAdmin(timedelta(days=1), "")),
        (
            "<at>Elevate</at> request-admin 4h   printer",
            RequestAdmin(timedelta(hours=4), "printer"),
        ),
    ],
)
def test_parse_request_admin(text: str, expected: RequestAdmin) -> None:
    """request-admin and its aliases take a duration (one word or number + unit) and a reason."""
    assert parse(text) == expected


def test_parse_request_keeps_justification_verbatim() -> None:
    """The justification keeps its inner whitespace and markup-like characters, only trimmed."""
    command = parse("request-admin 8h  fix *the*  <b>printer</b> &amp;\n  driver  ")
    assert command == RequestAdmin(timedelta(hours=8), "fix *the*  <b>printer</b> &amp;\n  driver")


def test_parse_request_without_justification_leaves_policy_to_the_service() -> None:
    """A request with only a duration parses with an empty justification."""
    assert parse("request-admin 45m") == RequestAdmin(timedelta(minutes=45), "")


def test_parse_request_takes_only_the_first_word_as_compact_duration() -> None:
    """After a one-word duration, the rest is the justification, even if it looks like time."""
    assert parse("request-admin 1h 30m x") == RequestAdmin(timedelta(hours=1), "30m x")


def test_parse_request_rejects_a_justification_without_duration() -> None:
    """A request that starts with words instead of a duration says so and shows an example."""
    error = usage_error("request-admin fixing printer")
    assert error.problem == (
        "“fixing” is not a duration. Start with how long you need admin rights, "
        "e.g. 2h, 30m, 1h30m or PT8H."
    )
    assert error.example == REQUEST_EXAMPLE
    assert error.user_message == f"{error.problem} Try: `{REQUEST_EXAMPLE}`"


def test_parse_request_rejects_a_number_without_unit() -> None:
    """A bare number followed by a non-unit word asks for a unit."""
    error = usage_error("request-admin 30 fixing printer")
    assert error.problem == "“30” needs a unit: m for minutes, h for hours or d for days."
    assert error.example == REQUEST_EXAMPLE


def test_parse_request_rejects_a_trailing_bare_number() -> None:
    """A bare number as the last word asks for a unit."""
    assert usage_error("request-admin 8").problem.startswith("“8” needs a unit")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("request-admin 0h x", "The duration must be at least 1 minute."),
        ("request-admin -2h x", "A duration can't be negative."),
        ("request-admin 366d x", "The duration must be at most 365 days."),
        ("request-admin 90s x", "The duration must be a whole number of minutes."),
        (
            "request-admin P1M x",
            YEARS_AND_MONTHS,
        ),
    ],
)
def test_parse_request_reports_invalid_durations(text: str, problem: str) -> None:
    """Invalid request durations raise a UsageError naming the problem, with the request example."""
    error = usage_error(text)
    assert error.problem == problem
    assert error.example == REQUEST_EXAMPLE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("extend 2h", Extend(timedelta(hours=2))),
        ("/EXTEND pt1h30m", Extend(timedelta(minutes=90))),
        ("extend 90 minutes", Extend(timedelta(minutes=90))),
        ("<at>Elevate</at>  extend   1d ", Extend(timedelta(days=1))),
    ],
)
def test_parse_extend(text: str, expected: Extend) -> None:
    """extend takes exactly one duration in any accepted form."""
    assert parse(text) == expected


def test_parse_extend_requires_a_duration() -> None:
    """extend without a duration raises a UsageError with the extend example."""
    error = usage_error("/extend")
    assert error.problem == "`extend` needs to know how much longer you need admin rights."
    assert error.example == "extend 2h"


def test_parse_extend_rejects_extra_words() -> None:
    """extend followed by more than a duration raises a UsageError."""
    error = usage_error("extend 2 hours please")
    assert error.problem == "`extend` takes only a duration."
    assert error.example == "extend 2h"


def test_parse_extend_rejects_an_invalid_duration() -> None:
    """extend with a non-duration says so, with the extend example."""
    error = usage_error("extend later")
    assert error.problem == (
        "“later” is not a duration. Say how much longer you need, e.g. 2h, 30m, 1h30m or PT8H."
    )
    assert error.example == "extend 2h"


@pytest.mark.parametrize("text", ["foo", "/sudo make me admin", "request-admin8h", "//status"])
def test_parse_rejects_unknown_commands_listing_the_valid_ones(text: str) -> None:
    """An unknown command word raises a UsageError that lists every command."""
    word = text.split()[0].removeprefix("/")
    error = usage_error(text)
    assert error.problem == (
        f"“{word}” is not a command. "
        "The commands are: request-admin, status, extend, cancel, release, help."
    )
    assert error.example == REQUEST_EXAMPLE


def test_parse_shortens_long_words_in_messages() -> None:
    """A very long unknown word is quoted shortened, so the message stays one readable sentence."""
    error = usage_error("x" * 500)
    assert error.problem.startswith("“" + "x" * 39 + "…” is not a command.")


def test_usage_error_is_an_elevate_error() -> None:
    """Parse errors belong to the one error tree, so front ends handle them in one place."""
    assert isinstance(usage_error("nope"), ElevateError)


# --- parse_duration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(minutes=90)),
        ("1d", timedelta(days=1)),
        ("1d2h", timedelta(hours=26)),
        ("1d2h3m", timedelta(minutes=1563)),
        ("2H", timedelta(hours=2)),
        ("1.5h", timedelta(minutes=90)),
        ("1,5h", timedelta(minutes=90)),
        ("1hour30minutes", timedelta(minutes=90)),
        ("2 hours", timedelta(hours=2)),
        ("1 hour", timedelta(hours=1)),
        ("30 minutes", timedelta(minutes=30)),
        ("90 min", timedelta(minutes=90)),
        ("1 day", timedelta(days=1)),
        ("3 Days", timedelta(days=3)),
        ("2 hrs", timedelta(hours=2)),
        ("120 seconds", timedelta(minutes=2)),
        ("1m60s", timedelta(minutes=2)),
        ("PT8H", timedelta(hours=8)),
        ("pt1h30m", timedelta(minutes=90)),
        ("P1D", timedelta(days=1)),
        ("P1DT2H", timedelta(hours=26)),
        ("P1W", timedelta(days=7)),
        ("PT0.5H", timedelta(minutes=30)),
        ("P0Y1D", timedelta(days=1)),
        ("  2h  ", timedelta(hours=2)),
        ("365d", MAX_DURATION),
        ("1m", timedelta(minutes=1)),
    ],
)
def test_parse_duration_accepts_compact_long_and_iso_forms(text: str, expected: timedelta) -> None:
    """Compact units, number + unit word and ISO 8601 durations parse to the same timedelta."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "The duration is missing. Use e.g. 2h, 30m, 1h30m or PT8H."),
        ("   ", "The duration is missing. Use e.g. 2h, 30m, 1h30m or PT8H."),
        ("soon", "“soon” is not a duration. Use e.g. 2h, 30m, 1h30m or PT8H."),
        ("2x", "“2x” is not a duration. Use e.g. 2h, 30m, 1h30m or PT8H."),
        ("30m1h", "“30m1h” is not a duration. Use e.g. 2h, 30m, 1h30m or PT8H."),
        ("1h1h", "“1h1h” is not a duration. Use e.g. 2h, 30m, 1h30m or PT8H."),
        ("1h 30m", "“1h 30m” is not a duration. Use e.g. 2h, 30m, 1h30m or PT8H."),
        ("2 fortnights", "“2 fortnights” is not a duration. Use e.g. 2h, 30m, 1h30m or PT8H."),
        (".5h", "“.5h” is not a duration. Use e.g. 2h, 30m, 1h30m or PT8H."),
        ("1.1234567h", "“1.1234567h” is not a duration. Use e.g. 2h, 30m, 1h30m or PT8H."),
        ("-", "“-” is not a duration. Use e.g. 2h, 30m, 1h30m or PT8H."),
        ("P", "“P” is not a duration. Use e.g. 2h, 30m, 1h30m or PT8H."),
        ("PT", "“PT” is not a duration. Use e.g. 2h, 30m, 1h30m or PT8H."),
        ("PT8", "“PT8” is not a duration. Use e.g. 2h, 30m, 1h30m or PT8H."),
        (
            "P0001-00-00T08:00:00",
            "“P0001-00-00T08:00:00” is not a duration. Use e.g. 2h, 30m, 1h30m or PT8H.",
        ),
        ("+PT8H", "“+PT8H” is not a duration. Use e.g. 2h, 30m, 1h30m or PT8H."),
        ("30", "“30” needs a unit: m for minutes, h for hours or d for days."),
        ("1.5", "“1.5” needs a unit: m for minutes, h for hours or d for days."),
        ("0m", "The duration must be at least 1 minute."),
        ("0 hours", "The duration must be at least 1 minute."),
        ("30s", "The duration must be at least 1 minute."),
        ("PT30S", "The duration must be at least 1 minute."),
        ("P0D", "The duration must be at least 1 minute."),
        ("0.5m", "The duration must be at least 1 minute."),
        ("PT1M30S", "The duration must be a whole number of minutes."),
        ("1.01h", "The duration must be a whole number of minutes."),
        ("-1h", "A duration can't be negative."),
        ("-PT8H", "A duration can't be negative."),
        ("365d1m", "The duration must be at most 365 days."),
        ("P366D", "The duration must be at most 365 days."),
        ("99999999999999999999999999d", "The duration must be at most 365 days."),
        ("9" * 5000 + "h", "The duration must be at most 365 days."),
        ("PT99999999999999999999999H", "The duration must be at most 365 days."),
        (
            "P1Y",
            YEARS_AND_MONTHS,
        ),
        (
            "P1M",
            YEARS_AND_MONTHS,
        ),
        (
            "-P1Y2M",
            YEARS_AND_MONTHS,
        ),
    ],
)
def test_parse_duration_rejects_invalid_durations_naming_the_problem(
    text: str, problem: str
) -> None:
    """Missing, malformed, unitless, short, fractional, negative, huge or calendar ones fail."""
    with pytest.raises(UsageError) as info:
        parse_duration(text)
    assert info.value.problem == problem
    assert info.value.example == "1h30m"


# --- format_duration and to_iso ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(minutes=45), "45m"),
        (timedelta(hours=8), "8h"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(days=1), "1d"),
        (timedelta(hours=26), "1d2h"),
        (timedelta(days=1, minutes=5), "1d5m"),
        (timedelta(days=2, hours=3, minutes=4), "2d3h4m"),
        (timedelta(minutes=59, seconds=59), "59m"),
        (timedelta(seconds=30), "0m"),
        (timedelta(0), "0m"),
    ],
)
def test_format_duration_is_compact(duration: timedelta, text: str) -> None:
    """format_duration writes days, hours and minutes compactly, dropping seconds."""
    assert format_duration(duration) == text


def test_format_duration_rejects_negative() -> None:
    """A negative duration is a programming error, not something to show."""
    with pytest.raises(ValueError, match="negative"):
        format_duration(timedelta(minutes=-1))


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(hours=8), "PT8H"),
        (timedelta(minutes=90), "PT1H30M"),
        (timedelta(minutes=45), "PT45M"),
        (timedelta(days=1), "P1D"),
        (timedelta(hours=24), "P1D"),
        (timedelta(hours=26, minutes=30), "P1DT2H30M"),
        (timedelta(days=1, seconds=5), "P1DT5S"),
        (timedelta(minutes=1, seconds=30), "PT1M30S"),
        (timedelta(0), "PT0S"),
    ],
)
def test_to_iso_writes_iso_8601_that_isodate_reads_back(duration: timedelta, text: str) -> None:
    """to_iso writes days as D (never PT24H) and the result parses back with isodate."""
    assert to_iso(duration) == text
    assert isodate.parse_duration(text) == duration


@pytest.mark.parametrize(
    ("duration", "match"),
    [(timedelta(seconds=-1), "negative"), (timedelta(seconds=1.5), "fractions of a second")],
)
def test_to_iso_rejects_negative_and_sub_second(duration: timedelta, match: str) -> None:
    """to_iso refuses durations it cannot write exactly."""
    with pytest.raises(ValueError, match=match):
        to_iso(duration)


# --- HELP_TEXT and USAGE_EXAMPLES --------------------------------------------------------------


def test_usage_examples_cover_every_command_and_parse() -> None:
    """Every command has an example, and each example parses to that command."""
    expected_types: dict[str, type] = {
        "request-admin": RequestAdmin,
        "status": Status,
        "extend": Extend,
        "cancel": Cancel,
        "release": Release,
        "help": Help,
    }
    assert set(USAGE_EXAMPLES) == set(expected_types)
    for name, example in USAGE_EXAMPLES.items():
        assert isinstance(parse(example), expected_types[name])
        assert isinstance(parse("/" + example), expected_types[name])


def test_help_text_lists_every_command_with_its_example() -> None:
    """HELP_TEXT shows each command's example in backticks."""
    for example in USAGE_EXAMPLES.values():
        assert f"`{example}`" in HELP_TEXT
    assert "`request-admin`" in HELP_TEXT


def test_help_text_uses_no_markup_but_backticks() -> None:
    """HELP_TEXT is plain text that renders the same in Teams and Slack."""
    assert not set(HELP_TEXT) & set("*_~<>[]#&|")
    assert HELP_TEXT.count("`") % 2 == 0


def test_commands_are_immutable_values() -> None:
    """Commands are frozen dataclasses compared by value."""
    command = RequestAdmin(timedelta(hours=1), "x")
    assert command == RequestAdmin(timedelta(hours=1), "x")
    with pytest.raises(AttributeError):
        command.justification = "y"  # type: ignore[misc]


# --- properties --------------------------------------------------------------------------------

whole_minutes = st.integers(min_value=1, max_value=MAX_DURATION // timedelta(minutes=1)).map(
    lambda minutes: timedelta(minutes=minutes)
)


def _random_case(text: str, flips: list[bool]) -> str:
    """Upper-case the characters of ``text`` where ``flips`` says so."""
    return "".join(c.upper() if flip else c for c, flip in zip(text, flips, strict=True))


@st.composite
def valid_durations(draw: st.DrawFn) -> tuple[str, timedelta]:
    """A duration string in any accepted form, with the timedelta it means."""
    duration = draw(whole_minutes)
    minutes = duration // timedelta(minutes=1)
    form = draw(st.sampled_from(["compact", "iso", "minutes", "hours", "days"]))
    if form == "compact":
        text = format_duration(duration)
    elif form == "iso":
        text = to_iso(duration)
    elif form == "minutes":
        text = f"{minutes} {draw(st.sampled_from(['m', 'min', 'mins', 'minute', 'minutes']))}"
    elif form == "hours":
        hours = draw(st.integers(min_value=1, max_value=24 * 365))
        duration = timedelta(hours=hours)
        text = f"{hours}{draw(st.sampled_from(['h', ' h', ' hr', ' hours', ' hour', 'hours']))}"
    else:
        days = draw(st.integers(min_value=1, max_value=365))
        duration = timedelta(days=days)
        text = f"{days}{draw(st.sampled_from(['d', ' d', ' day', ' days', 'days']))}"
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return _random_case(text, flips), duration


justifications = st.text(
    alphabet=st.one_of(
        st.characters(exclude_categories=("Cc", "Cs", "Co", "Cn", "Zl", "Zp")),
        st.sampled_from(" \t\n"),
    ),
    min_size=1,
    max_size=60,
).filter(lambda j: j == j.strip() and "<at" not in j.lower() and "<@" not in j)


@FAST
@given(whole_minutes)
def test_format_duration_and_to_iso_round_trip(duration: timedelta) -> None:
    """Any whole-minute duration up to 365 days survives format_duration and to_iso unchanged."""
    assert parse_duration(format_duration(duration)) == duration
    assert parse_duration(to_iso(duration)) == duration
    assert isodate.parse_duration(to_iso(duration)) == duration


duration_noise = st.text(alphabet="0123456789.,-+:PpTtDdHhMmSsWwYy hoursminutesday", max_size=20)


@FAST
@given(
    st.one_of(
        st.text(max_size=80),
        st.tuples(
            st.sampled_from(["", "/", "<at>Elevate</at> ", "<@U1> "]),
            st.sampled_from(
                ["request-admin", "request", "ELEVATE", "extend", "status", "help", "?"]
            ),
            duration_noise,
            st.text(max_size=20),
        ).map(lambda parts: f"{parts[0]}{parts[1]} {parts[2]} {parts[3]}"),
    )
)
def test_parse_returns_a_command_or_raises_usage_error(text: str) -> None:
    """For any text, parse returns a command or raises UsageError, never anything else."""
    result: Command | UsageError
    try:
        result = parse(text)
    except UsageError as error:
        result = error
    assert isinstance(result, Command | UsageError)
    if isinstance(result, UsageError):
        assert result.problem
        assert result.example


@FAST
@given(valid_durations(), justifications)
def test_parse_request_keeps_any_duration_and_justification(
    duration: tuple[str, timedelta], justification: str
) -> None:
    """Any valid duration and trimmed justification come back from /request-admin exactly."""
    text, expected = duration
    assert parse(f"/request-admin {text} {justification}") == RequestAdmin(expected, justification)
