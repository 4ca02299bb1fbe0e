"""The one error tree of Elevate.  Every failure a user can meet is one of these.

    ElevateError                  base; ``user_message`` is one clear sentence for chat
    ├── UsageError                a command that could not be parsed (what was wrong + example)
    ├── ConfigError               a missing or invalid setting (names the variable)
    ├── SignInRequired            the chat user has no linked Entra account (carries the link)
    ├── SignInError               a sign-in link replayed, expired, foreign or failed
    ├── PolicyViolation           the request breaks the access policy (duration, justification,
    │                             requestor not allowed)
    ├── AlreadyOpen               an open request or active assignment exists (carries it)
    ├── NotFound                  no such request / assignment / user
    ├── NotAllowed                the actor may not do this (not an approver, own request, …)
    ├── AlreadyDecided            someone decided first (carries who and what)
    └── GraphError                Microsoft Graph failed
        ├── GraphUnavailable      unreachable, timed out or 5xx: try again later
        ├── GraphThrottled        429 after the SDK's retries
        ├── GraphRejected         4xx validation error (status, code, message)
        ├── GraphForbidden        403: the bot or user lacks a permission or role
        └── GraphAuthError        401 or a token that could not be obtained

Graph's ``ODataError`` is mapped into this tree in one place (``bot.graph.errors``); callers
branch on the class (i.e. the HTTP status), never on Graph's message text.
"""

from __future__ import annotations


class ElevateError(Exception):
    """Base of all Elevate errors; ``user_message`` is safe to show in chat."""

    default_message = "Something went wrong. Please try again in a minute."

    def __init__(self, user_message: str | None = None, *, detail: str | None = None) -> None:
        self.user_message = user_message or self.default_message
        self.detail = detail
        super().__init__(self.user_message if detail is None else f"{self.user_message} ({detail})")


class UsageError(ElevateError):
    """A command that could not be parsed; ``example`` shows a correct one."""

    def __init__(self, problem: str, example: str) -> None:
        self.problem = problem
        self.example = example
        super().__init__(f"{problem} Try: `{example}`")


class ConfigError(ElevateError):
    """A setting is missing or invalid; the message names the variable."""


class SignInRequired(ElevateError):
    """The chat user must sign in first; ``url`` is their one-time sign-in link."""

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__("Please sign in with Microsoft first; your command will run right after.")


class SignInError(ElevateError):
    """A sign-in attempt failed (link replayed, expired, foreign, or the authority refused)."""


class PolicyViolation(ElevateError):
    """The request breaks the access package policy."""


class AlreadyOpen(ElevateError):
    """There is already an open request or an active assignment."""


class NotFound(ElevateError):
    """The request, assignment or user does not exist."""


class NotAllowed(ElevateError):
    """The acting user may not do this."""


class AlreadyDecided(ElevateError):
    """Another approver decided first."""


class GraphError(ElevateError):
    """Microsoft Graph failed; ``status`` and ``code`` are for logs, not for branching."""

    default_message = "Microsoft Entra could not be reached. Please try again in a minute."

    def __init__(
        self,
        user_message: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        super().__init__(user_message, detail=detail)


class GraphUnavailable(GraphError):
    """Graph is unreachable, timed out or answered 5xx: nothing was changed, try again."""


class GraphThrottled(GraphError):
    """Graph kept answering 429."""

    default_message = "Microsoft Entra is busy right now. Please try again in a minute."


class GraphRejected(GraphError):
    """Graph refused the request as invalid (4xx)."""

    default_message = "Microsoft Entra refused the request."


class GraphForbidden(GraphError):
    """The bot or the user lacks a permission or role Graph requires."""

    default_message = "Elevate is not allowed to do that in Microsoft Entra. Ask your IT admin."


class GraphAuthError(GraphError):
    """A token could not be obtained or was refused."""

    default_message = "Elevate could not authenticate to Microsoft Entra. Ask your IT admin."
