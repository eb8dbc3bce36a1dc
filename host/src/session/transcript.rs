//! A live session's transcript in memory. Once a turn needs the conversation, the session's actor (the only writer
//! of its items) reads the transcript once and then applies every item it commits, so each later turn projects its
//! conversation from memory instead of reading and parsing the whole transcript from the store again — a read that
//! grew with every turn (1.2–1.6 ms at 300 turns). It also keeps the conversation the model reads projected as items
//! arrive, so a turn copies it instead of projecting every item again. It lives as long as the actor: a session
//! that goes quiet drops it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::conversation::{Conversation, Projection};
use crate::ids::SessionId;
use crate::record::Item;
use crate::store::{Store, StoreError};

/// The shared handle: the actor writes it, the session's turns read it.
#[derive(Clone, Default)]
pub struct Transcript(Arc<Mutex<Option<Loaded>>>);

struct Loaded {
    /// In transcript order (by position). Readers hold a snapshot; a write copies only if one is still held.
    items: Arc<Vec<Item>>,
    /// Item id → index in `items`.
    index: HashMap<String, usize>,
    /// The conversation of `items`, once a turn has read it; dropped by a change other than an append (projected
    /// again on the next read).
    projection: Option<Projection>,
}

impl Transcript {
    /// The transcript as committed so far, if the actor has loaded it.
    pub fn snapshot(&self) -> Option<Arc<Vec<Item>>> {
        self.0.lock().unwrap().as_ref().map(|l| l.items.clone())
    }

    /// The conversation the model reads, if the actor has loaded the transcript.
    pub fn conversation(&self) -> Option<Conversation> {
        let mut guard = self.0.lock().unwrap();
        let loaded = guard.as_mut()?;
        let items = &loaded.items;
        Some(loaded.projection.get_or_insert_with(|| Projection::of(items)).conversation())
    }

    pub(super) fn is_loaded(&self) -> bool {
        self.0.lock().unwrap().is_some()
    }

    /// Reads the whole transcript from the store; from now on the actor keeps it current.
    pub(super) async fn load(&self, store: &Store, id: &SessionId) -> Result<(), StoreError> {
        let items = store.all_items(id).await?;
        let index = items.iter().enumerate().map(|(i, item)| (item.id.clone(), i)).collect();
        *self.0.lock().unwrap() = Some(Loaded { items: Arc::new(items), index, projection: None });
        Ok(())
    }

    /// Applies committed items: a new item goes last (positions only grow), one written again is replaced where
    /// it stands (it keeps its position, as in the store).
    pub(super) fn apply(&self, committed: &[Item]) {
        if committed.is_empty() {
            return;
        }
        let mut guard = self.0.lock().unwrap();
        let Some(loaded) = guard.as_mut() else { return };
        let items = Arc::make_mut(&mut loaded.items);
        for item in committed {
            match loaded.index.get(&item.id) {
                Some(&at) => {
                    let position = items[at].position;
                    items[at] = Item { position, ..item.clone() };
                    loaded.projection = None;
                }
                None => {
                    loaded.index.insert(item.id.clone(), items.len());
                    items.push(item.clone());
                    if let Some(projection) = &mut loaded.projection
                        && !projection.append(item)
                    {
                        loaded.projection = None;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::conversation::test_item;

    fn said(id: &str, position: i64, text: &str) -> Item {
        let data = json!({"role": "assistant", "content": [{"type": "output_text", "text": text}]});
        Item { position, ..test_item(id, "message", data) }
    }

    fn texts(read: &Conversation) -> Vec<String> {
        read.messages.iter().map(|m| m.content.clone()).collect()
    }

    #[test]
    fn the_kept_conversation_follows_appends_and_rewrites() {
        let first = said("a", 1, "one");
        let transcript = Transcript::default();
        assert!(transcript.conversation().is_none(), "not loaded: the turn reads the store");
        let index = HashMap::from([(first.id.clone(), 0)]);
        *transcript.0.lock().unwrap() = Some(Loaded { items: Arc::new(vec![first]), index, projection: None });
        assert_eq!(texts(&transcript.conversation().unwrap()), ["one"]);
        // Appended: folded into the kept projection.
        transcript.apply(&[said("b", 2, "two")]);
        let read = transcript.conversation().unwrap();
        assert_eq!((texts(&read), read.through), (vec!["one".to_string(), "two".to_string()], Some(2)));
        // Written again (same id, new text, position kept): the conversation reads the new text.
        transcript.apply(&[said("a", 9, "one, corrected")]);
        let read = transcript.conversation().unwrap();
        assert_eq!((texts(&read), read.through), (vec!["one, corrected".to_string(), "two".to_string()], Some(2)));
        let items = transcript.snapshot().unwrap();
        assert_eq!(texts(&read), texts(&Conversation::of(&items)));
    }
}
