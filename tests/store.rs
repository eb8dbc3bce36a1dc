//! The store's story, run on SQLite always and on Postgres when TEST_DATABASE_URL is set.

use omnigent::record::{Item, SessionRecord, SessionStatus, StoredEvent, TaskError, now_us};
use omnigent::store::{Commit, Page, Store, StoreError};
use omnigent_testkit::databases;
use serde_json::{Map, json};

fn event(seq: i64, t: &str) -> StoredEvent {
    StoredEvent { seq, event_type: t.into(), data: json!({"type": t, "n": seq}), created_at_us: now_us() }
}

fn page(limit: u32, after: Option<&str>, before: Option<&str>, descending: bool) -> Page {
    Page { limit, after: after.map(Into::into), before: before.map(Into::into), descending }
}

async fn new_session(store: &Store, created_at_us: i64) -> SessionRecord {
    let s = SessionRecord::new(json!({"executor": {"harness": "agent"}}), Some("t".into()), Map::new(), created_at_us);
    store.create_session(&s).await.unwrap();
    s
}

/// Appends `n` events to `s` as its actor would.
async fn append(store: &Store, s: &mut SessionRecord, types: &[&str], items: &[Item]) {
    let expected = s.last_seq;
    let events: Vec<_> = types.iter().enumerate().map(|(i, t)| event(expected + 1 + i as i64, t)).collect();
    let mut next = s.clone();
    next.last_seq = expected + types.len() as i64;
    store
        .commit(&Commit {
            expected_last_seq: expected,
            session: &next,
            events: &events,
            items,
            comments: &[],
            files: &[],
            journal: &[],
            clear_journal: false,
            spend: None,
        })
        .await
        .unwrap();
    *s = next;
}

#[tokio::test]
async fn sessions_roundtrip_and_list_in_pages() {
    for db in databases().await {
        let store = Store::connect(&db.url).await.unwrap();
        let mut ids = Vec::new();
        for i in 0..7 {
            ids.push(new_session(&store, 1_000_000 + i).await.id.to_string());
        }
        let got = store.get_session(&omnigent::ids::SessionId::parse(&ids[3]).unwrap()).await.unwrap().unwrap();
        assert_eq!(got.title.as_deref(), Some("t"), "{}", db.label);
        assert_eq!(got.config["executor"]["harness"], "agent");
        assert_eq!(got.status, SessionStatus::Idle);

        // Newest first, three at a time, walking with `after`.
        let (p1, more) = store.list_sessions(&page(3, None, None, true), None).await.unwrap();
        assert!(more);
        let p1: Vec<_> = p1.iter().map(|s| s.id.to_string()).collect();
        assert_eq!(p1, vec![ids[6].clone(), ids[5].clone(), ids[4].clone()], "{}", db.label);
        let (p2, _) = store.list_sessions(&page(3, Some(&ids[4]), None, true), None).await.unwrap();
        assert_eq!(
            p2.iter().map(|s| s.id.to_string()).collect::<Vec<_>>(),
            vec![ids[3].clone(), ids[2].clone(), ids[1].clone()]
        );
        let (p3, more) = store.list_sessions(&page(3, Some(&ids[1]), None, true), None).await.unwrap();
        assert_eq!(p3.len(), 1);
        assert!(!more);
        // `before` returns the rows just before the cursor, still in the requested order.
        let (back, _) = store.list_sessions(&page(2, None, Some(&ids[3]), true), None).await.unwrap();
        assert_eq!(back.iter().map(|s| s.id.to_string()).collect::<Vec<_>>(), vec![ids[5].clone(), ids[4].clone()]);
        let (asc, _) = store.list_sessions(&page(2, Some(&ids[0]), None, false), None).await.unwrap();
        assert_eq!(asc.iter().map(|s| s.id.to_string()).collect::<Vec<_>>(), vec![ids[1].clone(), ids[2].clone()]);

        let unknown = omnigent::ids::SessionId::new().to_string();
        assert!(matches!(
            store.list_sessions(&page(3, Some(&unknown), None, true), None).await,
            Err(StoreError::UnknownCursor(_))
        ));
    }
}

