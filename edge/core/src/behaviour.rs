//! A shopper's recent behaviour, kept in a signed, size-bounded cookie: what personalization at
//! the edge is computed from, with no origin round trip and no personal data.
//!
//! The cookie holds at most [`EVENTS_MAX`] events (SKU, kind, time in seconds), newest last, as
//! CBOR, then a truncated HMAC-SHA256 over it with the shop's secret: a shopper (or anyone) can
//! read it, nobody can forge one. A cookie that fails to decode or verify counts as no history,
//! never as an error. A shopper who opts out gets the [`OPT_OUT_COOKIE`] and no history cookie:
//! nothing is recorded and pages show generic lists.
//!
//! Pages that shared caches store (home, listings, products) never set these cookies: the
//! browser records events through no-store server functions after hydration, and asks for its
//! personalized lists the same way.

use crate::product::Sku;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Name of the history cookie.
pub const HISTORY_COOKIE: &str = "shop_history";
/// Name of the opt-out cookie (value `1`).
pub const OPT_OUT_COOKIE: &str = "shop_no_personalization";
/// Events kept: the oldest drop out first.
pub const EVENTS_MAX: usize = 24;
/// Bytes of HMAC kept: 128 bits.
const TAG_BYTES: usize = 16;
/// Largest cookie value accepted for decoding (a full history is well below it).
pub const COOKIE_BYTES_MAX: usize = 3_000;
/// Cookie lifetime.
pub const HISTORY_MAX_AGE_S: u64 = 30 * 24 * 60 * 60;
/// Half-life of an event's weight in recommendations.
pub const HALF_LIFE_S: u64 = 2 * 24 * 60 * 60;

/// What a shopper did with a product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Viewed,
    Carted,
    Purchased,
    /// A recommendation was shown (analytics only, never in the history).
    Shown,
    /// A shown recommendation was clicked (analytics only).
    Clicked,
}

impl EventKind {
    /// How much the event says about the shopper's taste.
    pub fn weight(self) -> f32 {
        match self {
            EventKind::Viewed => 1.0,
            EventKind::Carted => 2.0,
            EventKind::Purchased => 3.0,
            EventKind::Shown | EventKind::Clicked => 0.0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Viewed => "viewed",
            EventKind::Carted => "carted",
            EventKind::Purchased => "purchased",
            EventKind::Shown => "shown",
            EventKind::Clicked => "clicked",
        }
    }
}

/// The running recommendations experiment: which ranking a visitor's "Recommended for you" uses.
/// (`recs-1` compared the vector index with category affinity alone; `recs-2` replaced that
/// baseline with co-purchases once the origin published "bought together" lists.)
pub const RECOMMENDATIONS_EXPERIMENT: &str = "recs-2";

/// An arm of [`RECOMMENDATIONS_EXPERIMENT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    /// The vector index searched with the shopper's mean vector, re-ranked by category affinity.
    Vector,
    /// Products bought together with the shopper's (the origin's co-purchase lists), then
    /// best-sellers, re-ranked by category affinity; no vector index.
    CoPurchase,
}

impl Arm {
    /// The visitor's arm: stable (a hash of the experiment and the visitor id), about half each.
    pub fn of(visitor: &str) -> Arm {
        let hash =
            crate::shard::fnv1a_64(format!("{RECOMMENDATIONS_EXPERIMENT}/{visitor}").as_bytes());
        if hash % 2 == 0 {
            Arm::Vector
        } else {
            Arm::CoPurchase
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Arm::Vector => "vector",
            Arm::CoPurchase => "co_purchase",
        }
    }

    pub fn parse(raw: &str) -> Option<Arm> {
        [Arm::Vector, Arm::CoPurchase]
            .into_iter()
            .find(|a| a.as_str() == raw)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub sku: Sku,
    pub kind: EventKind,
    /// Seconds since the Unix epoch.
    pub at_s: u64,
}

/// The shopper's recent events, newest last.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// A random id, no personal data: ties a visitor's events together in analytics and gives
    /// them a stable experiment arm.
    #[serde(default)]
    pub visitor: String,
    pub events: Vec<Event>,
}

