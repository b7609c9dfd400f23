//! "Bought together": which products go with which, counted from what shoppers did.
//!
//! Two signals, over a recent window:
//! - **co-purchases**: two products in one order (the order book; cancelled orders left out),
//!   weight [`CO_PURCHASE_WEIGHT`] per order;
//! - **co-views**: two products viewed or carted by one visitor in one browsing session (the
//!   behaviour events), weight [`CO_VIEW_WEIGHT`] per session. They give new shops (and
//!   products nobody bought yet) a list before purchases accumulate.
//!
//! Each product's list keeps its [`TOGETHER_PER_PRODUCT`] best partners. `GET
//! /internal/together` serves the lists; `shopctl publish --trending-from` takes them into the
//! snapshot (mapping variant SKUs to their products), and the edge shows them as "Frequently
//! bought together" and ranks the co-purchase arm of the recommendations experiment with them.

use crate::analytics::Analytics;
use crate::http::{authorize, RouteError};
use crate::orders::OrderBook;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

/// Weight of two products in one order.
pub const CO_PURCHASE_WEIGHT: u64 = 3;
/// Weight of two products in one browsing session.
pub const CO_VIEW_WEIGHT: u64 = 1;
/// Partners kept per product.
pub const TOGETHER_PER_PRODUCT: usize = 8;
/// Products per basket or session counted (the first ones): bounds the pairs at 190 each.
const ITEMS_PER_GROUP_MAX: usize = 20;
/// A pause longer than this ends a browsing session.
const SESSION_GAP_MS: u64 = 30 * 60 * 1_000;
/// Most recent orders and events read for one computation.
const ORDERS_MAX: usize = 100_000;
const EVENTS_MAX: usize = 500_000;
/// Longest window the lists look back over.
const DAYS_MAX: u64 = 365;

/// A partner product and how strongly it goes with the product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partner {
    pub sku: String,
    pub score: u64,
}

/// Each product's partners, best first (ties by SKU), from `baskets` (orders) and `sessions`.
pub fn rank(
    baskets: &[Vec<String>],
    sessions: &[Vec<String>],
    per_product: usize,
) -> BTreeMap<String, Vec<Partner>> {
    let mut pairs: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for (groups, weight) in [(baskets, CO_PURCHASE_WEIGHT), (sessions, CO_VIEW_WEIGHT)] {
        for group in groups {
            let mut items: Vec<&str> = group
                .iter()
                .take(ITEMS_PER_GROUP_MAX)
                .map(String::as_str)
                .collect();
            items.sort_unstable();
            items.dedup();
            for (i, a) in items.iter().enumerate() {
                for b in &items[i + 1..] {
                    *pairs.entry((a, b)).or_default() += weight;
                    *pairs.entry((b, a)).or_default() += weight;
                }
            }
        }
    }
    let mut lists: BTreeMap<String, Vec<Partner>> = BTreeMap::new();
    for ((a, b), score) in pairs {
        lists.entry(a.to_owned()).or_default().push(Partner {
            sku: b.to_owned(),
            score,
        });
    }
    for list in lists.values_mut() {
        list.sort_by(|x, y| y.score.cmp(&x.score).then_with(|| x.sku.cmp(&y.sku)));
        list.truncate(per_product);
    }
    lists
}

/// The lists over the last `days`, from the order book and the analytics.
pub async fn compute(
    book: &OrderBook,
    analytics: &Analytics,
    now_ms: u64,
    days: u64,
) -> Result<BTreeMap<String, Vec<Partner>>, RouteError> {
    let since_ms = now_ms.saturating_sub(days.clamp(1, DAYS_MAX) * 24 * 60 * 60 * 1_000);
    let baskets = book
        .baskets(since_ms, ORDERS_MAX)
        .await
        .map_err(|e| RouteError::Unavailable(e.to_string()))?;
    let analytics = analytics.clone();
    let sessions = tokio::task::spawn_blocking(move || {
        analytics.sessions(since_ms, SESSION_GAP_MS, EVENTS_MAX)
    })
    .await
    .map_err(|e| RouteError::Unavailable(e.to_string()))?
    .map_err(|e| RouteError::Unavailable(e.to_string()))?;
    Ok(rank(&baskets, &sessions, TOGETHER_PER_PRODUCT))
}

#[derive(Clone)]
struct RouteState {
    book: OrderBook,
    analytics: Analytics,
    token: String,
}

/// `GET /internal/together?days=` (default 30) behind the origin token; absent without one.
pub fn routes(book: OrderBook, analytics: Analytics, token: Option<String>) -> Router {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Router::new();
    };
    Router::new()
        .route("/internal/together", get(together))
        .with_state(RouteState {
            book,
            analytics,
            token,
        })
}

#[derive(Deserialize)]
struct TogetherQuery {
    days: Option<u64>,
}

async fn together(
    State(state): State<RouteState>,
    headers: HeaderMap,
    Query(query): Query<TogetherQuery>,
) -> Result<Json<serde_json::Value>, RouteError> {
    authorize(&headers, &state.token)?;
    let days = query.days.unwrap_or(30).clamp(1, DAYS_MAX);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let lists = compute(&state.book, &state.analytics, now_ms, days).await?;
    Ok(Json(json!({ "days": days, "products": lists })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(raw: &[&[&str]]) -> Vec<Vec<String>> {
        raw.iter()
            .map(|g| g.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    fn partners(lists: &BTreeMap<String, Vec<Partner>>, sku: &str) -> Vec<(String, u64)> {
        lists
            .get(sku)
            .into_iter()
            .flatten()
            .map(|p| (p.sku.clone(), p.score))
            .collect()
    }

    #[test]
    fn purchases_outweigh_views_and_lists_are_symmetric_and_bounded() {
        let baskets = groups(&[&["MUG", "TEA"], &["MUG", "TEA", "POT"], &["HAT"]]);
        let sessions = groups(&[
            &["MUG", "CUP"],
            &["MUG", "CUP"],
            &["MUG", "CUP"],
            &["MUG", "CUP", "CUP"],
        ]);
        let lists = rank(&baskets, &sessions, 2);
        // TEA: 2 orders × 3 = 6; CUP: 4 sessions × 1 = 4; POT: 1 order × 3 = 3 (cut at 2).
        assert_eq!(
            partners(&lists, "MUG"),
            vec![("TEA".into(), 6), ("CUP".into(), 4)]
        );
        assert_eq!(
            partners(&lists, "TEA"),
            vec![("MUG".into(), 6), ("POT".into(), 3)]
        );
        assert_eq!(
            partners(&lists, "CUP"),
            vec![("MUG".into(), 4)],
            "a repeated view counts once"
        );
        assert!(
            !lists.contains_key("HAT"),
            "a product bought alone has no partners"
        );
        assert!(lists.values().all(|l| l.len() <= 2));
    }

    #[test]
    fn a_huge_basket_counts_its_first_items_only() {
        let big: Vec<String> = (0..500).map(|i| format!("SKU-{i:03}")).collect();
        let lists = rank(&[big], &[], TOGETHER_PER_PRODUCT);
        assert_eq!(lists.len(), ITEMS_PER_GROUP_MAX);
    }
}
