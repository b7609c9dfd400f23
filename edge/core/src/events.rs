//! Behaviour events on their way from the edge to the origin's analytics: a bounded queue per
//! isolate, flushed in batches after responses, never in a page's way.
//!
//! Pages only ever push (a lock and a `VecDeque` push); the host takes a batch when one is due
//! ([`EventQueue::take_due`]) and sends it in the background. A full queue drops the newest
//! event and counts it; a batch that could not be sent is dropped and counted too (analytics
//! are best effort, orders are not: those go through the outbox). The counts travel with the
//! next batch, so the origin knows how much it missed.

use crate::behaviour::EventKind;
use crate::product::Sku;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Mutex;

/// Events one isolate keeps waiting at most.
pub const EVENT_QUEUE_MAX: usize = 1_000;
/// A batch goes out once this many events wait...
pub const BATCH_EVENTS: usize = 50;
/// ...or the oldest has waited this long.
pub const BATCH_AGE_MS: u64 = 10_000;
/// Largest batch the origin accepts.
pub const BATCH_EVENTS_MAX: usize = EVENT_QUEUE_MAX;

/// One thing a shopper did, without personal data: `visitor` is a random id from their
/// history cookie.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalyticsEvent {
    pub visitor: String,
    pub sku: Sku,
    pub kind: EventKind,
    pub at_ms: u64,
    /// The experiment arm the event happened under (recommendations shown and clicked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
}

/// What the host sends to the origin (`POST /internal/events`, JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBatch {
    pub events: Vec<AnalyticsEvent>,
    /// Events this isolate dropped since its last batch (queue full, or a send failed).
    pub dropped: u64,
}

#[derive(Default)]
struct State {
    events: VecDeque<AnalyticsEvent>,
    dropped: u64,
}

#[derive(Default)]
pub struct EventQueue {
    state: Mutex<State>,
}

impl EventQueue {
    /// Queues an event, or counts it dropped when the queue is full. Never blocks on I/O.
    pub fn push(&self, event: AnalyticsEvent) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.events.len() >= EVENT_QUEUE_MAX {
            state.dropped += 1;
        } else {
            state.events.push_back(event);
        }
    }

    /// A batch, when [`BATCH_EVENTS`] wait or the oldest is [`BATCH_AGE_MS`] old (or `force`).
    pub fn take_due(&self, now_ms: u64, force: bool) -> Option<EventBatch> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let oldest_ms = state.events.front()?.at_ms;
        let due = force
            || state.events.len() >= BATCH_EVENTS
            || now_ms.saturating_sub(oldest_ms) >= BATCH_AGE_MS;
        if !due {
            return None;
        }
        let events: Vec<AnalyticsEvent> = state.events.drain(..).collect();
        Some(EventBatch {
            events,
            dropped: std::mem::take(&mut state.dropped),
        })
    }

    /// Counts a batch that could not be delivered as dropped.
    pub fn lost(&self, batch: &EventBatch) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.dropped += batch.events.len() as u64 + batch.dropped;
    }

    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .events
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> AnalyticsEvent {
        AnalyticsEvent {
            visitor: "v".into(),
            sku: Sku::parse("A").unwrap(),
            kind: EventKind::Viewed,
            at_ms: n,
            arm: None,
        }
    }

    #[test]
    fn batches_go_by_size_or_age_and_drops_are_counted() {
        let queue = EventQueue::default();
        assert_eq!(queue.take_due(0, true), None, "nothing to send");
        queue.push(event(1_000));
        assert_eq!(queue.take_due(1_000 + BATCH_AGE_MS - 1, false), None);
        let batch = queue.take_due(1_000 + BATCH_AGE_MS, false).unwrap();
        assert_eq!((batch.events.len(), batch.dropped), (1, 0));
        for n in 0..BATCH_EVENTS as u64 {
            queue.push(event(5_000 + n));
        }
        assert_eq!(
            queue.take_due(5_000, false).unwrap().events.len(),
            BATCH_EVENTS
        );
        for n in 0..(EVENT_QUEUE_MAX as u64 + 7) {
            queue.push(event(n));
        }
        assert_eq!(queue.len(), EVENT_QUEUE_MAX, "the queue is bounded");
        let batch = queue.take_due(0, true).unwrap();
        assert_eq!(batch.dropped, 7);
        queue.lost(&batch);
        queue.push(event(1));
        assert_eq!(
            queue.take_due(0, true).unwrap().dropped,
            EVENT_QUEUE_MAX as u64 + 7
        );
    }
}
