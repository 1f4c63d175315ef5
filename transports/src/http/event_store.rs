//! Resumable event streams of legacy sessions, kept in memory for a bounded time and size.
//!
//! A 2025-11-25 session tells its client it may resume (each stream starts with a priming event
//! carrying an id and a `retry` delay). rmcp keeps a session's stream only until the stream's
//! final response is sent, so a client whose connection dropped before the answer came, and
//! that comes back with `Last-Event-ID` once the call has finished, would get nothing. This store
//! keeps every event of every session stream for `SSE_RETENTION_SECS` (and at most
//! `SSE_RETENTION_BYTES` in all, oldest dropped first), so such a client gets the events it
//! missed, the answer included.
//!
//! Event ids are 128 random bits, never guessable, and each stream is claimed by the session it
//! belongs to ([`claim`](MemoryEventStore::claim)); a resume names a session, and an event of
//! another session's stream is as unknown as one never issued. 2026-07-28 requests do not use
//! this store (they have no session to resume in).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rmcp::transport::streamable_http_server::session::{
    EventId, EventStore, EventStoreError, EventStream, ServerSseMessage,
};
use tokio::time::Instant;

/// The retention bounds of a [`MemoryEventStore`].
#[derive(Debug, Clone, Copy)]
pub struct EventRetention {
    /// How long an event is kept after it was sent.
    pub time: Duration,
    /// The most bytes kept over all streams (each event's JSON, ids and bookkeeping).
    pub bytes: usize,
}

/// Session events kept for resumption; see the module docs.
#[derive(Debug)]
pub struct MemoryEventStore {
    retention: EventRetention,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Stream id → its events, oldest first.
    streams: HashMap<String, Log>,
    /// Event id → (stream id, position in that stream).
    index: HashMap<String, (String, u64)>,
    /// Every kept event in the order stored, for expiry: (stored at, event id, bytes).
    order: VecDeque<(Instant, String, usize)>,
    bytes: usize,
}

#[derive(Debug, Default)]
struct Log {
    /// The session that owns the stream, once claimed.
    session: Option<String>,
    next: u64,
    events: VecDeque<(u64, ServerSseMessage)>,
}

/// Why a stream cannot be replayed.
#[derive(Debug, thiserror::Error)]
#[error("no event {0:?} is kept: never issued, or older than the retention window")]
struct UnknownEvent(String);

