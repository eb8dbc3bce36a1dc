"""Unit tests for policy.py, in plain Python: `python3 -m unittest`."""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "vendor" / "omnigent_policy"))

import omnigent_policy  # noqa: E402
import policy  # noqa: E402
from omnigent_policy import REQUEST, TOOL_CALL, Event  # noqa: E402


def shell(command: str) -> Event:
    return Event(phase=TOOL_CALL, target="shell", data={"name": "shell", "arguments": {"command": command}})


class PolicyTest(unittest.TestCase):
    def setUp(self):
        omnigent_policy._set_params({})

    def test_blocks_a_blocked_command(self):
        decision = policy.evaluate(shell("rm -rf / --no-preserve-root"))
        self.assertEqual(repr(decision), "deny: `rm -rf /` is blocked in this session ({{snake}})")

    def test_allows_and_counts_other_calls(self):
        omnigent_policy._set_params({"blocked": ["curl"]})
        decision = policy.evaluate(shell("ls -la"))
        self.assertEqual(decision.verdict, "allow")
        self.assertEqual(decision.state_updates, [("increment", "under_test.tool_calls", 1)])

    def test_refuses_unknown_parameters(self):
        with self.assertRaises(ValueError):
            policy.init({"blockd": []})

    def test_ignores_other_phases(self):
        self.assertEqual(policy.evaluate(Event(phase=REQUEST, data={"user_content": "hi"})).verdict, "abstain")


if __name__ == "__main__":
    unittest.main()
