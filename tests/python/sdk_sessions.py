"""The published Python SDK (omnigent-client) against a real omnigent server, unchanged.

Run by tests/sdk.rs with the server's URL as the only argument; exits non-zero (with a message) on any mismatch.
"""

import asyncio
import logging
import sys

import httpx
from omnigent_client import OmnigentClient


def guarded_config(name: str) -> dict:
    """A scripted agent that runs one shell command, which a policy asks a human to allow."""
    import tempfile
    return {
        "name": name,
        "executor": {"harness": "agent", "provider": "scripted",
                     "script": [{"text": "Checking. ", "tool_call": {"name": "shell", "arguments": {"command": "echo ran"}}},
                                {"text": "All done."}]},
        "tools": {"shell": {"type": "builtin"}},
        "os_env": {"cwd": tempfile.gettempdir()},
        "policies": {"ask_os": {"handler": "omnigent.policies.builtins.safety.ask_on_os_tools"}},
    }


def check(condition, message):
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


async def main(base: str) -> None:
    async with httpx.AsyncClient() as http:
        created = (await http.post(f"{base}/v1/sessions", json={"title": "from the sdk test"})).json()
    sid = created["id"]
    async with OmnigentClient(base_url=base) as client:
        seen = []
        heartbeats = []

        async def consume():
            async for event in client.sessions.stream(sid):
                if event.type == "session.heartbeat":
                    heartbeats.append(event)
                    continue
                seen.append(event.type)
                if event.type == "session.status" and event.status in ("idle", "failed"):
                    return event

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.5)  # let the stream register before the message goes in
        await client.sessions.post_event(sid, {"type": "message", "data": {"role": "user", "content": "hello"}})
        final = await asyncio.wait_for(task, 20)
        check(seen[:2] == ["session.input.consumed", "session.status"], f"typed events in order: {seen}")
        check(final.status == "failed", f"a session without a harness fails its turn: {final}")
        # The stream's first frame (the ready heartbeat) reaches SDK users as a typed event: its server_time is a
        # datetime the SDK parses (an integer made the SDK drop it, and SessionsChat.send wait a second for it).
        check(heartbeats and heartbeats[0].server_time is not None, f"a typed heartbeat: {heartbeats}")

        session = await client.sessions.get(sid)
        # The snapshot query parameters Omnigent's clients send are accepted.
        async with httpx.AsyncClient() as http:
            params = {"include_usage": "false", "include_live_status": "false", "include_liveness": "false",
                      "refresh_state": "true"}
            r = await http.get(f"{base}/v1/sessions/{sid}", params=params)
        check(r.status_code == 200, f"snapshot with Omnigent's query parameters: {r.status_code} {r.text}")
        check(session.status == "failed", f"snapshot status: {session.status}")
        check(session.title == "from the sdk test", f"snapshot title: {session.title}")
        items = await client.sessions.list_items(sid)
        check(len(items.data) == 1 and items.data[0]["content"][0]["text"] == "hello", f"items: {items}")
        listed = await client.sessions.list()
        check(any(s.id == sid for s in listed), f"list has the session: {listed}")
    print("ok")


asyncio.run(main(sys.argv[1]))


