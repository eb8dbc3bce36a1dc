//! The conversation so far as the turn reads it: from the session actor's memory (which keeps it projected as the
//! transcript grows), or from the store when the actor could not load the transcript. The projection itself is
//! `crate::conversation`.

use std::sync::Arc;

use crate::conversation::Conversation;
use crate::ids::SessionId;
use crate::record::Item;
use crate::session::Sessions;
use crate::session::transcript::Transcript;
use crate::stages::Stage;
use crate::store::StoreError;

/// The whole transcript, in order: from the session actor's memory, or read from the store when the actor could
/// not load it. A failed read is an error, never a shorter conversation.
pub async fn items(sessions: &Sessions, id: &SessionId, transcript: &Transcript) -> Result<Arc<Vec<Item>>, StoreError> {
    let _reading = Stage::History.span();
    match transcript.snapshot() {
        Some(items) => Ok(items),
        None => Ok(Arc::new(sessions.store().all_items(id).await?)),
    }
}

/// The conversation the model is given, as read now: the actor's projection when it keeps the transcript in memory.
pub async fn history(sessions: &Sessions, id: &SessionId, transcript: &Transcript) -> Result<Conversation, StoreError> {
    if let Some(read) = Stage::History.span().in_scope(|| transcript.conversation()) {
        return Ok(read);
    }
    Ok(Conversation::of(&items(sessions, id, transcript).await?))
}

/// The conversation as it was when the transcript ended at `through` (a journaled read, replayed). Items are in
/// position order, and one written again keeps its position and what the conversation reads of it.
pub async fn history_through(
    sessions: &Sessions,
    id: &SessionId,
    transcript: &Transcript,
    through: Option<i64>,
) -> Result<Conversation, StoreError> {
    let items = items(sessions, id, transcript).await?;
    let end = items.partition_point(|i| through.is_some_and(|last| i.position <= last));
    Ok(Conversation::of(&items[..end]))
}