#[tokio::test]
async fn commits_append_events_and_fold_state_atomically() {
    for db in databases().await {
        let store = Store::connect(&db.url).await.unwrap();
        let mut s = new_session(&store, now_us()).await;
        let item = Item {
            id: "msg_1".into(),
            position: 1,
            response_id: None,
            item_type: "message".into(),
            status: "completed".into(),
            created_at_us: now_us(),
            data: json!({"role": "user", "content": [{"type": "input_text", "text": "hi"}]}),
            created_by: Some("alice".into()),
        };
        append(&store, &mut s, &["session.input.consumed"], std::slice::from_ref(&item)).await;
        s.status = SessionStatus::Failed;
        s.last_task_error = Some(TaskError { code: "x".into(), message: "boom".into() });
        append(&store, &mut s, &["session.status", "a", "b"], &[]).await;

        let back = store.get_session(&s.id).await.unwrap().unwrap();
        assert_eq!(back.last_seq, 4, "{}", db.label);
        assert_eq!(back.status, SessionStatus::Failed);
        assert_eq!(back.last_task_error.unwrap().message, "boom");

        let all = store.events_after(&s.id, 0, None, 100).await.unwrap();
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        assert_eq!(all[1].event_type, "session.status");
        assert_eq!(all[3].data, json!({"type": "b", "n": 4}));
        let window = store.events_after(&s.id, 1, Some(3), 100).await.unwrap();
        assert_eq!(window.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(store.events_after(&s.id, 0, None, 2).await.unwrap().len(), 2);

        let (items, more) = store.list_items(&s.id, &page(10, None, None, false)).await.unwrap();
        assert!(!more);
        assert_eq!(items, vec![item]);

        // A writer with a stale view writes nothing.
        let stale = Commit {
            expected_last_seq: 2,
            session: &s,
            events: &[event(3, "dup")],
            items: &[],
            comments: &[],
            files: &[],
            journal: &[],
            clear_journal: false,
            spend: None,
        };
        assert!(matches!(store.commit(&stale).await, Err(StoreError::Conflict(_))), "{}", db.label);
        assert_eq!(store.events_after(&s.id, 0, None, 100).await.unwrap().len(), 4);
    }
}

#[tokio::test]
async fn items_page_in_log_order_and_upsert_in_place() {
    for db in databases().await {
        let store = Store::connect(&db.url).await.unwrap();
        let mut s = new_session(&store, now_us()).await;
        let mk = |id: &str, position: i64, status: &str| Item {
            id: id.into(),
            position,
            response_id: Some("resp_1".into()),
            item_type: "function_call".into(),
            status: status.into(),
            created_at_us: 5,
            data: json!({"name": "shell"}),
            created_by: None,
        };
        for i in 1..=5 {
            append(&store, &mut s, &["x"], &[mk(&format!("fc_{i}"), i, "completed")]).await;
        }
        // Re-writing an item replaces its fields and keeps its place in the transcript.
        append(&store, &mut s, &["x"], &[mk("fc_2", 6, "action_required")]).await;
        let (all, _) = store.list_items(&s.id, &page(100, None, None, false)).await.unwrap();
        let order: Vec<_> = all.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(order, vec!["fc_1", "fc_2", "fc_3", "fc_4", "fc_5"], "{}", db.label);
        assert_eq!(all[1].status, "action_required");
        assert_eq!(all[1].position, 2);
        let (p, more) = store.list_items(&s.id, &page(2, Some("fc_2"), None, false)).await.unwrap();
        assert_eq!(p.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), vec!["fc_3", "fc_4"]);
        assert!(more);
        let (p, _) = store.list_items(&s.id, &page(2, None, None, true)).await.unwrap();
        assert_eq!(p.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), vec!["fc_5", "fc_4"]);
        assert!(matches!(
            store.list_items(&s.id, &page(2, Some("fc_404"), None, false)).await,
            Err(StoreError::UnknownCursor(_))
        ));
    }
}

#[tokio::test]
async fn delete_removes_the_session_its_log_and_items() {
    for db in databases().await {
        let store = Store::connect(&db.url).await.unwrap();
        let mut s = new_session(&store, now_us()).await;
        let keep = new_session(&store, now_us()).await;
        append(&store, &mut s, &["a", "b"], &[]).await;
        assert!(store.delete_session(&s.id).await.unwrap());
        assert!(!store.delete_session(&s.id).await.unwrap(), "{}", db.label);
        assert!(store.get_session(&s.id).await.unwrap().is_none());
        assert!(store.events_after(&s.id, 0, None, 10).await.unwrap().is_empty());
        assert!(store.get_session(&keep.id).await.unwrap().is_some());
        // Writing to a deleted session is a conflict, not a resurrection.
        let next = SessionRecord { last_seq: 3, ..s.clone() };
        let late = Commit {
            expected_last_seq: 2,
            session: &next,
            events: &[event(3, "late")],
            items: &[],
            comments: &[],
            files: &[],
            journal: &[],
            clear_journal: false,
            spend: None,
        };
        assert!(matches!(store.commit(&late).await, Err(StoreError::Conflict(_))));
        assert_eq!(store.count_sessions().await.unwrap(), 1);
    }
}

#[tokio::test]
async fn migrations_run_once_and_data_survives_reopening() {
    for db in databases().await {
        let store = Store::connect(&db.url).await.unwrap();
        let s = new_session(&store, now_us()).await;
        store.close().await;
        let again = Store::connect(&db.url).await.unwrap();
        assert!(again.get_session(&s.id).await.unwrap().is_some(), "{}", db.label);
    }
}

#[tokio::test]
async fn unsupported_urls_are_refused_with_a_hint() {
    let err = Store::connect("mysql://x").await.err().unwrap().to_string();
    assert!(err.contains("sqlite://") && err.contains("postgres://"), "{err}");
}