impl History {
    /// Adds an event; the same SKU and kind again moves to the newest place instead of
    /// repeating. Keeps at most [`EVENTS_MAX`].
    pub fn record(&mut self, event: Event) {
        self.events
            .retain(|e| !(e.sku == event.sku && e.kind == event.kind));
        self.events.push(event);
        let excess = self.events.len().saturating_sub(EVENTS_MAX);
        self.events.drain(..excess);
    }

    /// The visitor id, made now if the history has none yet (a random 64-bit hex string).
    pub fn visitor_id(&mut self) -> &str {
        if self.visitor.is_empty() {
            // Without randomness the visitor stays anonymous-but-shared ("0"), never an error.
            self.visitor = crate::api::random_hex::<8>().unwrap_or_else(|_| "0".into());
        }
        &self.visitor
    }

    /// SKUs the shopper has seen (any event), newest first, each once.
    pub fn seen(&self) -> Vec<&Sku> {
        let mut seen: Vec<&Sku> = Vec::new();
        for event in self.events.iter().rev() {
            if !seen.contains(&&event.sku) {
                seen.push(&event.sku);
            }
        }
        seen
    }

    /// Each SKU's weight now: the sum of its events' kind weights, halved every
    /// [`HALF_LIFE_S`] of age. Newest first.
    pub fn weights(&self, now_s: u64) -> Vec<(&Sku, f32)> {
        let mut weights: Vec<(&Sku, f32)> = Vec::new();
        for event in self.events.iter().rev() {
            let age_s = now_s.saturating_sub(event.at_s) as f32;
            let weight = event.kind.weight() * 0.5f32.powf(age_s / HALF_LIFE_S as f32);
            match weights.iter_mut().find(|(sku, _)| *sku == &event.sku) {
                Some((_, w)) => *w += weight,
                None => weights.push((&event.sku, weight)),
            }
        }
        weights
    }

    /// The signed cookie value.
    pub fn seal(&self, secret: &[u8]) -> String {
        let body = crate::codec::to_cbor(self);
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}",
            engine.encode(&body),
            engine.encode(tag(secret, &body))
        )
    }

    /// The history in a cookie value, or `None` when it is not one this shop signed.
    pub fn open(value: &str, secret: &[u8]) -> Option<History> {
        if value.len() > COOKIE_BYTES_MAX || secret.is_empty() {
            return None;
        }
        let (body, given) = value.split_once('.')?;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let body = engine.decode(body).ok()?;
        let given = engine.decode(given).ok()?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).ok()?;
        mac.update(&body);
        // Constant-time comparison of the truncated tag.
        mac.verify_truncated_left(&given).ok()?;
        if given.len() != TAG_BYTES {
            return None;
        }
        let mut history: History = crate::codec::from_cbor(&body).ok()?;
        history.events.truncate(EVENTS_MAX);
        Some(history)
    }
}

fn tag(secret: &[u8], body: &[u8]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    mac.finalize().into_bytes()[..TAG_BYTES].to_vec()
}

/// Whether a `Cookie` header carries the opt-out.
pub fn opted_out(cookie_header: &str) -> bool {
    cookie(cookie_header, OPT_OUT_COOKIE) == Some("1")
}

/// The shopper's history from a `Cookie` header: `None` when they opted out, have none, or the
/// cookie is not one this shop signed with `secret`.
pub fn history_from_cookies(cookie_header: &str, secret: &[u8]) -> Option<History> {
    if opted_out(cookie_header) {
        return None;
    }
    History::open(cookie(cookie_header, HISTORY_COOKIE)?, secret)
}

/// A cookie's value from a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` value that stores `history`.
pub fn history_set_cookie(history: &History, secret: &[u8]) -> String {
    format!(
        "{HISTORY_COOKIE}={}; Path=/; Max-Age={HISTORY_MAX_AGE_S}; HttpOnly; Secure; SameSite=Lax",
        history.seal(secret)
    )
}