class Dropped(logging.Handler):
    """Records what the SDK's stream parsers skip (they log it at DEBUG): an event it drops is a mismatch."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.skipped = []

    def emit(self, record):
        if "Skipping unknown SSE event type" in record.getMessage():
            self.skipped.append(record.getMessage())


DROPPED = Dropped()
logging.getLogger("omnigent_client").addHandler(DROPPED)
logging.getLogger("omnigent_client").setLevel(logging.DEBUG)


async def legacy_session_path(base: str) -> None:
    """`client.session(model=…)` + `session.query(…)`: the path that needs POST /v1/responses."""
    config = {
        "name": "sdk-demo",
        "executor": {"harness": "agent", "provider": "scripted",
                     "script": [{"text": "First answer."}, {"text": "Second answer, streamed."}]},
    }
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{base}/v1/agents", json={"config": config})
        check(r.status_code == 201, f"register the agent: {r.status_code} {r.text}")
    async with OmnigentClient(base_url=base) as client:
        session = client.session(model="sdk-demo")
        result = await session.query("hello")
        check(result.text == "First answer.", f"query text: {result.text!r}")
        check(result.files == [], f"query files: {result.files}")
        stream = await session.query("and again", stream=True)
        chunks = [chunk async for chunk in stream]
        check(len(chunks) >= 1, f"streamed as chunks: {chunks}")
        check("".join(chunks) == "Second answer, streamed.", f"stream text: {chunks}")
        # Both turns went to one session (previous_response_id threads them).
        first = session.current_response_id
        listed = await client.sessions.list(agent_name="sdk-demo")
        check(len(listed) == 1, f"one session for the conversation: {listed}")
        items = await client.sessions.list_items(listed[0].id)
        check(len(items.data) == 4, f"two exchanges in one transcript: {items}")
        check(first is not None and first.startswith("resp_"), f"response id: {first}")
    check(DROPPED.skipped == [], f"the SDK dropped no event: {DROPPED.skipped}")
    print("ok (legacy session path)")


asyncio.run(legacy_session_path(sys.argv[1]))


async def approval_path(base: str) -> None:
    """A policy asks; the SDK's stream yields a typed elicitation request and its resolve call answers it."""
    config = guarded_config("sdk-guarded")
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{base}/v1/sessions", json={"config": config})
        check(r.status_code == 201, f"create: {r.status_code} {r.text}")
    sid = r.json()["id"]
    async with OmnigentClient(base_url=base) as client:
        asked = []

        async def consume():
            async for event in client.sessions.stream(sid):
                if event.type == "response.elicitation_request":
                    asked.append(event)
                    snapshot = await client.sessions.get(sid)
                    check(snapshot.status == "paused", f"paused while asking: {snapshot.status}")
                    await client.sessions.resolve_elicitation(sid, event.elicitation_id, {"action": "accept"})
                if event.type == "session.status" and event.status in ("idle", "failed"):
                    return event

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.5)
        await client.sessions.post_event(sid, {"type": "message", "data": {"role": "user", "content": "go"}})
        final = await asyncio.wait_for(task, 20)
        check(len(asked) == 1, f"one typed elicitation request: {asked}")
        check(asked[0].params.policy_name == "ask_os", f"its policy: {asked[0].params}")
        check(final.status == "idle", f"the accepted turn completed: {final}")
        items = await client.sessions.list_items(sid)
        outputs = [i for i in items.data if i["type"] == "function_call_output"]
        check(len(outputs) == 1 and "ran" in outputs[0]["output"], f"the tool ran once: {outputs}")
    print("ok (approval path)")


asyncio.run(approval_path(sys.argv[1]))


async def settings_path(base: str) -> None:
    """The SDK's session setters (PATCH) and the list's archive and order options, read back through its models."""
    async with httpx.AsyncClient() as http:
        created = (await http.post(f"{base}/v1/sessions", json={"title": "settings via the sdk"})).json()
        other = (await http.post(f"{base}/v1/sessions", json={"title": "stays listed"})).json()
    sid = created["id"]
    async with OmnigentClient(base_url=base) as client:
        s = await client.sessions.set_reasoning_effort(sid, reasoning_effort="high")
        check(s.reasoning_effort == "high", f"reasoning effort: {s.reasoning_effort}")
        s = await client.sessions.set_reasoning_effort(sid, reasoning_effort=None)
        check(s.reasoning_effort is None, f"reasoning effort cleared: {s.reasoning_effort}")
        s = await client.sessions.set_model_override(sid, model_override="gpt-next", silent=True)
        check(s.model_override == "gpt-next", f"model override: {s.model_override}")
        s = await client.sessions.set_model_override(sid, model_override=None)
        check(s.model_override is None, f"model override cleared: {s.model_override}")
        s = await client.sessions.set_external_session_id(sid, external_session_id="ext-1")
        check(s.external_session_id == "ext-1", f"external id: {s.external_session_id}")
        s = await client.sessions.set_archived(sid, archived=True)
        check(s.archived is True, f"archived: {s.archived}")
        listed = [x.id for x in await client.sessions.list()]
        check(sid not in listed and other["id"] in listed, f"archived sessions leave the default list: {listed}")
        everything = await client.sessions.list(include_archived=True)
        check(any(x.id == sid and x.archived for x in everything), f"include_archived shows it: {everything}")
        await client.sessions.set_archived(sid, archived=False)
        recent = await client.sessions.list(sort_by="updated_at")
        check(recent[0].id == sid, f"sort_by=updated_at puts the last changed first: {[x.id for x in recent]}")
        snapshot = await client.sessions.get(sid)
        check(snapshot.runner_id is not None, f"bound to this server's own runner: {snapshot.runner_id}")
        check(snapshot.agent_id not in (None, "None"), f"an inline-config session has an agent: {snapshot.agent_id}")

    # A sub-agent's child, finished: subtree_busy reads the task vocabulary (completed), so it is False.
    config = {
        "name": "sdk-parent",
        "executor": {"harness": "agent", "provider": "scripted",
                     "script": [{"tool_call": {"name": "helper", "arguments": {"task": "say hi"}}},
                                {"text": "The helper said hi."}]},
        "tools": {"helper": {"type": "agent", "description": "Says hi.",
                             "executor": {"harness": "agent", "provider": "scripted",
                                          "script": [{"text": "hi"}]}}},
    }
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{base}/v1/sessions", json={"config": config})
        check(r.status_code == 201, f"create the parent: {r.status_code} {r.text}")
    parent = r.json()["id"]
    async with OmnigentClient(base_url=base) as client:
        async def consume():
            async for event in client.sessions.stream(parent):
                if event.type == "session.status" and event.status in ("idle", "failed"):
                    return event

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.5)
        await client.sessions.post_event(parent, {"type": "message", "data": {"role": "user", "content": "go"}})
        final = await asyncio.wait_for(task, 20)
        check(final.status == "idle", f"the parent's turn: {final}")
        children = await client.sessions.child_sessions(parent)
        check(len(children.data) == 1, f"one child: {children}")
        busy = await client.sessions.subtree_busy(parent)
        check(busy is False, f"a finished child is not busy: {children}")
    print("ok (settings path)")


