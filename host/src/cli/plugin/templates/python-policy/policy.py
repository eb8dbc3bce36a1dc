"""{{name}}: denies shell commands that contain a blocked pattern, and counts the session's tool calls in its
policy state. Change ``evaluate`` to your rule; ``python3 -m unittest`` runs test_policy.py on your machine."""

from omnigent_policy import Decision, Event, abstain, allow, deny, params

NAME = "{{snake}}"
DESCRIPTION = "Deny shell commands containing a blocked pattern; count tool calls."
PARAMETERS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"blocked": {"type": "array", "items": {"type": "string"}, "description": "substrings to refuse"}},
}
DEFAULT_BLOCKED = ["rm -rf /", "git push --force"]


def init(p: dict) -> None:
    """Checks the parameters once per evaluation, and when a session declares the policy (a ValueError is shown)."""
    unknown = set(p) - {"blocked"}
    if unknown:
        raise ValueError(f"unknown parameter {sorted(unknown)[0]!r}; known: blocked")
    blocked = p.get("blocked", DEFAULT_BLOCKED)
    if not isinstance(blocked, list) or not all(isinstance(b, str) for b in blocked):
        raise ValueError("blocked must be a list of strings")


def evaluate(event: Event) -> Decision:
    if event.tool_call is None:
        return abstain()
    if event.tool_call == "shell":
        command = event.arg("command") or ""
        for pattern in params().get("blocked", DEFAULT_BLOCKED):
            if pattern in command:
                return deny(f"`{pattern}` is blocked in this session ({{snake}})")
    return allow().increment(event.key("tool_calls"))
