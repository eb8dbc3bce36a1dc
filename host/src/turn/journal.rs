//! The journal of a turn: the result of each host call (history, model completion, policy verdict, approval,
//! tool result, steering, emit, file), committed in the same transaction as the events the call produced.
//!
//! A turn cut by a restart runs again from the start and replays from its journal: each host call takes the next
//! entry of its kind instead of acting, until the journal is used up; then the turn goes on live. A call that finds
//! an entry of another kind in its place means the harness did something else this time: the replay has
//! diverged, and the turn fails (`replay_diverged`) rather than guessing.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use omnigent_runtime::harness::{Message, llm};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::SessionId;
use crate::policy::StateChange;
use crate::protocol::NewEvent;
use crate::session::{SessionError, Sessions, Waiter};
use crate::store::{FileChange, FileMeta, JournalEntry};

/// One journaled host call. Stored as JSON tagged by `kind`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// The conversation the harness was given, word for word (what earlier versions journaled; still replayed).
    History {
        #[serde(deserialize_with = "messages_of_any_version")]
        messages: Vec<Message>,
    },
    /// The conversation the harness was given: the transcript's items up to this position (None: there were
    /// none). A transcript only grows, and an item written again keeps what the conversation reads of it, so the
    /// replay reads the same conversation — at the cost of one integer instead of the whole conversation per turn.
    HistoryThrough { position: Option<i64> },
    /// A model call's answer, and the child sessions of its sub-agent calls (tool call id → session id).
    Complete {
        completion: llm::Completion,
        #[serde(default)]
        children: BTreeMap<String, String>,
    },
    /// The turn began compacting the conversation (what follows — the verdict on the summary's model call, the
    /// summary — belongs to the compaction).
    CompactionStart,
    /// The summary's model call, committed with the `compaction` item it produced.
    Compaction { completion: llm::Completion },
    /// A policy verdict: allowed (with the payload a policy rewrote, if any) or denied.
    Gate(Verdict),
    /// A policy asked a human; the session paused. The verdict follows as a `Gate` entry once answered.
    Ask(Box<Ask>),
    /// A builtin tool began running (its effects are outside the log).
    Started { call_id: String },
    /// A tool's result as the harness got it.
    Tool { output: String, is_error: bool },
    /// Messages the harness took while it ran.
    Steering { messages: Vec<String> },
    /// An event the harness emitted.
    Emit,
    /// A file the harness wrote.
    File { id: String },
    /// How far a native CLI's own record (Claude's transcript) has been mirrored into the session, and whether
    /// the turn's message reached the CLI: committed with the events read up to there, so a restart neither
    /// repeats nor loses one.
    NativeCursor { offset: u64, delivered: bool },
}

/// Messages as journaled now, or by versions before the journal was an enum (roles in lowercase), so a turn cut
/// by the restart that upgrades omnigent still replays.
fn messages_of_any_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Message>, D::Error> {
    let mut messages: Vec<Value> = Deserialize::deserialize(d)?;
    for m in &mut messages {
        if let Some(Value::String(role)) = m.get_mut("role")
            && let Some(first) = role.get(..1)
        {
            *role = format!("{}{}", first.to_ascii_uppercase(), &role[1..]);
        }
    }
    serde_json::from_value(Value::Array(messages)).map_err(serde::de::Error::custom)
}

/// The kinds of [`Entry`], for asking the replay for the next entry of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    History,
    Complete,
    CompactionStart,
    Compaction,
    Gate,
    Ask,
    Started,
    Tool,
    Steering,
    Emit,
    File,
    NativeCursor,
}

impl Entry {
    pub fn kind(&self) -> Kind {
        match self {
            Entry::History { .. } | Entry::HistoryThrough { .. } => Kind::History,
            Entry::Complete { .. } => Kind::Complete,
            Entry::CompactionStart => Kind::CompactionStart,
            Entry::Compaction { .. } => Kind::Compaction,
            Entry::Gate(_) => Kind::Gate,
            Entry::Ask(_) => Kind::Ask,
            Entry::Started { .. } => Kind::Started,
            Entry::Tool { .. } => Kind::Tool,
            Entry::Steering { .. } => Kind::Steering,
            Entry::Emit => Kind::Emit,
            Entry::File { .. } => Kind::File,
            Entry::NativeCursor { .. } => Kind::NativeCursor,
        }
    }
}