asyncio.run(settings_path(sys.argv[1]))


async def every_frame_is_an_omnigent_event(base: str) -> None:
    """Every frame of a busy session's stream — a turn with a tool and an approval, a file, a comment, labels, a
    policy added, archived — is one the SDK's own event union accepts: nothing is silently dropped."""
    from omnigent_client._sessions import _SERVER_STREAM_EVENT_ADAPTER
    config = guarded_config("sdk-busy")
    async with httpx.AsyncClient(timeout=20) as http:
        sid = (await http.post(f"{base}/v1/sessions", json={"config": config})).json()["id"]
        s = f"{base}/v1/sessions/{sid}"
        await http.post(f"{s}/events", json={"type": "message", "data": {"role": "user", "content": "go"}})
        for _ in range(100):
            snap = (await http.get(s)).json()
            if snap["pending_elicitations"]:
                break
            await asyncio.sleep(0.1)
        eid = snap["pending_elicitations"][0]["elicitation_id"]
        await http.post(f"{s}/elicitations/{eid}/resolve", json={"action": "accept"})
        for _ in range(100):
            if (await http.get(s)).json()["status"] == "idle":
                break
            await asyncio.sleep(0.1)
        await http.post(f"{s}/resources/files", files={"file": ("notes.txt", b"hello\n", "text/plain")})
        await http.post(f"{s}/comments", json={"path": "notes.txt", "body": "why?"})
        await http.patch(s, json={"labels": {"team": "a"}, "archived": True})
        await http.post(f"{s}/policies", json={"name": "cap", "handler": "omnigent.policies.builtins.safety.max_tool_calls_per_session", "factory_params": {"limit": 5}})
        await http.patch(s, json={"title": "busy"})  # last, and an event Omnigent's clients know
        last = (await http.get(s)).json()["last_seq"]
        frames = []
        async with http.stream("GET", f"{s}/stream", params={"after": 0}) as r:
            event = None
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event:
                    data = json.loads(line[6:])
                    frames.append(data)
                    if (data.get("sequence_number") or 0) >= last or len(frames) > 500:
                        break
    # Our own events (comments, labels, policy state, archive) are left out of the stream Omnigent's clients open.
    # `paused` is this server's fourth state by design (the seed's): Omnigent's status enum lacks it, so the SDK skips
    # that one frame; its users learn the session waits from the elicitation request and the snapshot (README).
    rejected = []
    for data in frames:
        if data.get("type") == "session.status" and data.get("status") == "paused":
            continue
        try:
            _SERVER_STREAM_EVENT_ADAPTER.validate_python(data)
        except ValueError as e:
            rejected.append((data.get("type"), str(e)[:200]))
    check(not rejected, f"frames the SDK would drop: {rejected}")
    types = {d["type"] for d in frames}
    for wanted in ("response.elicitation_request", "response.output_item.done", "session.resource.created", "session.title"):
        check(wanted in types, f"{wanted} on the stream: {sorted(types)}")
    print(f"ok (all {len(frames)} frames are Omnigent events)")


