//! The session API over real HTTP against an in-process server on 127.0.0.1:0, on both backends.

use std::time::Duration;

use futures::StreamExt;
use omnigent::ids::SessionId;
use omnigent::server::{Server, ServerOptions};
use omnigent::session::{Input, Sessions};
use omnigent::store::Store;
use omnigent_testkit::{Api, Sse, TestDb, databases};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct TestServer {
    api: Api,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    async fn start(db: &TestDb, options: ServerOptions) -> TestServer {
        let store = Store::connect(&db.url).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shutdown = CancellationToken::new();
        let server = Server::new(store, listener, options, shutdown.clone()).await.unwrap();
        let api = Api::new(format!("http://{}", server.local_addr()));
        let task = tokio::spawn(server.run());
        TestServer { api, shutdown, task }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn msg(text: &str) -> Value {
    json!({"type": "message", "data": {"role": "user", "content": text}})
}

const HARNESS_CONFIG: &str =
    r#"{"name": "helper", "executor": {"harness": "/nonexistent/helper.wasm", "model": "gpt-test"}}"#;

#[tokio::test]
async fn session_lifecycle_create_list_snapshot_patch_delete() {
    for db in databases().await {
        let srv = TestServer::start(&db, ServerOptions::default()).await;
        let api = &srv.api;
        let (status, created) = api
            .post("/v1/sessions", json!({"title": "debug auth", "labels": {"env": "test"}, "config": serde_json::from_str::<Value>(HARNESS_CONFIG).unwrap()}))
            .await;
        assert_eq!(status, 201, "{}: {created}", db.label);
        let id = created["id"].as_str().unwrap().to_string();
        assert!(id.starts_with("conv_") && id.len() == 37, "{id}");
        assert_eq!(created["status"], "idle");
        assert_eq!(created["agent_name"], "helper");
        assert_eq!(created["harness"], "/nonexistent/helper.wasm");
        assert_eq!(created["llm_model"], "gpt-test");
        assert_eq!(created["labels"], json!({"env": "test"}));
        assert_eq!(created["pending_elicitations"], json!([]));

        // Bare hex is accepted on input.
        let (status, snap) = api.get(&format!("/v1/sessions/{}", &id[5..])).await;
        assert_eq!(status, 200);
        assert_eq!(snap["id"], id.as_str());

        let (_, list) = api.get("/v1/sessions").await;
        assert_eq!(list["object"], "list");
        assert_eq!(list["data"][0]["id"], id.as_str());
        assert_eq!(list["first_id"], id.as_str());

        let (status, patched) = api
            .call(
                Method::PATCH,
                &format!("/v1/sessions/{id}"),
                Some(json!({"title": "renamed", "labels": {"env": null, "team": "core"}})),
            )
            .await;
        assert_eq!(status, 200, "{patched}");
        assert_eq!(patched["title"], "renamed");
        assert_eq!(patched["labels"], json!({"team": "core"}));
        let (_, patched) = api.call(Method::PATCH, &format!("/v1/sessions/{id}"), Some(json!({"title": null}))).await;
        assert_eq!(patched["title"], Value::Null);
        assert_eq!(patched["labels"], json!({"team": "core"}), "absent labels stay as they are");

        let (status, deleted) = api.call(Method::DELETE, &format!("/v1/sessions/{id}"), None).await;
        assert_eq!(status, 200);
        assert_eq!(deleted, json!({"id": id, "object": "conversation.deleted", "deleted": true}));
        let (status, err) = api.get(&format!("/v1/sessions/{id}")).await;
        assert_eq!(status, 404);
        assert_eq!(err["error"]["code"], "not_found");
        srv.stop().await;
    }
}

#[tokio::test]
async fn a_message_is_persisted_and_a_turn_without_a_harness_fails_with_a_reason() {
    for db in databases().await {
        let srv = TestServer::start(&db, ServerOptions::default()).await;
        let api = &srv.api;
        // Through initial_items: the item lands and the turn fails before any model runs.
        let (status, created) = api.post("/v1/sessions", json!({"title": "x", "initial_items": [msg("hello")]})).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["status"], "failed", "{}", db.label);
        assert_eq!(created["last_task_error"]["code"], "no_harness");
        assert_eq!(created["items"][0]["type"], "message");
        assert_eq!(created["items"][0]["data"]["content"][0]["text"], "hello");
        let id = created["id"].as_str().unwrap();

        let cfg: Value = serde_json::from_str(HARNESS_CONFIG).unwrap();
        let other = api.create(json!({"config": cfg})).await;
        let mut sse = Sse::open(&format!("{}/v1/sessions/{other}/stream", api.base), &[]).await;
        let ack = api.message(&other, "hi there").await;
        // The turn starts, then fails when the harness cannot be loaded.
        let statuses = sse.statuses_until_settled().await;
        assert_eq!(statuses, vec!["running", "failed"], "{}", db.label);
        assert_eq!(ack["queued"], true);
        let item_id = ack["item_id"].as_str().unwrap();
        let (_, items) = api.get(&format!("/v1/sessions/{other}/items")).await;
        let item = &items["data"][0];
        assert_eq!(item["id"], item_id);
        assert_eq!(item["role"], "user", "flat items spread data: {item}");
        assert_eq!(item["content"][0]["text"], "hi there");
        let (_, snap) = api.get(&format!("/v1/sessions/{other}")).await;
        assert_eq!(snap["status"], "failed");
        assert_eq!(snap["last_task_error"]["code"], "harness_not_found");
        assert!(snap["last_task_error"]["message"].as_str().unwrap().contains("/nonexistent/helper.wasm"));

        let (_, failed) = api.get("/v1/sessions?status=failed").await;
        assert_eq!(failed["data"].as_array().unwrap().len(), 2);
        let (_, idle) = api.get("/v1/sessions?status=idle").await;
        assert_eq!(idle["data"].as_array().unwrap().len(), 0);

        // Interrupting an idle session is a no-op; approving nothing is a 404.
        let (status, ack) = api.post(&format!("/v1/sessions/{id}/events"), json!({"type": "interrupt"})).await;
        assert_eq!((status, ack), (202, json!({"queued": false})));
        let (status, err) = api
            .post(
                &format!("/v1/sessions/{id}/events"),
                json!({"type": "approval", "data": {"elicitation_id": "elicit_x", "action": "accept"}}),
            )
            .await;
        assert_eq!(status, 404);
        assert!(err["error"]["message"].as_str().unwrap().contains("elicit_x"));
        srv.stop().await;
    }
}

#[tokio::test]
async fn bad_input_gets_a_4xx_that_says_what_was_wrong() {
    let db = omnigent_testkit::sqlite_db();
    let srv = TestServer::start(&db, ServerOptions { max_body_bytes: 64 * 1024, ..ServerOptions::default() }).await;
    let api = &srv.api;
    let id = api.create(json!({})).await;
    let events = format!("/v1/sessions/{id}/events");

    let raw = |body: &'static str, ctype: &'static str| {
        let api = api.clone();
        let events = events.clone();
        async move {
            let r = api.req(Method::POST, &events).header("content-type", ctype).body(body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let cases: Vec<(u16, Value, &str)> = vec![
        {
            let (s, v) = raw("{\"type\": ", "application/json").await;
            (s, v, "invalid JSON body")
        },
        {
            let (s, v) = raw("{\"type\":\"message\"}", "text/plain").await;
            (s, v, "Content-Type: application/json")
        },
        {
            let (s, v) =
                raw("{\"type\":\"message\",\"data\":{\"content\":\"x\"},\"bogus\":1}", "application/json").await;
            (s, v, "unknown field `bogus`")
        },
        {
            let (s, v) = api.post(&events, json!({"type": "dance"})).await;
            (s, v, "allowed types: message, function_call_output, interrupt, approval")
        },
        {
            let (s, v) = api.post(&events, json!({"type": "message", "data": {"content": []}})).await;
            (s, v, "content is empty")
        },
        {
            let (s, v) = api.post(&events, json!({"type": "message", "data": "hi"})).await;
            (s, v, "'data' must be a JSON object")
        },
        {
            let (s, v) = api.post("/v1/sessions", json!({"config": [1]})).await;
            (s, v, "'config' must be a JSON object")
        },
        {
            let (s, v) = api.post("/v1/sessions", json!({"config": {"name": "x"}})).await;
            (s, v, "config: missing field `executor`")
        },
        {
            let (s, v) =
                api.post("/v1/sessions", json!({"config": {"name": "x", "executor": {"harness": "gpt"}}})).await;
            (s, v, "neither a builtin harness")
        },
        {
            let (s, v) = api.post("/v1/sessions", json!({"initial_items": [{"type": "nope"}]})).await;
            (s, v, "initial_items[0]")
        },
        {
            let (s, v) = api.post("/v1/sessions", json!({"agent_id": "abc"})).await;
            (s, v, "no agent 'abc' (register one with POST /v1/agents)")
        },
        {
            let (s, v) = api.get("/v1/sessions?limit=0").await;
            (s, v, "limit must be between 1 and 1000")
        },
        {
            let (s, v) = api.get("/v1/sessions?order=sideways").await;
            (s, v, "order must be 'asc' or 'desc'")
        },
        {
            let (s, v) = api.get("/v1/sessions?status=sleeping").await;
            (s, v, "status must be one of")
        },
        {
            let (s, v) = api.get("/v1/sessions?after=conv_00000000000000000000000000000000").await;
            (s, v, "unknown pagination cursor")
        },
        {
            let (s, v) = api.get("/v1/sessions?colour=red").await;
            (s, v, "unknown field `colour`")
        },
        {
            let (s, v) = api.get(&format!("/v1/sessions/{}", SessionId::new())).await;
            (s, v, "no session conv_")
        },
        {
            let (s, v) = api.get("/v1/sessions/not-an-id").await;
            (s, v, "not a session id")
        },
        {
            let (s, v) = api.post(&format!("/v1/sessions/{}/events", SessionId::new()), msg("x")).await;
            (s, v, "no session conv_")
        },
        {
            let (s, v) = api.get(&format!("/v1/sessions/{id}/items?after=msg_nope")).await;
            (s, v, "unknown pagination cursor")
        },
        {
            let (s, v) = api.get("/v1/nothing-here").await;
            (s, v, "no route for GET /v1/nothing-here")
        },
        {
            let (s, v) = api.call(Method::PUT, "/v1/sessions", None).await;
            (s, v, "PUT is not allowed")
        },
        {
            let big = "x".repeat(100 * 1024);
            let (s, v) = api.post(&events, json!({"type": "message", "data": {"content": big}})).await;
            (s, v, "larger than this server accepts")
        },
    ];
    let expected_status = [
        400, 415, 400, 400, 400, 400, 400, 400, 400, 400, 404, 400, 400, 400, 400, 400, 404, 404, 404, 400, 404, 405,
        413,
    ];
    for ((status, body, needle), want) in cases.iter().zip(expected_status) {
        assert_eq!(*status, want, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_else(|| panic!("no error envelope: {body}"));
        assert!(message.contains(needle), "expected '{needle}' in '{message}'");
        assert!(body["error"]["code"].is_string());
    }
    // None of that touched the session.
    let (_, snap) = api.get(&format!("/v1/sessions/{id}")).await;
    assert_eq!(snap["last_seq"], 0);
    assert_eq!(snap["status"], "idle");
    srv.stop().await;
}

#[tokio::test]
async fn stream_sends_heartbeat_then_events_with_ids_and_done_on_delete() {
    for db in databases().await {
        let srv = TestServer::start(&db, ServerOptions::default()).await;
        let api = &srv.api;
        let id = api.create(json!({})).await;
        let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", api.base), &[]).await;
        let hello = sse.next().await.unwrap();
        assert_eq!(hello.event.as_deref(), Some("session.heartbeat"));
        assert_eq!(hello.json()["type"], "session.heartbeat");
        assert_eq!(hello.id, None, "heartbeats are not in the log");

        let ack = api.message(&id, "one").await;
        let consumed = sse.next_event().await.unwrap();
        assert_eq!(consumed.event.as_deref(), Some("session.input.consumed"), "{}", db.label);
        assert_eq!(consumed.seq(), Some(1));
        let data = consumed.json();
        assert_eq!(data["type"], "session.input.consumed");
        assert_eq!(data["data"]["item_id"], ack["item_id"]);
        assert_eq!(data["data"]["data"]["content"][0]["text"], "one");
        let status = sse.next_event().await.unwrap();
        assert_eq!((status.event.as_deref(), status.seq()), (Some("session.status"), Some(2)));
        assert_eq!(status.json()["status"], "failed");
        assert_eq!(status.json()["error"]["code"], "no_harness");

        api.call(Method::DELETE, &format!("/v1/sessions/{id}"), None).await;
        let done = sse.next_event().await.unwrap();
        assert!(done.is_done(), "{done:?}");
        assert_eq!(done.event, None, "[DONE] is a bare data line");
        assert!(sse.next().await.is_none(), "the response ends after [DONE]");
        srv.stop().await;
    }
}

/// The server-wide feed (the web UI's live list): ready, then one summary per change a list shows — created, its
/// state, its title — and the deletion; nothing for changes a list does not show.
#[tokio::test]
async fn the_session_feed_announces_what_a_list_shows() {
    for db in databases().await {
        let srv = TestServer::start(&db, ServerOptions::default()).await;
        let api = &srv.api;
        let mut feed = Sse::open(&format!("{}/v1/sessions/feed", api.base), &[]).await;
        assert_eq!(feed.next().await.unwrap().event.as_deref(), Some("feed.ready"), "{}", db.label);
        let id = api.create(json!({"title": "watched"})).await;
        let created = feed.next_event().await.unwrap();
        assert_eq!(created.event.as_deref(), Some("session.summary"));
        assert_eq!(
            (created.json()["id"].as_str(), created.json()["status"].as_str()),
            (Some(id.as_str()), Some("idle"))
        );
        assert_eq!(created.json()["pending_elicitations_count"], 0, "a list row: {}", created.json());
        // A turn without a harness fails at once: the row's state changes (the running step may be folded in).
        api.message(&id, "hello").await;
        let mut last = feed.next_event().await.unwrap().json();
        while last["status"] != "failed" {
            last = feed.next_event().await.unwrap().json();
        }
        assert_eq!(last["last_task_error"]["code"], "no_harness", "{}: {last}", db.label);
        // A comment changes nothing a list shows; a title does.
        api.post(&format!("/v1/sessions/{id}/comments"), json!({"path": "a.rs", "body": "hm"})).await;
        api.call(Method::PATCH, &format!("/v1/sessions/{id}"), Some(json!({"title": "renamed"}))).await;
        let renamed = feed.next_event().await.unwrap().json();
        assert_eq!(renamed["title"], "renamed", "{}: the comment was not announced: {renamed}", db.label);
        api.call(Method::DELETE, &format!("/v1/sessions/{id}"), None).await;
        let gone = feed.next_event().await.unwrap();
        assert_eq!(gone.event.as_deref(), Some("session.deleted"));
        assert_eq!(gone.json()["id"], id.as_str());
        srv.stop().await;
    }
}

#[tokio::test]
async fn reconnecting_with_last_event_id_replays_every_missed_event_once_then_goes_live() {
    for db in databases().await {
        let srv = TestServer::start(&db, ServerOptions::default()).await;
        let api = &srv.api;
        let id = api.create(json!({})).await;
        let url = format!("{}/v1/sessions/{id}/stream", api.base);
        for i in 0..5 {
            api.message(&id, &format!("m{i}")).await; // two events each
        }
        // A client that saw up to seq 3 reconnects.
        let mut sse = Sse::open(&url, &[("Last-Event-ID", "3")]).await;
        assert_eq!(sse.next().await.unwrap().event.as_deref(), Some("session.heartbeat"));
        let mut seqs = Vec::new();
        for _ in 4..=10 {
            seqs.push(sse.next_event().await.unwrap().seq().unwrap());
        }
        assert_eq!(seqs, (4..=10).collect::<Vec<_>>(), "{}", db.label);
        api.message(&id, "live").await;
        assert_eq!(sse.next_event().await.unwrap().seq(), Some(11));
        assert_eq!(sse.next_event().await.unwrap().seq(), Some(12));
        drop(sse);

        // ?after= works the same; Last-Event-ID wins when both are sent (a browser reconnecting to the same URL).
        let mut sse = Sse::open(&format!("{url}?after=10"), &[]).await;
        assert_eq!(sse.next_event().await.unwrap().seq(), Some(11));
        let mut sse2 = Sse::open(&format!("{url}?after=0"), &[("Last-Event-ID", "11")]).await;
        assert_eq!(sse2.next_event().await.unwrap().seq(), Some(12));
        // A cursor at the head replays nothing; the next frame is live.
        let mut at_head = Sse::open(&url, &[("Last-Event-ID", "12")]).await;
        at_head.next().await.unwrap();
        assert!(at_head.next_within(Duration::from_millis(300)).await.is_err(), "nothing to replay");

        // Bad cursors are refused before streaming.
        for (header, needle) in [("abc", "non-negative"), ("-1", "non-negative"), ("13", "beyond the newest event")] {
            let r = Sse::request(&url, &[("Last-Event-ID", header)]).await;
            assert_eq!(r.status().as_u16(), 400, "{header}");
            let body: Value = r.json().await.unwrap();
            assert!(body["error"]["message"].as_str().unwrap().contains(needle), "{body}");
        }
        let r = Sse::request(&format!("{}/v1/sessions/{}/stream", api.base, SessionId::new()), &[]).await;
        assert_eq!(r.status().as_u16(), 404);
        srv.stop().await;
    }
}

#[tokio::test]
async fn concurrent_posts_to_one_session_get_gap_free_sequence_numbers() {
    for db in databases().await {
        let srv = TestServer::start(&db, ServerOptions::default()).await;
        let id = srv.api.create(json!({})).await;
        let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", srv.api.base), &[]).await;
        sse.next().await.unwrap();
        let posts = futures::future::join_all((0..40).map(|i| {
            let api = srv.api.clone();
            let id = id.clone();
            async move { api.message(&id, &format!("c{i}")).await["item_id"].as_str().unwrap().to_string() }
        }))
        .await;
        let mut seen = Vec::new();
        let mut consumed_items = Vec::new();
        while seen.len() < 80 {
            let f = sse.next_event().await.unwrap();
            seen.push(f.seq().unwrap());
            if f.event.as_deref() == Some("session.input.consumed") {
                consumed_items.push(f.json()["data"]["item_id"].as_str().unwrap().to_string());
            }
        }
        assert_eq!(seen, (1..=80).collect::<Vec<_>>(), "{}", db.label);
        let (_, items) = srv.api.get(&format!("/v1/sessions/{id}/items?limit=1000")).await;
        let stored: Vec<String> =
            items["data"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect();
        assert_eq!(stored, consumed_items, "items are in log order");
        let mut acked = posts.clone();
        acked.sort();
        let mut stored_sorted = stored.clone();
        stored_sorted.sort();
        assert_eq!(acked, stored_sorted, "every acknowledged input is stored, once");
        srv.stop().await;
    }
}

#[tokio::test]
async fn a_subscriber_that_falls_far_behind_is_caught_up_from_the_log() {
    let db = omnigent_testkit::sqlite_db();
    let store = Store::connect(&db.url).await.unwrap();
    let sandbox = omnigent::sandbox::Sandbox::start(Default::default()).await.unwrap();
    let turns = omnigent::turn::TurnEnv::new(None, Default::default(), Default::default(), sandbox.into()).unwrap();
    let sessions = Sessions::new(store, CancellationToken::new(), std::sync::Arc::new(turns));
    let record = sessions.create(Default::default()).await.unwrap();
    let id = record.id.clone();
    let stream = omnigent::stream::follow(&sessions, &id, None, Duration::from_secs(15)).await.unwrap();
    let mut stream = Box::pin(stream);
    // Far more events than the live channel holds, while the subscriber reads nothing.
    let n = omnigent::session::BROADCAST_CAPACITY + 300;
    for i in 0..n / 2 {
        let input =
            Input::Message { content: vec![json!({"type": "input_text", "text": format!("{i}")})], created_by: None };
        sessions.post(&id, input).await.unwrap();
    }
    let total = (n / 2 * 2) as i64;
    let mut expect = 1;
    while expect <= total {
        match tokio::time::timeout(Duration::from_secs(20), stream.next()).await.unwrap().unwrap() {
            omnigent::stream::Frame::Heartbeat => {}
            omnigent::stream::Frame::Event(e) => {
                assert_eq!(e.seq, expect, "events arrive in order with no gap or duplicate");
                expect += 1;
            }
            omnigent::stream::Frame::Done => panic!("stream ended early"),
            omnigent::stream::Frame::State(e) => panic!("nothing is pending in this session: {e:?}"),
        }
    }
}

#[tokio::test]
async fn one_event_reaches_many_subscribers() {
    let db = omnigent_testkit::sqlite_db();
    let srv = TestServer::start(&db, ServerOptions::default()).await;
    let id = srv.api.create(json!({})).await;
    let url = format!("{}/v1/sessions/{id}/stream", srv.api.base);
    let mut subs = Vec::new();
    for _ in 0..50 {
        let mut s = Sse::open(&url, &[]).await;
        s.next().await.unwrap();
        subs.push(s);
    }
    srv.api.message(&id, "fan out").await;
    for s in &mut subs {
        assert_eq!(s.next_event().await.unwrap().seq(), Some(1));
    }
    // On shutdown every open stream ends with [DONE].
    srv.shutdown.cancel();
    for s in &mut subs {
        loop {
            let f = s.next().await.expect("stream ended without [DONE]");
            if f.is_done() {
                break;
            }
        }
    }
    srv.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn state_is_the_same_in_list_snapshot_and_stream_after_a_restart() {
    for db in databases().await {
        let srv = TestServer::start(&db, ServerOptions::default()).await;
        let id = srv.api.create(json!({"title": "keep me"})).await;
        srv.api.message(&id, "before restart").await;
        srv.stop().await;

        let srv = TestServer::start(&db, ServerOptions::default()).await;
        let (_, snap) = srv.api.get(&format!("/v1/sessions/{id}")).await;
        assert_eq!(snap["status"], "failed", "{}", db.label);
        assert_eq!(snap["title"], "keep me");
        assert_eq!(snap["items"][0]["data"]["content"][0]["text"], "before restart");
        let (_, list) = srv.api.get("/v1/sessions?status=failed").await;
        assert_eq!(list["data"][0]["id"], id.as_str());
        assert_eq!(list["data"][0]["last_task_error"], snap["last_task_error"]);
        let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", srv.api.base), &[("Last-Event-ID", "0")]).await;
        let first = sse.next_event().await.unwrap();
        let last = sse.next_event().await.unwrap();
        assert_eq!(first.event.as_deref(), Some("session.input.consumed"));
        assert_eq!(last.json()["status"], snap["status"]);
        assert_eq!(last.seq(), snap["last_seq"].as_i64());
        // New events continue the numbering.
        srv.api.message(&id, "after restart").await;
        assert_eq!(sse.next_event().await.unwrap().seq(), Some(3));
        srv.stop().await;
    }
}

#[tokio::test]
async fn a_token_is_required_on_every_api_and_stream_request_when_configured() {
    let db = omnigent_testkit::sqlite_db();
    let options = ServerOptions { auth_token: Some("s3cret-token".into()), ..ServerOptions::default() };
    let srv = TestServer::start(&db, options).await;
    let anon = Api::new(srv.api.base.clone());
    let wrong = Api::new(srv.api.base.clone()).with_token("s3cret-tokeX");
    let good = Api::new(srv.api.base.clone()).with_token("s3cret-token");

    assert_eq!(anon.get("/health").await.0, 200, "health stays open for probes");
    for api in [&anon, &wrong] {
        let (status, body) = api.get("/v1/sessions").await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["code"], "unauthorized");
        assert_eq!(api.post("/v1/sessions", json!({})).await.0, 401);
        assert_eq!(api.get("/openapi.json").await.0, 401);
    }
    let id = good.create(json!({})).await;
    let url = format!("{}/v1/sessions/{id}/stream", srv.api.base);
    assert_eq!(Sse::request(&url, &[]).await.status().as_u16(), 401);
    let mut sse = Sse::open(&url, &[("Authorization", "Bearer s3cret-token")]).await;
    assert_eq!(sse.next().await.unwrap().event.as_deref(), Some("session.heartbeat"));
    srv.stop().await;

    // Binding beyond loopback without a token is refused before anything listens.
    let err = omnigent::server::check_exposure("0.0.0.0:6767".parse().unwrap(), &ServerOptions::default()).unwrap_err();
    assert!(err.to_string().contains("--auth-token"), "{err}");
    let with_token = ServerOptions { auth_token: Some("t".into()), ..ServerOptions::default() };
    assert!(omnigent::server::check_exposure("0.0.0.0:6767".parse().unwrap(), &with_token).is_ok());
}

#[tokio::test]
async fn openapi_describes_the_session_api() {
    let db = omnigent_testkit::sqlite_db();
    let srv = TestServer::start(&db, ServerOptions::default()).await;
    let (status, doc) = srv.api.get("/openapi.json").await;
    assert_eq!(status, 200);
    for path in [
        "/v1/sessions",
        "/v1/sessions/{id}",
        "/v1/sessions/{id}/events",
        "/v1/sessions/{id}/stream",
        "/v1/sessions/{id}/items",
    ] {
        assert!(doc["paths"][path].is_object(), "missing {path}");
    }
    assert!(doc["components"]["schemas"]["SessionResponse"].is_object());
    srv.stop().await;
}

#[tokio::test]
async fn agents_are_named_configs_that_sessions_start_from() {
    for db in databases().await {
        let srv = TestServer::start(&db, ServerOptions::default()).await;
        let api = &srv.api;
        let config: Value = serde_json::from_str(HARNESS_CONFIG).unwrap();
        let (status, agent) = api.post("/v1/agents", json!({"config": config})).await;
        assert_eq!(status, 201, "{}: {agent}", db.label);
        assert_eq!(agent["name"], "helper");
        let agent_id = agent["id"].as_str().unwrap();
        assert!(agent_id.starts_with("ag_"));

        let (status, dup) = api.post("/v1/agents", json!({"config": config})).await;
        assert_eq!(status, 409);
        assert_eq!(dup["error"]["code"], "already_exists");
        let (status, bad) = api.post("/v1/agents", json!({"config": {"name": "x"}})).await;
        assert_eq!(status, 400);
        assert!(bad["error"]["message"].as_str().unwrap().contains("missing field `executor`"));

        let (_, list) = api.get("/v1/agents").await;
        assert_eq!(list["data"][0]["id"], agent_id);
        assert_eq!(api.get("/v1/agents/helper").await.1["id"], agent_id);
        assert_eq!(api.get("/v1/agents/nobody").await.0, 404);

        // By id and by name; the session carries the agent's config.
        for key in [agent_id, "helper"] {
            let (status, s) = api.post("/v1/sessions", json!({"agent_id": key})).await;
            assert_eq!(status, 201, "{s}");
            assert_eq!(s["agent_id"], agent_id);
            assert_eq!(s["agent_name"], "helper");
            assert_eq!(s["llm_model"], "gpt-test");
        }
        let (status, both) = api.post("/v1/sessions", json!({"agent_id": agent_id, "config": config})).await;
        assert_eq!(status, 400, "{both}");

        // The list filters Omnigent clients send.
        api.create(json!({})).await;
        let count = |v: &Value| v["data"].as_array().unwrap().len();
        assert_eq!(count(&api.get("/v1/sessions?agent_name=helper").await.1), 2, "{}", db.label);
        assert_eq!(count(&api.get(&format!("/v1/sessions?agent_id={agent_id}")).await.1), 2);
        assert_eq!(count(&api.get("/v1/sessions?agent_name=nobody").await.1), 0);
        assert_eq!(count(&api.get("/v1/sessions?kind=default&sort_by=created_at&visibility=all").await.1), 3);
        assert_eq!(count(&api.get("/v1/sessions?kind=sub_agent").await.1), 0);
        assert_eq!(count(&api.get("/v1/sessions?visibility=archived&include_archived=true").await.1), 0);
        // sort_by=updated_at orders by last change: the oldest session, changed now, comes first.
        let (_, oldest_first) = api.get("/v1/sessions?order=asc").await;
        let oldest = oldest_first["data"][0]["id"].as_str().unwrap().to_string();
        let (status, _) = api.call(Method::PATCH, &format!("/v1/sessions/{oldest}"), Some(json!({"title": "x"}))).await;
        assert_eq!(status, 200);
        let (_, by_update) = api.get("/v1/sessions?sort_by=updated_at").await;
        assert_eq!(by_update["data"][0]["id"], oldest.as_str(), "{by_update}");
        let (status, err) = api.get("/v1/sessions?sort_by=size").await;
        assert_eq!(status, 400);
        assert!(err["error"]["message"].as_str().unwrap().contains("created_at or updated_at"), "{err}");
        srv.stop().await;
    }
}

#[tokio::test]
async fn omnigent_session_settings_are_patched_kept_across_a_restart_and_acted_on() {
    for db in databases().await {
        let srv = TestServer::start(&db, ServerOptions::default()).await;
        let api = srv.api.clone();
        let id = api.create(json!({"title": "Quarterly Report draft"})).await;
        let other = api.create(json!({"title": "something else"})).await;
        let path = format!("/v1/sessions/{id}");
        let patch = |body: Value| {
            let api = api.clone();
            let path = path.clone();
            async move { api.call(Method::PATCH, &path, Some(body)).await }
        };
        let (status, snap) = patch(json!({"archived": true, "reasoning_effort": "HIGH", "model_override": "gpt-next",
            "silent": true, "external_session_id": "claude-uuid-1", "runner_id": ""}))
        .await;
        assert_eq!(status, 200, "{}: {snap}", db.label);
        assert_eq!(
            (&snap["archived"], &snap["reasoning_effort"], &snap["model_override"], &snap["external_session_id"]),
            (&json!(true), &json!("high"), &json!("gpt-next"), &json!("claude-uuid-1"))
        );
        assert_eq!((&snap["runner_id"], &snap["runner_online"]), (&json!("runner_local"), &json!(true)));
        // Refused with a reason, nothing changed.
        for (body, needle) in [
            (json!({"reasoning_effort": "turbo"}), "not one of none, minimal"),
            (json!({"model_override": "  "}), "must not be blank"),
            (json!({"external_session_id": "another"}), "is set once"),
            (json!({"runner_id": "runner_elsewhere"}), "no registered runners"),
        ] {
            let (status, err) = patch(body.clone()).await;
            assert_eq!(status, 400, "{body}: {err}");
            assert!(err["error"]["message"].as_str().unwrap().contains(needle), "{body}: {err}");
        }
        assert_eq!(patch(json!({"external_session_id": "claude-uuid-1"})).await.0, 200, "the same value again is fine");
        // Archived: out of the default list, in with include_archived, alone with visibility=archived.
        let ids = |v: &Value| -> Vec<String> {
            v["data"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
        };
        assert_eq!(ids(&api.get("/v1/sessions").await.1), vec![other.clone()]);
        assert_eq!(ids(&api.get("/v1/sessions?include_archived=true").await.1).len(), 2);
        assert_eq!(ids(&api.get("/v1/sessions?visibility=archived").await.1), vec![id.clone()]);
        // A title search, with its snippet; a `%` in the text is a percent sign, not a wildcard.
        let (_, found) = api.get("/v1/sessions?include_archived=true&search_query=quarterly%20REPORT").await;
        assert_eq!(ids(&found), vec![id.clone()]);
        assert_eq!(found["data"][0]["search_snippet"], "Quarterly Report draft");
        assert!(ids(&api.get("/v1/sessions?include_archived=true&search_query=%25").await.1).is_empty());
        // What the Python CLI's `server status` asks: every session here has its runner connected.
        let (status, all) =
            api.get("/v1/sessions?limit=1000&include_archived=true&visibility=all&connected=true").await;
        assert_eq!((status, ids(&all).len()), (200, 2), "{all}");
        assert!(ids(&api.get("/v1/sessions?pinned=true").await.1).is_empty());
        assert!(ids(&api.get("/v1/sessions?project=proj_1").await.1).is_empty());
        // Kept across a restart (the row is the fold of the log).
        srv.stop().await;
        let srv = TestServer::start(&db, ServerOptions::default()).await;
        let (_, snap) = srv.api.get(&path).await;
        assert_eq!((&snap["archived"], &snap["model_override"]), (&json!(true), &json!("gpt-next")), "{snap}");
        // Clear aliases.
        let (_, snap) = srv
            .api
            .call(
                Method::PATCH,
                &path,
                Some(json!({"reasoning_effort": "default", "model_override": "reset", "archived": false})),
            )
            .await;
        assert_eq!(
            (&snap["reasoning_effort"], &snap["model_override"], &snap["archived"]),
            (&Value::Null, &Value::Null, &json!(false))
        );
        let (_, agent) = srv.api.get(&format!("/v1/sessions/{id}/agent")).await;
        assert_eq!(agent["object"], "agent", "{agent}");
        // A session from an inline config has an agent of its own (never a null agent_id, which the SDK reads
        // as the string "None"), and GET /v1/agents/{id} finds it.
        let own = snap["agent_id"].as_str().unwrap().to_string();
        assert!(own.starts_with("ag_session_"), "{snap}");
        assert_eq!(srv.api.get(&format!("/v1/agents/{own}")).await.0, 200);
        // Omnigent's create fields: settings from the start, the workspace as the working directory, and what
        // has no meaning here refused with the reason.
        let work = tempfile::tempdir().unwrap();
        let config = json!({"name": "placed", "executor": {"harness": "agent", "provider": "scripted",
            "script": [{"text": "hi"}]}});
        let (status, created) = srv
            .api
            .post(
                "/v1/sessions",
                json!({"config": config, "reasoning_effort": "medium", "model_override": "gpt-x",
                "workspace": work.path(), "host_type": "external", "host_id": null, "harness_override": "agent",
                "cost_control_mode_override": "off", "subagent_routing_override": null, "git": null}),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        assert_eq!((&created["reasoning_effort"], &created["model_override"]), (&json!("medium"), &json!("gpt-x")));
        for (extra, needle) in [
            (json!({"host_type": "managed"}), "no managed sandboxes"),
            (json!({"host_id": "host_1"}), "no hosts"),
            (json!({"workspace": "relative/dir"}), "absolute path"),
            (json!({"terminal_launch_args": ["--x"]}), "native harnesses"),
            (json!({"harness_override": "nope"}), "harness_override"),
            (json!({"git": {"branch_name": "x"}}), "no managed sandboxes, worktrees"),
        ] {
            let mut body = json!({"config": config});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            let (status, err) = srv.api.post("/v1/sessions", body).await;
            assert_eq!(status, 400, "{extra}: {err}");
            assert!(err["error"]["message"].as_str().unwrap().contains(needle), "{extra}: {err}");
        }
        let (_, info) = srv.api.get("/v1/info").await;
        assert_eq!((&info["single_user"], &info["accounts_enabled"]), (&json!(true), &json!(false)));
        assert_eq!(srv.api.get("/v1/me").await.1["user_id"], "local");
        srv.stop().await;
    }
}

/// A multipart/form-data body with one `file` part.
fn multipart(name: &str, content_type: &str, content: &[u8]) -> (String, Vec<u8>) {
    form(&[("file", Some(name), content_type, content)])
}

/// A multipart/form-data body: (part name, file name, content type, content) per part.
fn form(parts: &[(&str, Option<&str>, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "omnigent-test-boundary-7d1";
    let mut body = Vec::new();
    for (part, file, content_type, content) in parts {
        let file = file.map(|f| format!("; filename=\"{f}\"")).unwrap_or_default();
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{part}\"{file}\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A gzipped tarball of text files.
fn targz(files: &[(&str, &str)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (path, text) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, text.as_bytes()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

#[tokio::test]
async fn agent_bundles_create_sessions_and_agents_and_bad_ones_say_why() {
    let db = omnigent_testkit::sqlite_db();
    let srv = TestServer::start(&db, ServerOptions::default()).await;
    let api = &srv.api;
    let yaml = "name: bundled\nprompt: Hi.\nexecutor: {harness: agent, provider: scripted, script: [{text: ok}]}\n";
    let bundle =
        targz(&[("./bundled.yaml", yaml), ("./skills/style/SKILL.md", "---\nname: style\ndescription: d\n---\nb\n")]);
    let post = |path: &str, parts: Vec<(&str, Option<&str>, &str, Vec<u8>)>| {
        let parts: Vec<(&str, Option<&str>, &str, &[u8])> =
            parts.iter().map(|(a, b, c, d)| (*a, *b, *c, d.as_slice())).collect();
        let (header, body) = form(&parts);
        api.req(Method::POST, path).header("content-type", header).body(body).send()
    };
    let metadata = br#"{"title": "bundled session", "labels": {"k": "v"}}"#.to_vec();
    let r = post(
        "/v1/sessions",
        vec![
            ("metadata", None, "application/json", metadata),
            ("bundle", Some("agent.tar.gz"), "application/gzip", bundle.clone()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["agent_name"], "bundled", "{created}");
    let sid = created["session_id"].as_str().unwrap();
    let (_, snap) = api.get(&format!("/v1/sessions/{sid}")).await;
    assert_eq!((&snap["title"], &snap["labels"]["k"]), (&json!("bundled session"), &json!("v")));
    assert_eq!(created["agent_id"], snap["agent_id"]);
    let (_, agent) = api.get(&format!("/v1/sessions/{sid}/agent")).await;
    assert!(agent.to_string().contains("style"), "the bundle's skill is the session's: {agent}");
    // The same bundle registers an agent.
    let r =
        post("/v1/agents", vec![("bundle", Some("agent.tar.gz"), "application/gzip", bundle.clone())]).await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "bundled");
    // Bad uploads: each a 400 that says why; nothing is created.
    let before = api.get("/v1/sessions").await.1["data"].as_array().unwrap().len();
    for (parts, says) in [
        (vec![("bundle", Some("a.tgz"), "application/gzip", b"not a tarball".to_vec())], "not a .tar.gz"),
        (vec![("metadata", None, "application/json", b"{}".to_vec())], "'bundle' is required"),
        (
            vec![
                ("metadata", None, "application/json", br#"{"owner": "x"}"#.to_vec()),
                ("bundle", Some("a.tgz"), "application/gzip", bundle.clone()),
            ],
            "metadata.owner",
        ),
        (vec![("bundle", Some("a.tgz"), "application/gzip", targz(&[("config.yaml", "name: a\n")]))], "spec_version"),
    ] {
        let r = post("/v1/sessions", parts).await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "{says}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().contains(says), "{says}: {body}");
    }
    assert_eq!(api.get("/v1/sessions").await.1["data"].as_array().unwrap().len(), before);
    srv.stop().await;
}

#[tokio::test]
async fn files_upload_list_download_and_delete_with_limits() {
    for db in databases().await {
        let srv = TestServer::start(&db, ServerOptions::default()).await;
        let api = &srv.api;
        let id = api.create(json!({})).await;
        let files = format!("/v1/sessions/{id}/resources/files");
        let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", api.base), &[]).await;
        sse.next().await.unwrap();
        let upload = |name: &str, ctype: &str, content: Vec<u8>| {
            let (header, body) = multipart(name, ctype, &content);
            api.req(Method::POST, &files).header("content-type", header).body(body).send()
        };
        let r = upload("notes.md", "text/markdown", b"# hello".to_vec()).await.unwrap();
        assert_eq!(r.status().as_u16(), 201, "{}", db.label);
        let file: Value = r.json().await.unwrap();
        assert_eq!(file["object"], "session.resource");
        assert_eq!(file["metadata"]["bytes"], 7);
        let fid = file["id"].as_str().unwrap().to_string();
        let created = sse.next_event().await.unwrap();
        assert_eq!(created.event.as_deref(), Some("session.resource.created"));
        assert_eq!(created.json()["resource"]["id"], fid.as_str());

        let (_, list) = api.get(&files).await;
        assert_eq!(list["data"][0]["id"], fid.as_str());
        let (status, one) = api.get(&format!("{files}/{fid}")).await;
        assert_eq!((status, one["name"].as_str()), (200, Some("notes.md")));
        let r = api.req(Method::GET, &format!("{files}/{fid}/content")).send().await.unwrap();
        assert_eq!(r.headers()["content-type"], "text/markdown");
        assert_eq!(r.bytes().await.unwrap().as_ref(), b"# hello");

        // Limits: size, type, name; and files of unknown sessions.
        let r = upload("big.bin", "application/octet-stream", vec![0u8; omnigent::files::MAX_FILE_BYTES + 1])
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 413);
        let r = upload("setup.exe", "application/x-msdownload", b"MZ".to_vec()).await.unwrap();
        assert_eq!(r.status().as_u16(), 415);
        let body: Value = r.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().contains("not accepted"), "{body}");
        let (header, body) = multipart("x.txt", "text/plain", b"x");
        let r = api
            .req(Method::POST, &format!("/v1/sessions/{}/resources/files", SessionId::new()))
            .header("content-type", header)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404);
        assert_eq!(api.get(&format!("{files}/file_nope")).await.0, 404);

        let (status, deleted) = api.call(Method::DELETE, &format!("{files}/{fid}"), None).await;
        assert_eq!(status, 200);
        assert_eq!(deleted["deleted"], true);
        assert_eq!(api.call(Method::DELETE, &format!("{files}/{fid}"), None).await.0, 404);
        let gone = sse.next_event().await.unwrap();
        assert_eq!(gone.event.as_deref(), Some("session.resource.deleted"));
        srv.stop().await;
    }
}

#[tokio::test]
async fn comments_are_events_and_survive_a_restart() {
    for db in databases().await {
        let srv = TestServer::start(&db, ServerOptions::default()).await;
        let api = &srv.api;
        let id = api.create(json!({})).await;
        let base = format!("/v1/sessions/{id}/comments");
        // Comment events are this server's own: a client asks for them (Omnigent's stream has none).
        let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream?extensions=true", api.base), &[]).await;
        sse.next().await.unwrap();
        let mut omnigent_only = Sse::open(&format!("{}/v1/sessions/{id}/stream", api.base), &[]).await;
        omnigent_only.next().await.unwrap();
        let (status, first) = api
            .post(&base, json!({"path": "src/main.rs", "body": "Handle the error here.", "start_index": 10, "end_index": 20, "anchor_content": "unwrap()"}))
            .await;
        assert_eq!(status, 200, "{}: {first}", db.label);
        assert_eq!(first["status"], "draft");
        assert_eq!(first["conversation_id"], id.as_str());
        let event = sse.next_event().await.unwrap();
        assert_eq!(event.event.as_deref(), Some("session.comment.created"));
        assert_eq!(event.json()["comment"]["id"], first["id"]);
        let (_, second) = api.post(&base, json!({"path": "README.md", "body": "Typo."})).await;
        let (c1, c2) = (first["id"].as_str().unwrap(), second["id"].as_str().unwrap());

        let (_, all) = api.get(&base).await;
        assert_eq!(all.as_array().unwrap().len(), 2);
        let (_, only) = api.get(&format!("{base}?path=README.md")).await;
        assert_eq!(only.as_array().unwrap().len(), 1);

        let (status, patched) =
            api.call(Method::PATCH, &format!("{base}/{c2}"), Some(json!({"body": "Typo in line 3."}))).await;
        assert_eq!((status, patched["body"].as_str()), (200, Some("Typo in line 3.")));
        let (status, err) = api.call(Method::PATCH, &format!("{base}/{c2}"), Some(json!({"status": "done"}))).await;
        assert_eq!(status, 400);
        assert!(err["error"]["message"].as_str().unwrap().contains("'draft' or 'addressed'"));
        assert_eq!(api.post(&base, json!({"path": "x", "body": "  "})).await.0, 400);

        let (status, sent) = api.post(&format!("{base}/send"), json!({"comment_ids": [c1, c2]})).await;
        assert_eq!(status, 200, "{sent}");
        let text = sent["formatted_message"].as_str().unwrap();
        assert!(text.contains("On src/main.rs [10–20]: \"unwrap()\"\nHandle the error here."), "{text}");
        assert!(text.contains("Typo in line 3."), "{text}");
        assert_eq!(api.post(&format!("{base}/send"), json!({"comment_ids": ["cmt_nope"]})).await.0, 404);
        // The stream Omnigent's clients open (no `extensions`) skipped every comment event: its next one is this.
        api.call(Method::PATCH, &format!("/v1/sessions/{id}"), Some(json!({"title": "reviewed"}))).await;
        let next = omnigent_only.next_event().await.unwrap();
        assert_eq!(next.event.as_deref(), Some("session.title"), "{}: {:?}", db.label, next.event);
        srv.stop().await;

        // The fold is durable: a restarted server has the same comments.
        let srv = TestServer::start(&db, ServerOptions::default()).await;
        let api = &srv.api;
        let (_, all) = api.get(&base).await;
        let statuses: Vec<&str> = all.as_array().unwrap().iter().map(|c| c["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, vec!["addressed", "addressed"], "{}", db.label);
        let (status, _) = api.call(Method::DELETE, &format!("{base}/{c1}"), None).await;
        assert_eq!(status, 200);
        assert_eq!(api.call(Method::DELETE, &format!("{base}/{c1}"), None).await.0, 404);
        assert_eq!(api.get(&base).await.1.as_array().unwrap().len(), 1);
        // A comment on a deleted session is a clear 404.
        api.call(Method::DELETE, &format!("/v1/sessions/{id}"), None).await;
        let (status, err) = api.post(&base, json!({"path": "x", "body": "late"})).await;
        assert_eq!(status, 404);
        assert!(err["error"]["message"].as_str().unwrap().contains("no session"), "{err}");
        srv.stop().await;
    }
}
