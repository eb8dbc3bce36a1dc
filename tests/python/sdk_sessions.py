"""The published Python SDK (omnigent-client) against a real omnigent server, unchanged.

Run by tests/sdk.rs with the server's URL as the only argument; exits non-zero (with a message) on any mismatch.
"""

import asyncio
import sys

import httpx
from omnigent_client import OmnigentClient


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

        async def consume():
            async for event in client.sessions.stream(sid):
                seen.append(event.type)
                if event.type == "session.status" and event.status in ("idle", "failed"):
                    return event

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.5)  # let the stream register before the message goes in
        await client.sessions.post_event(sid, {"type": "message", "data": {"role": "user", "content": "hello"}})
        final = await asyncio.wait_for(task, 20)
        check(seen[:2] == ["session.input.consumed", "session.status"], f"typed events in order: {seen}")
        check(final.status == "failed", f"a session without a harness fails its turn: {final}")

        session = await client.sessions.get(sid)
        check(session.status == "failed", f"snapshot status: {session.status}")
        check(session.title == "from the sdk test", f"snapshot title: {session.title}")
        items = await client.sessions.list_items(sid)
        check(len(items.data) == 1 and items.data[0]["content"][0]["text"] == "hello", f"items: {items}")
        listed = await client.sessions.list()
        check(any(s.id == sid for s in listed), f"list has the session: {listed}")
    print("ok")


asyncio.run(main(sys.argv[1]))