/// The `Set-Cookie` values of opting out (history removed) or back in.
pub fn opt_out_set_cookies(out: bool) -> [String; 2] {
    if out {
        [
            format!(
                "{OPT_OUT_COOKIE}=1; Path=/; Max-Age={HISTORY_MAX_AGE_S}; Secure; SameSite=Lax"
            ),
            format!("{HISTORY_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax"),
        ]
    } else {
        [
            format!("{OPT_OUT_COOKIE}=; Path=/; Max-Age=0; Secure; SameSite=Lax"),
            format!("{HISTORY_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax"),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(sku: &str, kind: EventKind, at_s: u64) -> Event {
        Event {
            sku: Sku::parse(sku).unwrap(),
            kind,
            at_s,
        }
    }

    #[test]
    fn history_is_bounded_and_moves_repeats_to_the_front() {
        let mut h = History::default();
        for i in 0..(EVENTS_MAX + 10) {
            h.record(event(&format!("S{i}"), EventKind::Viewed, i as u64));
        }
        assert_eq!(h.events.len(), EVENTS_MAX);
        assert_eq!(h.events[0].sku.as_str(), "S10", "the oldest dropped out");
        h.record(event("S10", EventKind::Viewed, 100));
        assert_eq!(h.events.len(), EVENTS_MAX);
        assert_eq!(h.events.last().unwrap().sku.as_str(), "S10");
        assert_eq!(h.seen()[0].as_str(), "S10");
    }

    #[test]
    fn recent_and_stronger_events_weigh_more() {
        let mut h = History::default();
        let now = 10 * HALF_LIFE_S;
        h.record(event("OLD", EventKind::Viewed, now - 2 * HALF_LIFE_S));
        h.record(event("NEW", EventKind::Viewed, now));
        h.record(event("BOUGHT", EventKind::Purchased, now - HALF_LIFE_S));
        let w: std::collections::BTreeMap<&str, f32> = h
            .weights(now)
            .into_iter()
            .map(|(s, w)| (s.as_str(), w))
            .collect();
        assert!((w["OLD"] - 0.25).abs() < 1e-4, "{w:?}");
        assert!((w["NEW"] - 1.0).abs() < 1e-4);
        assert!((w["BOUGHT"] - 1.5).abs() < 1e-4);
    }

    #[test]
    fn an_opt_out_hides_the_history() {
        let mut h = History::default();
        h.record(event("A", EventKind::Viewed, 1));
        let header = format!("{HISTORY_COOKIE}={}", h.seal(b"secret"));
        assert_eq!(history_from_cookies(&header, b"secret"), Some(h));
        assert_eq!(
            history_from_cookies(&format!("{header}; {OPT_OUT_COOKIE}=1"), b"secret"),
            None
        );
        assert!(History::default().visitor_id().len() == 16);
    }

    #[test]
    fn arms_are_stable_and_balanced() {
        let vector = (0..10_000)
            .filter(|i| Arm::of(&format!("{i:016x}")) == Arm::Vector)
            .count();
        assert!(
            (4_700..=5_300).contains(&vector),
            "{vector} of 10000 in the vector arm"
        );
        assert_eq!(Arm::of("abc"), Arm::of("abc"));
        assert_eq!(Arm::parse(Arm::CoPurchase.as_str()), Some(Arm::CoPurchase));
    }

    #[test]
    fn only_cookies_this_shop_signed_open() {
        let mut h = History::default();
        h.record(event("A", EventKind::Carted, 5));
        let sealed = h.seal(b"secret");
        assert_eq!(History::open(&sealed, b"secret"), Some(h.clone()));
        assert_eq!(History::open(&sealed, b"other"), None, "another secret");
        assert_eq!(History::open(&sealed, b""), None, "no secret, no history");
        let (body, tag) = sealed.split_once('.').unwrap();
        let mut forged = History::default();
        forged.record(event("B", EventKind::Purchased, 5));
        let forged_body = forged
            .seal(b"attacker")
            .split_once('.')
            .unwrap()
            .0
            .to_owned();
        assert_eq!(
            History::open(&format!("{forged_body}.{tag}"), b"secret"),
            None
        );
        assert_eq!(
            History::open(&format!("{body}.{}", &tag[..4]), b"secret"),
            None,
            "short tag"
        );
        for junk in ["", ".", "a.b", "%%%.%%%", &"x".repeat(COOKIE_BYTES_MAX + 1)] {
            assert_eq!(History::open(junk, b"secret"), None, "{junk:?}");
        }
        assert_eq!(
            cookie("a=1; shop_history=xyz; b=2", HISTORY_COOKIE),
            Some("xyz")
        );
        assert_eq!(cookie("a=1", HISTORY_COOKIE), None);
    }
}
