"""Write omnigent policies in Python.

A policy judges one action of a session — a user request, a tool call or its result, a model call or its
response — and answers allow, deny, ask a human, or abstain. Your module (``policy.py``) defines::

    NAME = "my_guard"                       # how GET /v1/policy-registry and `omnigent plugin check` name it
    DESCRIPTION = "What it does, in one line."
    PARAMETERS = {"type": "object"}         # JSON Schema of its parameters (factory_params)

    def init(params: dict) -> None:         # optional: raise ValueError to refuse bad parameters
        ...

    def evaluate(event: Event) -> Decision: # required
        ...

``omnigent plugin build`` turns it into a WebAssembly component with componentize-py. Every evaluation runs in a
fresh instance (``init`` first, then ``evaluate``) under a memory cap and a deadline, with no files, clock,
environment or network: state that must outlive a call goes into ``Decision.set / increment / append / delete``,
and the next event shows it in ``event.state``. A policy that raises, runs too long or allocates too much denies on
the blocking phases (``request``, ``tool_call``) and is ignored on the others.

This module is plain Python: your unit tests import it and call ``evaluate`` directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

__all__ = [
    "Event", "Decision", "Usage", "allow", "deny", "ask", "abstain", "params", "matches",
    "REQUEST", "TOOL_CALL", "TOOL_RESULT", "RESPONSE", "LLM_REQUEST", "LLM_RESPONSE", "BLOCKING_PHASES",
]

WIT_PACKAGE = "omnigent:policy@0.1.0"

#: The phases, as session configs and logs spell them.
REQUEST = "request"
TOOL_CALL = "tool_call"
TOOL_RESULT = "tool_result"
RESPONSE = "response"
LLM_REQUEST = "llm_request"
LLM_RESPONSE = "llm_response"
#: Phases on which a failed evaluation denies.
BLOCKING_PHASES = (REQUEST, TOOL_CALL)

_params: dict = {}


def params() -> dict:
    """The parameters this policy was declared with (its ``factory_params``)."""
    return _params


def _set_params(value: dict) -> None:
    global _params
    _params = value


@dataclass
class Usage:
    """Spend of the session so far (completed turns plus the turn in progress)."""
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    #: 0 when the model's price is unknown.
    total_cost_usd: float = 0.0


@dataclass
class Event:
    """One action to judge. ``data`` is the phase's payload:

    - ``request``: ``{"user_content": "..."}``
    - ``tool_call``: ``{"name": "...", "arguments": {...}}`` (``target`` is the tool)
    - ``tool_result``: ``{"result": "...", "is_error": bool}``; ``request_data`` is the call
    - ``response``: ``{"text": "..."}``
    - ``llm_request``: ``{"model", "messages_count", "tools_count", "last_user_message"}``
    - ``llm_response``: ``{"model", "text_preview", "tool_calls_count", "usage"}``
    """
    phase: str
    target: Optional[str] = None
    data: Any = field(default_factory=dict)
    request_data: Any = None
    state: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    session_id: str = "conv_test"
    model: str = "test-model"
    harness: str = "agent"
    policy_name: str = "under_test"

    @property
    def tool_call(self) -> Optional[str]:
        """The tool, when this is a tool call."""
        return self.target if self.phase == TOOL_CALL else None

    @property
    def tool_result(self) -> Optional[str]:
        """The tool, when this is a tool result."""
        return self.target if self.phase == TOOL_RESULT else None

    @property
    def arguments(self) -> dict:
        """The tool call's arguments (on ``tool_call``, and on ``tool_result`` from the call); ``{}`` elsewhere."""
        call = self.data if self.phase == TOOL_CALL else self.request_data if self.phase == TOOL_RESULT else None
        args = call.get("arguments") if isinstance(call, dict) else None
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                args = None
        return args if isinstance(args, dict) else {}

    def arg(self, name: str) -> Any:
        """One argument of the tool call (``command`` of a shell call, ``path`` of a file tool…), or None."""
        return self.arguments.get(name)

    @property
    def text(self) -> Optional[str]:
        """The user's message (``request``), the tool's output (``tool_result``), the answer (``response``)."""
        key = {REQUEST: "user_content", TOOL_RESULT: "result", RESPONSE: "text", LLM_RESPONSE: "text_preview"}.get(
            self.phase)
        value = self.data.get(key) if key and isinstance(self.data, dict) else None
        return None if value is None else value if isinstance(value, str) else json.dumps(value)

    @property
    def is_error(self) -> bool:
        """Whether a tool result is an error."""
        return self.phase == TOOL_RESULT and isinstance(self.data, dict) and bool(self.data.get("is_error"))

    def key(self, name: str) -> str:
        """A state key private to this policy declaration: ``<policy name>.<name>``."""
        return f"{self.policy_name}.{name}"

    def counter(self, key: str) -> float:
        """A number in the state (0 when absent), e.g. one kept with ``Decision.increment``."""
        value = self.state.get(key)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


class Decision:
    """A verdict plus what to change. Build one with ``allow()``, ``deny(reason)``, ``ask(message)`` or
    ``abstain()``, then chain state changes: ``allow().increment(event.key("calls"))``."""

    def __init__(self, verdict: str, text: str = "") -> None:
        self.verdict = verdict
        #: The deny reason or the question asked.
        self.text = text
        self.data: Any = None
        self.rewritten = False
        self.state_updates: list = []
        self.labels: Optional[dict] = None

    def __repr__(self) -> str:
        return f"{self.verdict}: {self.text}" if self.text else self.verdict

    def set(self, key: str, value: Any) -> "Decision":
        """``state[key] = value``."""
        self.state_updates.append(("set", key, value))
        return self

    def increment(self, key: str, by: float = 1) -> "Decision":
        """``state[key] += by`` (a missing key counts as 0)."""
        self.state_updates.append(("increment", key, by))
        return self

    def append(self, key: str, value: Any) -> "Decision":
        """Appends to the list at ``key`` (a missing key is an empty list)."""
        self.state_updates.append(("append", key, value))
        return self

    def delete(self, key: str) -> "Decision":
        """Removes ``key`` from the state."""
        self.state_updates.append(("delete", key, None))
        return self

    def label(self, key: str, value: Any) -> "Decision":
        """Sets a session label (None removes it)."""
        self.labels = dict(self.labels or {}, **{key: value})
        return self

    def rewrite(self, data: Any) -> "Decision":
        """Replaces the event's payload for the next policy and, if the chain allows, for the session — e.g. a
        tool result with secrets redacted (``{"result": "...", "is_error": False}``)."""
        self.data = data
        self.rewritten = True
        return self


def allow() -> Decision:
    """Let the action happen."""
    return Decision("allow")


def abstain() -> Decision:
    """No opinion: the chain goes on as if this policy allowed."""
    return Decision("abstain")


def deny(reason: str) -> Decision:
    """Stop the action; the reason reaches the model (it can try something else) and the user."""
    return Decision("deny", reason)


def ask(message: str) -> Decision:
    """Pause the session until a human accepts (allow) or declines (deny). State changes on this decision apply
    only when the human accepts."""
    return Decision("ask", message)


def matches(pattern: str, name: str) -> bool:
    """``*`` at the end of a pattern matches any suffix; otherwise the names must be equal."""
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else pattern == name