/// A journaled policy verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Allow {
        #[serde(default)]
        data: Option<Value>,
    },
    Deny {
        #[serde(default)]
        reason: Option<String>,
    },
}

impl Verdict {
    pub fn of(result: &Result<Option<Value>, String>) -> Verdict {
        match result {
            Ok(data) => Verdict::Allow { data: data.clone() },
            Err(reason) => Verdict::Deny { reason: Some(reason.clone()) },
        }
    }

    /// Ok(rewritten payload) or Err(denial reason).
    pub fn into_result(self) -> Result<Option<Value>, String> {
        match self {
            Verdict::Allow { data } => Ok(data.filter(|d| !d.is_null())),
            Verdict::Deny { reason } => Err(reason.unwrap_or_else(|| "denied by a policy".into())),
        }
    }
}

/// A question to a human, with what an accept applies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ask {
    pub elicitation_id: String,
    /// The `response.elicitation_request` payload.
    pub request: Value,
    /// The payload as rewritten by the policies, used if the human accepts.
    #[serde(default)]
    pub data: Option<Value>,
    /// State and labels the asking policies wrote; they apply only on an accept.
    #[serde(default)]
    pub held_changes: Vec<StateChange>,
    #[serde(default)]
    pub held_labels: Map<String, Value>,
    pub policies: Vec<String>,
    pub expires_at: i64,
    pub phase: String,
}

/// The journal of the running turn: what is left to replay, and what waits to be committed.
pub struct Journal {
    sessions: Sessions,
    session: SessionId,
    response_id: String,
    state: Mutex<State>,
}

struct State {
    replay: VecDeque<Entry>,
    /// Index of the next new entry.
    next: i64,
    /// Entries (and their events) waiting for the next commit.
    deferred: Vec<JournalEntry>,
    deferred_events: Vec<NewEvent>,
    /// Set when a replay met a host call its journal does not have in that place.
    diverged: Option<String>,
    /// Set when a commit failed for good: nothing of it was written, and the turn cannot go on consistently.
    storage_failure: Option<String>,
}

impl Journal {
    /// A new turn's journal (empty: the commit that started the turn cleared any leftover), or a resumed turn's,
    /// read from the store.
    pub async fn open(
        sessions: &Sessions,
        session: &SessionId,
        response_id: &str,
        resume: bool,
    ) -> Result<Journal, String> {
        let (mut replay, mut next) = (VecDeque::new(), 0);
        if resume {
            let stored = sessions.store().journal(session).await.map_err(|e| e.to_string())?;
            next = stored.last().map(|e| e.idx + 1).unwrap_or(0);
            for e in stored.into_iter().filter(|e| e.response_id == response_id) {
                let entry = serde_json::from_value(e.entry)
                    .map_err(|err| format!("journal entry {} of the turn cannot be read: {err}", e.idx))?;
                replay.push_back(entry);
            }
            tracing::info!(session = %session, entries = replay.len(), "replaying the turn's journal");
        }
        Ok(Journal {
            sessions: sessions.clone(),
            session: session.clone(),
            response_id: response_id.to_string(),
            state: Mutex::new(State {
                replay,
                next,
                deferred: Vec::new(),
                deferred_events: Vec::new(),
                diverged: None,
                storage_failure: None,
            }),
        })
    }

    /// The next entry, if the replay is at one of this kind.
    pub fn take(&self, kind: Kind) -> Option<Entry> {
        let mut s = self.state.lock().unwrap();
        if s.replay.front().is_some_and(|e| e.kind() == kind) { s.replay.pop_front() } else { None }
    }

    /// Takes the whole replay at once: a native turn does not replay host calls, it reads where it was.
    pub fn take_all(&self) -> Vec<Entry> {
        self.state.lock().unwrap().replay.drain(..).collect()
    }

    pub fn replaying(&self) -> bool {
        !self.state.lock().unwrap().replay.is_empty()
    }