impl MemoryEventStore {
    /// An empty store keeping events within `retention`.
    pub fn new(retention: EventRetention) -> Self {
        MemoryEventStore {
            retention,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update below leaves the maps consistent before it can panic (none does).
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records that the stream of `event_id` belongs to `session` (the first claim wins).
    pub(crate) fn claim(&self, event_id: &str, session: &str) {
        let mut state = self.state();
        let Some((stream, _)) = state.index.get(event_id).cloned() else {
            return;
        };
        if let Some(log) = state.streams.get_mut(&stream) {
            log.session.get_or_insert_with(|| session.to_owned());
        }
    }

    /// `true` when `event_id` is kept and its stream belongs to `session`.
    pub(crate) fn belongs_to(&self, event_id: &str, session: &str) -> bool {
        let state = self.state();
        let Some((stream, _)) = state.index.get(event_id) else {
            return false;
        };
        state
            .streams
            .get(stream)
            .and_then(|log| log.session.as_deref())
            .is_some_and(|owner| owner == session)
    }

    /// The stream `event_id` belongs to, if it is kept.
    pub(crate) fn stream_of(&self, event_id: &str) -> Option<String> {
        self.state().index.get(event_id).map(|(stream, _)| stream.clone())
    }

    /// The kept events of `stream_id` after `after` (all of them for `None`), oldest first.
    pub(crate) fn stream_after(&self, stream_id: &str, after: Option<&str>) -> Vec<ServerSseMessage> {
        let state = self.state();
        let after = after.and_then(|id| state.index.get(id)).map(|(_, seq)| *seq);
        state
            .streams
            .get(stream_id)
            .map(|log| {
                log.events
                    .iter()
                    .filter(|(seq, _)| after.is_none_or(|after| *seq > after))
                    .map(|(_, event)| event.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Events kept, over all streams.
    pub fn len(&self) -> usize {
        self.state().order.len()
    }

    /// `true` when no event is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn evict(&self, state: &mut State, now: Instant) {
        while let Some((at, _, size)) = state.order.front() {
            let expired = now.saturating_duration_since(*at) >= self.retention.time;
            if !expired && state.bytes <= self.retention.bytes {
                break;
            }
            let size = *size;
            let Some((_, id, _)) = state.order.pop_front() else {
                break;
            };
            state.bytes = state.bytes.saturating_sub(size);
            if let Some((stream, _)) = state.index.remove(&id) {
                let empty = state.streams.get_mut(&stream).is_none_or(|log| {
                    log.events.pop_front();
                    log.events.is_empty()
                });
                if empty {
                    state.streams.remove(&stream);
                }
            }
        }
    }
}

/// Where legacy sessions keep their streams' events, with what resuming needs beyond rmcp's
/// [`EventStore`]: which session each stream belongs to. This replica's memory
/// ([`MemoryEventStore`]) or Redis ([`RedisEvents`](crate::redis::RedisEvents)), which lets a
/// client resume on any replica.
#[async_trait::async_trait]
pub trait SessionEvents: EventStore + std::fmt::Debug {
    /// Records that the stream of `event_id` belongs to `session` (its first claim wins).
    async fn claim(&self, event_id: &str, session: &str);
    /// `true` when `event_id` is kept and its stream belongs to `session`.
    async fn belongs_to(&self, event_id: &str, session: &str) -> bool;
    /// The stream `event_id` belongs to, if it is kept.
    async fn stream_of(&self, event_id: &str) -> Option<String>;
    /// The kept events of `stream_id` after `after` (all of them for `None`), oldest first.
    async fn stream_after(&self, stream_id: &str, after: Option<&str>) -> Vec<ServerSseMessage>;
}

#[async_trait::async_trait]
impl SessionEvents for MemoryEventStore {
    async fn claim(&self, event_id: &str, session: &str) {
        MemoryEventStore::claim(self, event_id, session);
    }
    async fn belongs_to(&self, event_id: &str, session: &str) -> bool {
        MemoryEventStore::belongs_to(self, event_id, session)
    }
    async fn stream_of(&self, event_id: &str) -> Option<String> {
        MemoryEventStore::stream_of(self, event_id)
    }
    async fn stream_after(&self, stream_id: &str, after: Option<&str>) -> Vec<ServerSseMessage> {
        MemoryEventStore::stream_after(self, stream_id, after)
    }
}

#[async_trait::async_trait]
impl EventStore for MemoryEventStore {
    async fn store_event(
        &self,
        stream_id: &str,
        event: &ServerSseMessage,
    ) -> Result<EventId, EventStoreError> {
        let id = format!("{:032x}", rand::random::<u128>());
        // What an entry really holds: the event's JSON, its id three times (event, index, order),
        // the stream id in the index, and the bookkeeping around them.
        let size = 128
            + 3 * id.len()
            + stream_id.len()
            + event
                .message
                .as_ref()
                .and_then(|m| serde_json::to_vec(m.as_ref()).ok())
                .map_or(0, |json| json.len());
        let mut stored = event.clone();
        stored.event_id = Some(id.clone());
        let now = Instant::now();
        let mut state = self.state();
        let log = state.streams.entry(stream_id.to_owned()).or_default();
        let seq = log.next;
        log.next += 1;
        log.events.push_back((seq, stored));
        state.index.insert(id.clone(), (stream_id.to_owned(), seq));
        state.order.push_back((now, id.clone(), size));
        state.bytes += size;
        self.evict(&mut state, now);
        metrics::gauge!("mcp_sse_events_kept").set(state.order.len() as f64);
        Ok(id)
    }

    async fn replay_events_after(&self, last_event_id: &str) -> Result<EventStream, EventStoreError> {
        let mut state = self.state();
        self.evict(&mut state, Instant::now());
        let Some((stream, after)) = state.index.get(last_event_id).cloned() else {
            return Err(Box::new(UnknownEvent(last_event_id.chars().take(64).collect())));
        };
        let events: Vec<ServerSseMessage> = state
            .streams
            .get(&stream)
            .map(|log| {
                log.events
                    .iter()
                    .filter(|(seq, _)| *seq > after)
                    .map(|(_, event)| event.clone())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Box::pin(futures::stream::iter(events)))
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt as _;

    use super::*;

    fn store(time: u64, bytes: usize) -> MemoryEventStore {
        MemoryEventStore::new(EventRetention {
            time: Duration::from_secs(time),
            bytes,
        })
    }

    async fn replay(store: &MemoryEventStore, after: &str) -> Option<Vec<String>> {
        let stream = store.replay_events_after(after).await.ok()?;
        Some(stream.map(|e| e.event_id.unwrap_or_default()).collect().await)
    }

    #[tokio::test(start_paused = true)]
    async fn replays_what_came_after_within_the_window_and_only_to_the_owner() {
        let store = store(60, 1 << 20);
        let priming = ServerSseMessage::retry(Duration::from_secs(3));
        let a0 = store.store_event("a", &priming).await.unwrap();
        let b0 = store.store_event("b", &priming).await.unwrap();
        let a1 = store.store_event("a", &priming).await.unwrap();
        let a2 = store.store_event("a", &priming).await.unwrap();
        assert_eq!(replay(&store, &a0).await, Some(vec![a1.clone(), a2.clone()]));
        assert_eq!(replay(&store, &a2).await, Some(vec![]));
        assert_eq!(replay(&store, &b0).await, Some(vec![]));
        assert_eq!(replay(&store, "0").await, None);
        // Owned by the session that claimed the stream, by no other.
        store.claim(&a1, "session-1");
        store.claim(&a2, "session-2");
        assert!(store.belongs_to(&a0, "session-1"));
        assert!(!store.belongs_to(&a0, "session-2"));
        assert!(!store.belongs_to(&b0, "session-1"));
        // Past the window: unknown.
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(replay(&store, &a0).await, None);
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn the_byte_bound_drops_the_oldest_first() {
        // Each of these events is charged 128 + 3 × 32 + 1 bytes: room for three.
        let store = store(3600, 225 * 3);
        let event = ServerSseMessage::retry(Duration::from_secs(1));
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(store.store_event("s", &event).await.unwrap());
        }
        assert_eq!(store.len(), 3);
        assert_eq!(replay(&store, &ids[0]).await, None);
        assert_eq!(replay(&store, &ids[2]).await, Some(ids[3..].to_vec()));
    }
}