#[tokio::test]
async fn a_turn_journal_commits_with_its_events_and_is_cleared_with_the_turn_end() {
    use omnigent::store::JournalEntry;
    for db in databases().await {
        let store = Store::connect(&db.url).await.unwrap();
        let mut s = new_session(&store, now_us()).await;
        let entry =
            |idx: i64| JournalEntry { idx, response_id: "resp_x".into(), entry: json!({"kind": "tool", "n": idx}) };
        let mut next = s.clone();
        next.last_seq = 1;
        next.policy.state.insert("p.count".into(), json!(2));
        let journal = [entry(0), entry(1)];
        let c = Commit {
            expected_last_seq: 0,
            session: &next,
            events: &[event(1, "a")],
            items: &[],
            comments: &[],
            files: &[],
            journal: &journal,
            clear_journal: false,
            spend: None,
        };
        store.commit(&c).await.unwrap();
        s = next;
        let got = store.journal(&s.id).await.unwrap();
        assert_eq!(got, journal.to_vec(), "{}", db.label);
        // The policy fold survives a reload.
        assert_eq!(store.get_session(&s.id).await.unwrap().unwrap().policy.state["p.count"], 2);
        // A failed commit writes no journal either.
        let stale = Commit {
            expected_last_seq: 0,
            session: &s,
            events: &[event(2, "b")],
            items: &[],
            comments: &[],
            files: &[],
            journal: &[entry(2)],
            clear_journal: false,
            spend: None,
        };
        assert!(matches!(store.commit(&stale).await, Err(StoreError::Conflict(_))));
        assert_eq!(store.journal(&s.id).await.unwrap().len(), 2);
        let mut next = s.clone();
        next.last_seq = 2;
        let end = Commit {
            expected_last_seq: 1,
            session: &next,
            events: &[event(2, "end")],
            items: &[],
            comments: &[],
            files: &[],
            journal: &[],
            clear_journal: true,
            spend: None,
        };
        store.commit(&end).await.unwrap();
        assert!(store.journal(&s.id).await.unwrap().is_empty(), "{}", db.label);
    }
}

/// A commit that does not join a group — comment and file rows, a journal cleared and refilled at once — is written
/// whole, in one transaction, or not at all when its writer is stale.
#[tokio::test]
async fn a_commit_with_comments_files_and_a_refilled_journal_is_written_whole_or_not_at_all() {
    use omnigent::store::{CommentChange, FileChange, FileMeta, FileSource, JournalEntry};
    for db in databases().await {
        let store = Store::connect(&db.url).await.unwrap();
        let mut s = new_session(&store, now_us()).await;
        let entry = |idx: i64| JournalEntry { idx, response_id: "resp_x".into(), entry: json!({"kind": "emit"}) };
        append(&store, &mut s, &["first"], &[]).await;
        let old = [entry(0), entry(1)];
        let mut next = s.clone();
        next.last_seq = 2;
        let first = Commit {
            expected_last_seq: 1,
            session: &next,
            events: &[event(2, "journaled")],
            items: &[],
            comments: &[],
            files: &[],
            journal: &old,
            clear_journal: false,
            spend: None,
        };
        store.commit(&first).await.unwrap();
        s = next;

        let comments = [CommentChange::Upsert {
            id: "cmt_1".into(),
            path: "a.rs".into(),
            data: json!({"id": "cmt_1", "body": "look"}),
            created_at_us: now_us(),
        }];
        let meta = FileMeta {
            id: "file_1".into(),
            name: "n.txt".into(),
            content_type: "text/plain".into(),
            bytes: 2,
            source: FileSource::Upload,
            created_at_us: now_us(),
        };
        let files = [FileChange::Put { meta, content: b"hi".to_vec() }];
        let refill = [entry(0)];
        let mut next = s.clone();
        next.last_seq = 3;
        let stale = Commit {
            expected_last_seq: 9,
            session: &next,
            events: &[event(3, "all")],
            items: &[],
            comments: &comments,
            files: &files,
            journal: &refill,
            clear_journal: true,
            spend: None,
        };
        assert!(matches!(store.commit(&stale).await, Err(StoreError::Conflict(_))), "{}", db.label);
        assert_eq!(store.journal(&s.id).await.unwrap().len(), 2, "{}: a stale commit clears nothing", db.label);
        assert!(store.get_file(&s.id, "file_1").await.unwrap().is_none(), "{}", db.label);
        assert!(store.list_comments(&s.id, None).await.unwrap().is_empty(), "{}", db.label);

        let whole = Commit { expected_last_seq: 2, ..stale };
        store.commit(&whole).await.unwrap();
        let journal = store.journal(&s.id).await.unwrap();
        assert_eq!(journal.len(), 1, "{}: cleared, then refilled", db.label);
        assert_eq!(journal[0].idx, 0);
        assert!(store.get_file(&s.id, "file_1").await.unwrap().is_some(), "{}", db.label);
        assert_eq!(store.list_comments(&s.id, None).await.unwrap().len(), 1, "{}", db.label);
        assert_eq!(store.events_after(&s.id, 0, None, 10).await.unwrap().len(), 3, "{}", db.label);
    }
}