    /// Before a live call: a replay that has entries left, but not for this call, has diverged; a turn whose
    /// storage failed makes no more calls.
    pub fn check_live(&self, what: &str) -> Result<(), String> {
        let mut s = self.state.lock().unwrap();
        if let Some(why) = &s.storage_failure {
            return Err(format!("the turn stopped: {why}"));
        }
        let Some(front) = s.replay.front().map(Entry::kind) else { return Ok(()) };
        let why =
            format!("replaying the turn after a restart, the harness asked for {what} where the journal has {front:?}");
        tracing::error!(session = %self.session, "{why}");
        s.diverged = Some(why.clone());
        Err(why)
    }

    /// Why the turn's storage failed, if it did.
    pub fn storage_failure(&self) -> Option<String> {
        self.state.lock().unwrap().storage_failure.clone()
    }

    /// Records that the turn cannot go on: its storage failed beyond the retries.
    pub fn fail(&self, why: String) {
        tracing::error!(session = %self.session, "{why}; the turn ends failed");
        self.state.lock().unwrap().storage_failure.get_or_insert(why);
    }

    /// A commit of the turn failed. When another replica took the session, that is how this turn learns it was
    /// given up (its new writer resumes it): not an error of this one.
    fn storage_failed(&self, what: &str, e: &SessionError) {
        let why = format!("{what}: {e}");
        if !matches!(e, SessionError::Elsewhere { .. }) {
            return self.fail(why);
        }
        tracing::info!(session = %self.session, "{what}: another replica writes the session now; the turn stops here");
        self.state.lock().unwrap().storage_failure.get_or_insert(why);
    }

    /// Why the replay diverged, if it did.
    pub fn diverged(&self) -> Option<String> {
        self.state.lock().unwrap().diverged.clone()
    }

    /// Queues an entry (and its events) to ride along with the next commit. Safe for results whose only
    /// consequences are later host calls: until something with an effect is committed, a replay may as well redo
    /// them. Saves a commit per policy verdict and per history read.
    pub fn defer(&self, events: Vec<NewEvent>, entry: Entry) {
        let mut s = self.state.lock().unwrap();
        let entry = self.stored(&mut s, entry);
        s.deferred.push(entry);
        s.deferred_events.extend(events);
    }

    /// Commits events with the entry of the host call that produced them (and everything deferred).
    pub async fn record(&self, events: Vec<NewEvent>, waiters: Vec<Waiter>, entry: Entry) {
        self.defer(events, entry);
        self.flush(waiters).await;
    }

    /// Commits whatever is deferred.
    pub async fn flush(&self, waiters: Vec<Waiter>) {
        let (entries, events) = self.take_deferred();
        if entries.is_empty() && events.is_empty() && waiters.is_empty() {
            return;
        }
        if let Err(e) = self.sessions.record(&self.session, events, waiters, entries).await {
            self.storage_failed("recording a host call of the turn failed", &e);
        }
    }

    /// Publishes events that belong to no host call's result (streamed text, retries, errors).
    pub async fn emit(&self, events: Vec<NewEvent>) {
        if let Err(e) = self.sessions.emit(&self.session, events, Vec::new()).await {
            self.storage_failed("recording the turn's events failed", &e);
        }
    }

    /// Stores a file with its event and its entry (and everything deferred) in one transaction, so a restart
    /// never finds the file without the entry that tells the replay it was written.
    pub async fn record_file(
        &self,
        meta: FileMeta,
        content: Vec<u8>,
        event: NewEvent,
        entry: Entry,
    ) -> Result<(), SessionError> {
        self.defer(vec![event], entry);
        let (entries, events) = self.take_deferred();
        let files = vec![FileChange::Put { meta, content }];
        let result = self.sessions.record_with_files(&self.session, events, entries, files).await;
        if let Err(e) = &result {
            self.storage_failed("storing a file of the turn failed", e);
        }
        result
    }

    /// The entries and events waiting for a commit, handed over to one.
    fn take_deferred(&self) -> (Vec<JournalEntry>, Vec<NewEvent>) {
        let mut s = self.state.lock().unwrap();
        (std::mem::take(&mut s.deferred), std::mem::take(&mut s.deferred_events))
    }

