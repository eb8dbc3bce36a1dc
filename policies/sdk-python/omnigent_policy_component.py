"""The component side of a Python policy: implements the exports of ``omnigent:policy`` (describe, init, evaluate)
by calling the author's ``policy`` module. ``omnigent plugin build`` hands this module to componentize-py, which
generates the ``wit_world`` bindings it imports at build time; authors never edit either.
"""

import io
import json
import sys

# The component is built with every WASI import stubbed out (it may not touch the network, files or clocks, and
# then it imports nothing the host must link): a write to the real stdout would trap. `print` in a policy goes
# nowhere instead.
sys.stdout = io.StringIO()
sys.stderr = io.StringIO()

import omnigent_policy as sdk  # noqa: E402
import policy as author  # noqa: E402
import wit_world  # noqa: E402
from componentize_py_types import Err  # noqa: E402
from wit_world.imports import types as t  # noqa: E402

_PHASES = {
    t.Phase.REQUEST: sdk.REQUEST,
    t.Phase.TOOL_CALL: sdk.TOOL_CALL,
    t.Phase.TOOL_RESULT: sdk.TOOL_RESULT,
    t.Phase.RESPONSE: sdk.RESPONSE,
    t.Phase.LLM_REQUEST: sdk.LLM_REQUEST,
    t.Phase.LLM_RESPONSE: sdk.LLM_RESPONSE,
}
_ACTIONS = {
    "set": t.StateAction.SET,
    "increment": t.StateAction.INCREMENT,
    "delete": t.StateAction.DELETE,
    "append": t.StateAction.APPEND,
}


def _json(text, default):
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


class WitWorld(wit_world.WitWorld):
    def describe(self) -> t.Descriptor:
        return t.Descriptor(
            name=getattr(author, "NAME", "python_policy"),
            description=getattr(author, "DESCRIPTION", (author.__doc__ or "").strip().split("\n")[0]),
            params_schema=json.dumps(getattr(author, "PARAMETERS", {"type": "object"})),
        )

    def init(self, params: str) -> None:
        value = _json(params, None)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise Err(f"parameters must be an object, got {params}")
        sdk._set_params(value)
        hook = getattr(author, "init", None)
        if hook is not None:
            try:
                hook(value)
            except Exception as e:  # the author's refusal, quoted to whoever declared the policy
                raise Err(str(e) or type(e).__name__)

    def evaluate(self, event: t.Event) -> t.Decision:
        ctx = event.context
        usage = sdk.Usage(ctx.usage.input_tokens, ctx.usage.output_tokens, ctx.usage.total_tokens,
                          ctx.usage.total_cost_usd)
        mine = sdk.Event(
            phase=_PHASES[event.phase],
            target=event.target,
            data=_json(event.data, {}),
            request_data=_json(event.request_data, None),
            state=_json(ctx.state, {}),
            labels=_json(ctx.labels, {}),
            usage=usage,
            session_id=ctx.session_id,
            model=ctx.model,
            harness=ctx.harness,
            policy_name=ctx.policy_name,
        )
        try:
            decision = author.evaluate(mine)
            if not isinstance(decision, sdk.Decision):
                raise TypeError(f"evaluate must return a Decision (allow(), deny(...), ask(...), abstain()), "
                                f"got {decision!r}")
        except Exception as e:
            # As the host does for any failed evaluation: deny on the blocking phases, no opinion on the others —
            # here with the exception in the reason, so the author sees what went wrong.
            if mine.phase not in sdk.BLOCKING_PHASES:
                return t.Decision(verdict=t.Verdict_Abstain(), data=None, state_updates=[], set_labels=None)
            name = getattr(author, "NAME", "python_policy")
            return t.Decision(verdict=t.Verdict_Deny(f"the policy {name} failed: {type(e).__name__}: {e}"),
                              data=None, state_updates=[], set_labels=None)
        if decision.verdict == "allow":
            verdict = t.Verdict_Allow()
        elif decision.verdict == "deny":
            verdict = t.Verdict_Deny(decision.text)
        elif decision.verdict == "ask":
            verdict = t.Verdict_Ask(t.Elicitation(decision.text))
        else:
            verdict = t.Verdict_Abstain()
        return t.Decision(
            verdict=verdict,
            data=json.dumps(decision.data) if decision.rewritten else None,
            state_updates=[t.StateUpdate(key, _ACTIONS[action], json.dumps(value))
                           for action, key, value in decision.state_updates],
            set_labels=None if decision.labels is None else json.dumps(decision.labels),
        )