import json  # noqa: E402

asyncio.run(every_frame_is_an_omnigent_event(sys.argv[1]))


def bundle_bytes(files: dict) -> bytes:
    """A gzipped agent tarball, as `omnigent` packs a bundle directory (`tar.add(dir, arcname=".")`)."""
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


async def bundle_path(base: str) -> None:
    """Sessions from uploaded agent bundles: `sessions.create(bundle)` and the `sessions_chat(bundle)` helper."""
    single = bundle_bytes({
        "reviewer.yaml": "name: bundled-reviewer\nprompt: Review.\nexecutor:\n  harness: agent\n  provider: scripted\n"
                         "  script: [{text: Bundled answer.}]\n",
        "skills/style/SKILL.md": "---\nname: style\ndescription: House style.\n---\nShort names.\n",
    })
    async with OmnigentClient(base_url=base) as client:
        session = await client.sessions.create(single, title="from a bundle", labels={"team": "a"})
        check(session.title == "from a bundle", f"bundle session title: {session.title}")
        check(session.agent_name == "bundled-reviewer", f"bundle session agent: {session.agent_name}")
        check(session.labels == {"team": "a"}, f"bundle session labels: {session.labels}")
        chat = await client.sessions_chat(single)
        texts = []
        async for event in chat.send("hello"):
            if event.type == "response.output_text.delta":
                texts.append(event.delta)
        check("".join(texts) == "Bundled answer.", f"the bundled agent answered: {texts}")
        # A client-side tool (`type: function`, runtime client) run by the SDK's own callable.
        with_tool = bundle_bytes({
            "looker.yaml": "name: looker\nprompt: Look things up.\nexecutor:\n  harness: agent\n  provider: scripted\n"
                           "  script:\n    - {text: 'Looking. ', tool_call: {name: lookup, arguments: {q: alpha}}}\n"
                           "    - {text: Looked up.}\n"
                           "tools:\n  lookup:\n    type: function\n    runtime: client\n    description: Look a word up.\n"
                           "    parameters: {type: object, properties: {q: {type: string}}}\n",
        })
        seen_calls = []

        def lookup(call) -> str:
            seen_calls.append((call.name, call.arguments))
            return f"{call.arguments['q']} means the first"

        chat = await client.sessions_chat(with_tool, tool_callables={"lookup": lookup})
        texts = []
        async for event in chat.send("what is alpha?"):
            if event.type == "response.output_text.delta":
                texts.append(event.delta)
        check(seen_calls == [("lookup", {"q": "alpha"})], f"the SDK ran the client tool once: {seen_calls}")
        check("".join(texts).endswith("Looked up."), f"the turn went on after the tool: {texts}")
        items = await client.sessions.list_items(chat.session_id)
        outputs = [i for i in items.data if i["type"] == "function_call_output"]
        check([o["output"] for o in outputs] == ["alpha means the first"], f"the tool's answer: {outputs}")
        spec = bundle_bytes({
            "config.yaml": "spec_version: 1\nname: spec-agent\nexecutor:\n  type: omnigent\n  config: {harness: agent}\n"
                           "  provider: scripted\n  script: [{text: Spec answer.}]\n",
            "AGENTS.md": "You follow the spec.",
        })
        session = await client.sessions.create(spec)
        check(session.agent_name == "spec-agent", f"config.yaml bundle agent: {session.agent_name}")
        from omnigent_client import OmnigentError
        try:
            await client.sessions.create(b"not a tarball")
            check(False, "a broken bundle is refused")
        except OmnigentError as e:
            check("invalid agent bundle" in str(e), f"a broken bundle says why: {e}")
        # Too large: the server reads the streamed body to its end and answers 413 (no reset connection).
        try:
            await client.sessions.create(b"x" * (30 << 20))
            check(False, "a bundle over the limit is refused")
        except OmnigentError as e:
            check("larger than this server accepts" in str(e), f"an oversized bundle gets the 413's reason: {e!r}")
    print("ok (bundle path)")


asyncio.run(bundle_path(sys.argv[1]))