    fn stored(&self, s: &mut State, entry: Entry) -> JournalEntry {
        let idx = s.next;
        s.next += 1;
        let entry = serde_json::to_value(&entry).unwrap_or_default();
        JournalEntry { idx, response_id: self.response_id.clone(), entry }
    }
}

#[cfg(test)]
mod tests {
    use omnigent_runtime::harness::{Role, ToolCall, Usage};
    use serde_json::json;

    use super::*;

    fn round_trip(entry: Entry) {
        let stored = serde_json::to_value(&entry).unwrap();
        assert!(stored["kind"].is_string(), "{stored}");
        let back: Entry = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(back, entry, "{stored}");
    }

    #[test]
    fn every_kind_round_trips() {
        let call = ToolCall { id: "call_1".into(), name: "shell".into(), arguments: r#"{"command":"ls"}"#.into() };
        round_trip(Entry::HistoryThrough { position: Some(7) });
        round_trip(Entry::HistoryThrough { position: None });
        round_trip(Entry::History {
            messages: vec![
                Message { role: Role::User, content: "hi".into(), tool_calls: vec![], tool_call_id: None },
                Message {
                    role: Role::Assistant,
                    content: String::new(),
                    tool_calls: vec![call.clone()],
                    tool_call_id: None,
                },
                Message {
                    role: Role::Tool,
                    content: "a\nb".into(),
                    tool_calls: vec![],
                    tool_call_id: Some("call_1".into()),
                },
            ],
        });
        round_trip(Entry::Complete {
            completion: llm::Completion {
                text: "ok".into(),
                tool_calls: vec![call],
                usage: Usage { input_tokens: 3, output_tokens: 4 },
                stop_reason: "tool_calls".into(),
            },
            children: BTreeMap::from([("call_1".into(), "conv_x".into())]),
        });
        round_trip(Entry::Gate(Verdict::Allow { data: Some(json!({"arguments": "{}"})) }));
        round_trip(Entry::Gate(Verdict::Deny { reason: Some("no".into()) }));
        round_trip(Entry::Ask(Box::new(Ask {
            elicitation_id: "elicit_1".into(),
            request: json!({"elicitation_id": "elicit_1"}),
            data: None,
            held_changes: vec![StateChange {
                key: "n".into(),
                action: crate::policy::StateAction::Increment,
                value: json!(1),
            }],
            held_labels: Map::new(),
            policies: vec!["ask".into()],
            expires_at: 1,
            phase: "tool_call".into(),
        })));
        round_trip(Entry::Started { call_id: "call_1".into() });
        round_trip(Entry::Tool { output: "out".into(), is_error: false });
        round_trip(Entry::Steering { messages: vec!["and then".into()] });
        round_trip(Entry::Emit);
        round_trip(Entry::File { id: "file_1".into() });
    }

    #[test]
    fn verdicts_written_before_the_enum_still_read() {
        // The shapes the hand-written codecs of earlier versions stored.
        let allow: Entry = serde_json::from_value(json!({"kind": "gate", "verdict": "allow", "data": null})).unwrap();
        assert_eq!(allow, Entry::Gate(Verdict::Allow { data: None }));
        let deny: Entry = serde_json::from_value(json!({"kind": "gate", "verdict": "deny", "reason": "r"})).unwrap();
        let Entry::Gate(v) = deny else { panic!() };
        assert_eq!(v.into_result(), Err("r".into()));
        let tool: Entry = serde_json::from_value(json!({"kind": "tool", "output": "x", "is_error": true})).unwrap();
        assert_eq!(tool, Entry::Tool { output: "x".into(), is_error: true });
        let emit: Entry = serde_json::from_value(json!({"kind": "emit"})).unwrap();
        assert_eq!(emit, Entry::Emit);
        let history: Entry = serde_json::from_value(json!({"kind": "history", "messages": [
            {"role": "user", "content": "hi", "tool_calls": [], "tool_call_id": null},
            {"role": "tool", "content": "x", "tool_calls": [], "tool_call_id": "c1"}]}))
        .unwrap();
        let Entry::History { messages } = history else { panic!() };
        assert_eq!((messages[0].role, messages[1].role), (Role::User, Role::Tool));
    }
}
