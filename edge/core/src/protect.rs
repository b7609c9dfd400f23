//! Edge protection: rate limits per client, hoarding caps per shopper, and a bot score at
//! checkout, as one axum middleware ([`Protection::layer`]) in front of the storefront.
//!
//! # Clients
//! A client is its IP address (`CF-Connecting-IP`, else the first `X-Forwarded-For`) plus the
//! [`CLIENT_COOKIE`] this layer sets on first sight. Rate limits apply per client and, more
//! loosely ([`ProtectionConfig::ip_factor`]), per IP: a bot that drops its cookie gets a new
//! client key but not a new IP budget.
//!
//! # Memory
//! Everything is kept per isolate in LRU maps of at most [`ProtectionConfig::clients_max`]
//! entries (and the decision log in a ring of [`DECISIONS_MAX`]): a flood of new clients evicts
//! the least recently seen, who then start afresh. That trades precision for a hard bound; the
//! limits are a first line, stock and usage limits are still enforced by the shards.
//!
//! # Decisions
//! Every refusal (429 rate limit, 429 hoarding, 403 bot score) and every scored checkout is
//! recorded with its reason ([`Protection::decisions`], `GET /_admin/protection`).
//!
//! Time comes from the injected [`Clock`], so tests move it by hand: no sleeps.

pub mod carry;

use crate::behaviour::cookie;
use crate::product::Sku;
use crate::shard::fnv1a_64;
use crate::snapshot::Clock;
use crate::stock::Line;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lru::LruCache;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

/// The cookie naming a client (random-looking hex, no meaning of its own).
pub const CLIENT_COOKIE: &str = "shop_client";
/// Decisions kept for the admin, newest last.
pub const DECISIONS_MAX: usize = 1_000;
/// Largest request body the layer reads to see a checkout's or hold's lines.
pub const INSPECTED_BODY_BYTES_MAX: usize = 64 * 1024;
/// Orders (holds and checkouts) remembered per shopper for the hoarding caps.
const ORDERS_PER_SHOPPER_MAX: usize = 32;
/// Request times remembered per client for the request-rate signal.
const RECENT_REQUESTS_MAX: usize = 64;

/// A budget of `requests` per `per_ms`, refilled continuously (a token bucket).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub requests: u32,
    pub per_ms: u64,
}

/// What the protection allows; [`Default`] is the shop's defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectionConfig {
    pub checkout: Rate,
    pub hold: Rate,
    pub search: Rate,
    /// An IP's budget is this many clients' budgets (shared networks, cookie droppers).
    pub ip_factor: u32,
    /// Clients (and IPs, and shoppers) remembered at most, each map.
    pub clients_max: usize,
    /// Units of one SKU a shopper may hold or buy per `window_ms`.
    pub units_per_sku_max: u32,
    pub window_ms: u64,
    /// Holds a shopper may have open at once.
    pub holds_max: u32,
    /// How long a hold counts as open (the checkout hold TTL).
    pub hold_ttl_ms: u64,
    /// A checkout scoring this much or more is refused.
    pub bot_score_max: u32,
    /// Checkouts sooner than this after a client's first page view are "impossible timing".
    pub human_checkout_ms_min: u64,
    /// More requests than this within `burst_window_ms` raise the bot score.
    pub burst_requests_max: u32,
    pub burst_window_ms: u64,
}

impl Default for ProtectionConfig {
    fn default() -> Self {
        Self {
            checkout: Rate {
                requests: 10,
                per_ms: 60_000,
            },
            hold: Rate {
                requests: 30,
                per_ms: 60_000,
            },
            search: Rate {
                requests: 60,
                per_ms: 60_000,
            },
            ip_factor: 4,
            clients_max: 50_000,
            units_per_sku_max: 5,
            window_ms: 15 * 60_000,
            holds_max: 3,
            hold_ttl_ms: crate::checkout::CHECKOUT_HOLD_TTL_MS,
            bot_score_max: 80,
            human_checkout_ms_min: 3_000,
            burst_requests_max: 30,
            burst_window_ms: 10_000,
        }
    }
}

/// The kinds of requests protected differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteClass {
    Checkout,
    Hold,
    Release,
    Search,
    /// A storefront page a person looks at (the bot heuristics count them).
    Page,
    Other,
}

impl RouteClass {
    /// Classifies a request by method, path and query.
    pub fn of(method: &Method, path: &str, query: Option<&str>) -> Self {
        let has_q = query.is_some_and(|q| q.split('&').any(|p| p.starts_with("q=") && p.len() > 2));
        match (method, path) {
            (&Method::POST, "/api/checkout") => RouteClass::Checkout,
            (&Method::POST, p) if p.starts_with("/_sfn/place-order") => RouteClass::Checkout,
            (&Method::POST, p) if p.starts_with("/_sfn/hold-cart") => RouteClass::Hold,
            (&Method::POST, p) if p.starts_with("/_sfn/release-cart") => RouteClass::Release,
            (_, "/search") => RouteClass::Search,
            (_, "/api/products") if has_q => RouteClass::Search,
            (_, p) if p.starts_with("/_sfn/browse") && has_q => RouteClass::Search,
            (&Method::GET, p)
                if !p.starts_with("/api/")
                    && !p.starts_with("/_")
                    && !p.starts_with("/pkg/")
                    && !p.contains('.') =>
            {
                RouteClass::Page
            }
            _ => RouteClass::Other,
        }
    }

    fn rate(self, config: &ProtectionConfig) -> Option<Rate> {
        match self {
            RouteClass::Checkout => Some(config.checkout),
            RouteClass::Hold | RouteClass::Release => Some(config.hold),
            RouteClass::Search => Some(config.search),
            RouteClass::Page | RouteClass::Other => None,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            RouteClass::Checkout => "checkout",
            RouteClass::Hold | RouteClass::Release => "reservation",
            RouteClass::Search => "search",
            RouteClass::Page | RouteClass::Other => "page",
        }
    }
}

/// A token bucket in thousandths of a request, so refills stay exact in integers.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Bucket {
    milli: u64,
    at_ms: u64,
}

impl Bucket {
    /// Takes one request from the bucket, or says how long until one is there.
    fn take(&mut self, rate: Rate, now_ms: u64) -> Result<(), u64> {
        let full = u128::from(rate.requests.max(1)) * 1_000;
        let per_ms = u128::from(rate.per_ms.max(1));
        let elapsed = u128::from(now_ms.saturating_sub(self.at_ms));
        let gained = elapsed * full / per_ms;
        if u128::from(self.milli) + gained >= full {
            self.milli = full as u64;
            self.at_ms = now_ms.max(self.at_ms);
        } else {
            // Only the time the gained thousandths took is spent: frequent calls lose nothing.
            self.milli += gained as u64;
            self.at_ms += (gained * per_ms / full) as u64;
        }
        if self.milli >= 1_000 {
            self.milli -= 1_000;
            Ok(())
        } else {
            // Rounded up: a client told to come back in N ms finds a request there.
            let missing = u128::from(1_000 - self.milli);
            let ready_at = u128::from(self.at_ms) + (missing * per_ms).div_ceil(full);
            Err(ready_at.saturating_sub(u128::from(now_ms)).max(1) as u64)
        }
    }
}

/// What the protection knows of one client (IP + cookie).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ClientState {
    first_page_ms: Option<u64>,
    pages: u32,
    recent: VecDeque<u64>,
}

/// A shopper's recent holds and checkouts, by idempotency key.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ShopperState {
    orders: BTreeMap<String, ShopperOrder>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShopperOrder {
    lines: Vec<Line>,
    at_ms: u64,
    /// Still an open hold (not checked out or released).
    open: bool,
}

/// What the protection did with a request, and why (for the admin).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub at_ms: u64,
    /// `ip|client`, as keyed.
    pub client: String,
    pub route: RouteClass,
    pub action: Action,
    pub reason: String,
    pub bot_score: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Allowed,
    RateLimited,
    Hoarding,
    Bot,
    /// A body too large to inspect.
    TooLarge,
}

struct State_ {
    buckets: LruCache<(RouteClass, String), Bucket>,
    clients: LruCache<String, ClientState>,
    shoppers: LruCache<String, ShopperState>,
    decisions: VecDeque<Decision>,
    /// Decisions put in by [`Protection::carry_in_decisions`] (not this instance's own).
    carried_decisions: usize,
    next_client: u64,
}

/// The protection of one isolate: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Protection {
    config: Arc<ProtectionConfig>,
    clock: Arc<dyn Clock>,
    state: Arc<Mutex<State_>>,
}

/// Why a request is refused: the response's status, code, message and retry delay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub action: Action,
    pub message: String,
    pub retry_after_ms: Option<u64>,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, code) = match self.action {
            Action::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Action::Hoarding => (StatusCode::TOO_MANY_REQUESTS, "hold_limit"),
            Action::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Action::Bot | Action::Allowed => (StatusCode::FORBIDDEN, "checkout_refused"),
        };
        let seconds = self.retry_after_ms.map(|ms| ms.div_ceil(1_000).max(1));
        let mut body = serde_json::json!({ "error": code, "message": self.message });
        if let Some(seconds) = seconds {
            body["retry_after_s"] = seconds.into();
        }
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = seconds {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// The client's IP as the edge saw it.
pub fn client_ip(headers: &HeaderMap) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    header("cf-connecting-ip")
        .or_else(|| {
            header("x-forwarded-for")
                .and_then(|v| v.split(',').next())
                .map(str::trim)
        })
        .filter(|ip| !ip.is_empty() && ip.len() <= 64)
        .unwrap_or("unknown")
        .to_owned()
}

/// The owners of the protection's entries a request can touch: its client (`ip|cookie`, when it
/// has the cookie) and its address (`ip:{ip}`). See [`carry`].
pub fn owners_of(headers: &HeaderMap) -> Vec<String> {
    let ip = client_ip(headers);
    let client = client_cookie(headers).map(|cookie| format!("{ip}|{cookie}"));
    client.into_iter().chain([format!("ip:{ip}")]).collect()
}

fn client_cookie(headers: &HeaderMap) -> Option<String> {
    let value = cookie(headers.get(header::COOKIE)?.to_str().ok()?, CLIENT_COOKIE)?;
    (value.len() == 16 && value.bytes().all(|b| b.is_ascii_hexdigit())).then(|| value.to_owned())
}

impl Protection {
    pub fn new(config: ProtectionConfig, clock: Arc<dyn Clock>) -> Self {
        let capacity = NonZeroUsize::new(config.clients_max.max(1)).expect("at least 1");
        Self {
            clock,
            state: Arc::new(Mutex::new(State_ {
                buckets: LruCache::new(capacity),
                clients: LruCache::new(capacity),
                shoppers: LruCache::new(capacity),
                decisions: VecDeque::with_capacity(DECISIONS_MAX),
                carried_decisions: 0,
                next_client: 0,
            })),
            config: Arc::new(config),
        }
    }

    pub fn config(&self) -> &ProtectionConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State_> {
        // Counters only: a panic part-way leaves nothing a later request cannot live with.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The decisions recorded, oldest first (at most [`DECISIONS_MAX`]).
    pub fn decisions(&self) -> Vec<Decision> {
        self.lock().decisions.iter().cloned().collect()
    }

    /// Entries held by the bounded maps (for tests and the admin): buckets, clients, shoppers.
    pub fn sizes(&self) -> (usize, usize, usize) {
        let state = self.lock();
        (
            state.buckets.len(),
            state.clients.len(),
            state.shoppers.len(),
        )
    }

    fn record(&self, state: &mut State_, decision: Decision) {
        if state.decisions.len() == DECISIONS_MAX {
            state.decisions.pop_front();
            state.carried_decisions = state.carried_decisions.saturating_sub(1);
        }
        state.decisions.push_back(decision);
    }

    /// Takes one request of `class` for `client` (and its `ip`) from the rate budgets.
    pub fn admit_rate(&self, class: RouteClass, ip: &str, client: &str) -> Result<(), Refusal> {
        let Some(rate) = class.rate(&self.config) else {
            return Ok(());
        };
        let now = self.clock.now_ms();
        let ip_rate = Rate {
            requests: rate.requests.saturating_mul(self.config.ip_factor.max(1)),
            per_ms: rate.per_ms,
        };
        let mut state = self.lock();
        let mut take = |key: String, rate: Rate| {
            let bucket = state.buckets.get_or_insert_mut((class, key), || Bucket {
                milli: u64::from(rate.requests.max(1)) * 1_000,
                at_ms: now,
            });
            bucket.take(rate, now)
        };
        let outcome =
            take(format!("{ip}|{client}"), rate).and_then(|()| take(format!("ip:{ip}"), ip_rate));
        match outcome {
            Ok(()) => Ok(()),
            Err(wait_ms) => {
                let refusal = Refusal {
                    action: Action::RateLimited,
                    message: format!(
                        "too many {} requests; try again in {} s",
                        class.noun(),
                        wait_ms.div_ceil(1_000).max(1)
                    ),
                    retry_after_ms: Some(wait_ms),
                };
                let decision = Decision {
                    at_ms: now,
                    client: format!("{ip}|{client}"),
                    route: class,
                    action: Action::RateLimited,
                    reason: format!(
                        "over {} requests per {} s",
                        rate.requests,
                        rate.per_ms / 1_000
                    ),
                    bot_score: 0,
                };
                self.record(&mut state, decision);
                Err(refusal)
            }
        }
    }

    /// Notes a request of `class` by `client` for the behaviour signals.
    pub fn observe(&self, class: RouteClass, client_key: &str) {
        let now = self.clock.now_ms();
        let mut state = self.lock();
        let client = state
            .clients
            .get_or_insert_mut(client_key.to_owned(), ClientState::default);
        if client.recent.len() == RECENT_REQUESTS_MAX {
            client.recent.pop_front();
        }
        client.recent.push_back(now);
        if class == RouteClass::Page {
            client.pages = client.pages.saturating_add(1);
            client.first_page_ms.get_or_insert(now);
        }
    }

    /// The bot score of a checkout by `client_key` now, with the reasons that raised it.
    pub fn bot_score(&self, client_key: &str) -> (u32, Vec<String>) {
        let now = self.clock.now_ms();
        let mut state = self.lock();
        let (mut score, mut reasons) = (0, Vec::new());
        let client = state.clients.get(client_key);
        match client.and_then(|c| c.first_page_ms.map(|first| (c.pages, first))) {
            None => {
                score += 50;
                reasons.push("no page views before checkout".to_owned());
            }
            Some((_, first)) if now.saturating_sub(first) < self.config.human_checkout_ms_min => {
                score += 40;
                reasons.push(format!(
                    "checkout {} ms after the first page view",
                    now.saturating_sub(first)
                ));
            }
            Some(_) => {}
        }
        let since = now.saturating_sub(self.config.burst_window_ms);
        let burst = client.map_or(0, |c| c.recent.iter().filter(|&&at| at >= since).count());
        if burst > self.config.burst_requests_max as usize {
            score += 40;
            reasons.push(format!(
                "{burst} requests in {} s",
                self.config.burst_window_ms / 1_000
            ));
        }
        (score, reasons)
    }

    /// Refuses a checkout whose bot score reaches the threshold; records the decision either way.
    pub fn admit_checkout(&self, ip: &str, client: &str) -> Result<u32, Refusal> {
        let key = format!("{ip}|{client}");
        let (score, reasons) = self.bot_score(&key);
        let refused = score >= self.config.bot_score_max;
        let action = if refused {
            Action::Bot
        } else {
            Action::Allowed
        };
        let reason = if reasons.is_empty() {
            "no bot signals".to_owned()
        } else {
            reasons.join("; ")
        };
        let mut state = self.lock();
        let decision = Decision {
            at_ms: self.clock.now_ms(),
            client: key,
            route: RouteClass::Checkout,
            action,
            reason,
            bot_score: score,
        };
        self.record(&mut state, decision);
        if refused {
            return Err(Refusal {
                action: Action::Bot,
                message: "this checkout looks automated, so it was refused; browse the shop and try again in a minute".into(),
                retry_after_ms: None,
            });
        }
        Ok(score)
    }

    /// Checks the hoarding caps for `shopper` holding (or buying) `lines` under idempotency
    /// `key`, and records them when admitted. The same key again replaces its lines (a retry,
    /// or the checkout of a held cart), never counts twice. With an `ip`, the IP's caps
    /// ([`ProtectionConfig::ip_factor`] times the shopper's) apply as well, so dropping the
    /// client cookie does not start a fresh allowance.
    pub fn admit_hold(
        &self,
        class: RouteClass,
        shopper: &str,
        ip: Option<&str>,
        key: &str,
        lines: &[Line],
    ) -> Result<(), Refusal> {
        let now = self.clock.now_ms();
        let ip_key = ip.map(|ip| format!("ip:{ip}"));
        let mut state = self.lock();
        let mut holders = vec![(shopper, 1, "shopper")];
        holders.extend(
            ip_key
                .as_deref()
                .map(|k| (k, self.config.ip_factor.max(1), "address")),
        );
        let refusal = holders.iter().find_map(|(holder, factor, who)| {
            self.hoard_refusal(&mut state, class, holder, key, lines, *factor, who, now)
        });
        if let Some(message) = refusal {
            let decision = Decision {
                at_ms: now,
                client: shopper.to_owned(),
                route: class,
                action: Action::Hoarding,
                reason: message.clone(),
                bot_score: 0,
            };
            self.record(&mut state, decision);
            return Err(Refusal {
                action: Action::Hoarding,
                message,
                retry_after_ms: None,
            });
        }
        for (holder, ..) in holders {
            let orders = &mut state
                .shoppers
                .get_or_insert_mut(holder.to_owned(), ShopperState::default)
                .orders;
            if orders.len() >= ORDERS_PER_SHOPPER_MAX && !orders.contains_key(key) {
                // The oldest goes: a holder with this many orders in a window is capped anyway.
                if let Some(oldest) = orders
                    .iter()
                    .min_by_key(|(_, o)| o.at_ms)
                    .map(|(k, _)| k.clone())
                {
                    orders.remove(&oldest);
                }
            }
            let at_ms = orders.get(key).map_or(now, |o| o.at_ms);
            orders.insert(
                key.to_owned(),
                ShopperOrder {
                    lines: lines.to_vec(),
                    at_ms,
                    open: class == RouteClass::Hold,
                },
            );
        }
        Ok(())
    }

    /// Why `holder` may not hold `lines` under `key` now (caps times `factor`), if it may not.
    #[allow(clippy::too_many_arguments)]
    fn hoard_refusal(
        &self,
        state: &mut State_,
        class: RouteClass,
        holder: &str,
        key: &str,
        lines: &[Line],
        factor: u32,
        who: &str,
        now: u64,
    ) -> Option<String> {
        let config = &self.config;
        let orders = &mut state
            .shoppers
            .get_or_insert_mut(holder.to_owned(), ShopperState::default)
            .orders;
        orders
            .retain(|_, o| now.saturating_sub(o.at_ms) < config.window_ms.max(config.hold_ttl_ms));
        let others = || orders.iter().filter(|(k, _)| k.as_str() != key);
        let holds_max = config.holds_max.saturating_mul(factor) as usize;
        let open = others()
            .filter(|(_, o)| o.open && now.saturating_sub(o.at_ms) < config.hold_ttl_ms)
            .count();
        if class == RouteClass::Hold && open >= holds_max {
            return Some(format!(
                "{open} reservations are already open; at most {holds_max} at once per {who}"
            ));
        }
        let units_max = u64::from(config.units_per_sku_max.saturating_mul(factor));
        for line in lines {
            let earlier: u64 = others()
                .filter(|(_, o)| now.saturating_sub(o.at_ms) < config.window_ms)
                .flat_map(|(_, o)| o.lines.iter())
                .filter(|l| l.sku == line.sku)
                .map(|l| u64::from(l.qty))
                .sum();
            if earlier + u64::from(line.qty) > units_max {
                return Some(format!(
                    "at most {units_max} of {} per {who} every {} minutes ({earlier} already)",
                    line.sku,
                    config.window_ms / 60_000,
                ));
            }
        }
        None
    }

    /// A hold ended (released, or checked out): it no longer counts as open. A released one
    /// no longer counts its units either.
    pub fn end_hold(&self, shopper: &str, ip: Option<&str>, key: &str, released: bool) {
        let ip_key = ip.map(|ip| format!("ip:{ip}"));
        let mut state = self.lock();
        for holder in std::iter::once(shopper).chain(ip_key.as_deref()) {
            if let Some(holder) = state.shoppers.get_mut(holder) {
                if released {
                    holder.orders.remove(key);
                } else if let Some(order) = holder.orders.get_mut(key) {
                    order.open = false;
                }
            }
        }
    }

    /// Puts `owner`'s entries, carried from an earlier request, into this protection.
    pub fn carry_in(&self, owner: &str, carried: carry::Carried) {
        let mut state = self.lock();
        for (class, bucket) in carried.buckets {
            state.buckets.put((class, owner.to_owned()), bucket);
        }
        if let Some(client) = carried.client {
            state.clients.put(owner.to_owned(), client);
        }
        if let Some(shopper) = carried.shopper {
            state.shoppers.put(owner.to_owned(), shopper);
        }
    }

    /// Every owner's entries this protection holds, to carry to the next request.
    pub fn carry_out(&self) -> BTreeMap<String, carry::Carried> {
        let now = self.clock.now_ms();
        let state = self.lock();
        let mut out: BTreeMap<String, carry::Carried> = BTreeMap::new();
        fn entry<'m>(
            out: &'m mut BTreeMap<String, carry::Carried>,
            owner: &str,
            now: u64,
        ) -> &'m mut carry::Carried {
            out.entry(owner.to_owned())
                .or_insert_with(|| carry::Carried {
                    seen_ms: now,
                    ..Default::default()
                })
        }
        for ((class, owner), bucket) in state.buckets.iter() {
            entry(&mut out, owner, now).buckets.push((*class, *bucket));
        }
        for (owner, client) in state.clients.iter() {
            entry(&mut out, owner, now).client = Some(client.clone());
        }
        for (owner, shopper) in state.shoppers.iter() {
            entry(&mut out, owner, now).shopper = Some(shopper.clone());
        }
        out
    }

    /// Puts decisions recorded by earlier requests (oldest first) before this one's own.
    pub fn carry_in_decisions(&self, decisions: Vec<Decision>) {
        let mut state = self.lock();
        let own: Vec<Decision> = state.decisions.drain(..).collect();
        let carried: Vec<Decision> = decisions
            .into_iter()
            .rev()
            .take(DECISIONS_MAX)
            .rev()
            .collect();
        state.carried_decisions = carried.len();
        state.decisions.extend(carried);
        state.decisions.extend(own);
        while state.decisions.len() > DECISIONS_MAX {
            state.decisions.pop_front();
            state.carried_decisions = state.carried_decisions.saturating_sub(1);
        }
    }

    /// The decisions this protection made itself (not carried in), oldest first.
    pub fn own_decisions(&self) -> Vec<Decision> {
        let state = self.lock();
        state
            .decisions
            .iter()
            .skip(state.carried_decisions)
            .cloned()
            .collect()
    }

    fn new_client_id(&self, ip: &str) -> String {
        let mut state = self.lock();
        state.next_client += 1;
        let seed = format!("{ip}/{}/{}", self.clock.now_ms(), state.next_client);
        format!("{:016x}", fnv1a_64(seed.as_bytes()))
    }

    /// The middleware: `router.layer(axum::middleware::from_fn_with_state(protection, Protection::layer))`.
    pub async fn layer(
        State(protection): State<Protection>,
        request: Request,
        next: Next,
    ) -> Response {
        let class = RouteClass::of(
            request.method(),
            request.uri().path(),
            request.uri().query(),
        );
        let ip = client_ip(request.headers());
        let (client, new_client) = match client_cookie(request.headers()) {
            Some(id) => (id, false),
            None => (protection.new_client_id(&ip), true),
        };
        let key = format!("{ip}|{client}");
        let method = request.method().clone();
        // A client first seen on a page gets no cookie there (shared caches keep pages), so what
        // it does cannot be followed: remembering it would only fill the maps (a crawler).
        if !new_client || !matches!(method, Method::GET | Method::HEAD) {
            protection.observe(class, &key);
        }
        let mut response = match protection.guard(class, &ip, &client, request).await {
            Ok((request, hold)) => {
                let response = next.run(request).await;
                if let Some((shopper, order_key)) = hold {
                    // A checkout ends its hold; one that failed bought nothing, so its units
                    // stop counting too, as do a released cart's.
                    match class {
                        RouteClass::Checkout => protection.end_hold(
                            &shopper,
                            Some(&ip),
                            &order_key,
                            !response.status().is_success(),
                        ),
                        RouteClass::Release => {
                            protection.end_hold(&shopper, Some(&ip), &order_key, true)
                        }
                        _ => {}
                    }
                }
                response
            }
            Err(refusal) => refusal.into_response(),
        };
        if new_client && private_response(&method, &response) {
            let cookie = format!("{CLIENT_COOKIE}={client}; Path=/; Max-Age=31536000; HttpOnly; Secure; SameSite=Lax");
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        response
    }

    /// The checks of one request; the request back (its body re-assembled) when admitted, with
    /// the shopper and idempotency key of a hold or checkout.
    async fn guard(
        &self,
        class: RouteClass,
        ip: &str,
        client: &str,
        request: Request,
    ) -> Result<(Request, Option<(String, String)>), Refusal> {
        let admitted = self
            .admit_rate(class, ip, client)
            .and_then(|()| match class {
                RouteClass::Checkout => self.admit_checkout(ip, client).map(drop),
                _ => Ok(()),
            });
        if let Err(refusal) = admitted {
            // The body is read (and dropped) before the answer: a refusal that leaves it unread
            // can cost the client its keep-alive connection, failing its next request on it.
            let _ = axum::body::to_bytes(request.into_body(), INSPECTED_BODY_BYTES_MAX).await;
            return Err(refusal);
        }
        if !matches!(
            class,
            RouteClass::Checkout | RouteClass::Hold | RouteClass::Release
        ) {
            return Ok((request, None));
        }
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, INSPECTED_BODY_BYTES_MAX)
            .await
            .map_err(|_| Refusal {
                action: Action::TooLarge,
                message: format!(
                    "the request body is larger than {INSPECTED_BODY_BYTES_MAX} bytes"
                ),
                retry_after_ms: None,
            })?;
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let key_header = parts
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let hold = match lines_of(&bytes, content_type) {
            // The handler answers malformed bodies; nothing to count.
            None => None,
            Some((lines, body_key)) => {
                let order_key = key_header
                    .or(body_key)
                    .unwrap_or_else(|| format!("body:{:016x}", fnv1a_64(&bytes)));
                let shopper = format!("{ip}|{client}");
                if class != RouteClass::Release {
                    self.admit_hold(class, &shopper, Some(ip), &order_key, &lines)?;
                }
                Some((shopper, order_key))
            }
        };
        Ok((Request::from_parts(parts, Body::from(bytes)), hold))
    }
}

/// Whether a response may carry the client cookie: not a `GET`/`HEAD` answer a shared cache may
/// keep (pages are edge-cached for everyone; a cookie on one would be dropped by the cache or,
/// worse, handed to every shopper). A client without the cookie gets it from its first
/// server-function call, which hydration makes.
fn private_response(method: &Method, response: &Response) -> bool {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return true;
    }
    response
        .headers()
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("no-store") || v.contains("private"))
}

/// The lines (and idempotency key, for server functions) of a checkout or hold body: JSON
/// (`{"lines": [...]}`) or a server function's URL-encoded form (`lines[0][sku]=...`).
fn lines_of(body: &[u8], content_type: &str) -> Option<(Vec<Line>, Option<String>)> {
    if content_type.starts_with("application/json") || body.first() == Some(&b'{') {
        #[derive(Deserialize)]
        struct Body {
            lines: Vec<Line>,
            #[serde(default)]
            idempotency_key: Option<String>,
        }
        let parsed: Body = serde_json::from_slice(body).ok()?;
        return Some((parsed.lines, parsed.idempotency_key));
    }
    let text = std::str::from_utf8(body).ok()?;
    let mut lines: BTreeMap<usize, (Option<Sku>, Option<u32>)> = BTreeMap::new();
    let mut key = None;
    for pair in text.split('&') {
        let (name, value) = pair.split_once('=')?;
        let (name, value) = (percent_decode(name)?, percent_decode(value)?);
        if name == "idempotency_key" {
            key = Some(value);
            continue;
        }
        let Some(rest) = name.strip_prefix("lines[") else {
            continue;
        };
        let (index, field) = rest.split_once("][")?;
        let index: usize = index
            .parse()
            .ok()
            .filter(|i| *i < crate::stock::ORDER_LINES_MAX)?;
        let entry = lines.entry(index).or_default();
        match field.trim_end_matches(']') {
            "sku" => entry.0 = Sku::parse(&value).ok(),
            "qty" => entry.1 = value.parse().ok(),
            _ => {}
        }
    }
    let lines = lines
        .into_values()
        .map(|(sku, qty)| {
            Some(Line {
                sku: sku?,
                qty: qty?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some((lines, key))
}

fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// `GET /_admin/protection` (bearer token): the recorded decisions, newest first.
pub fn admin_router(protection: Protection, token: Option<String>) -> axum::Router {
    use axum::routing::get;
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return axum::Router::new();
    };
    axum::Router::new().route(
        "/_admin/protection",
        get(move |headers: HeaderMap| {
            let protection = protection.clone();
            let token = token.clone();
            async move {
                if !crate::api::bearer_matches(&headers, &token) {
                    return crate::api::ApiError::Unauthorized.into_response();
                }
                let mut decisions = protection.decisions();
                decisions.reverse();
                let (buckets, clients, shoppers) = protection.sizes();
                let body = serde_json::json!({
                    "config": protection.config(),
                    "tracked": {"buckets": buckets, "clients": clients, "shoppers": shoppers},
                    "decisions": decisions,
                });
                ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classified() {
        let class = |m: Method, p: &str, q: Option<&str>| RouteClass::of(&m, p, q);
        assert_eq!(
            class(Method::POST, "/api/checkout", None),
            RouteClass::Checkout
        );
        assert_eq!(
            class(Method::POST, "/_sfn/place-order", None),
            RouteClass::Checkout
        );
        assert_eq!(
            class(Method::POST, "/_sfn/hold-cart", None),
            RouteClass::Hold
        );
        assert_eq!(
            class(Method::GET, "/api/products", Some("q=mug&page=2")),
            RouteClass::Search
        );
        assert_eq!(
            class(Method::GET, "/api/products", Some("category=kitchen")),
            RouteClass::Other
        );
        assert_eq!(
            class(Method::GET, "/search", Some("q=mug")),
            RouteClass::Search
        );
        assert_eq!(class(Method::GET, "/p/MUG-1", None), RouteClass::Page);
        assert_eq!(class(Method::GET, "/pkg/app.js", None), RouteClass::Other);
        assert_eq!(class(Method::GET, "/favicon.ico", None), RouteClass::Other);
    }

    #[test]
    fn server_function_forms_and_json_bodies_give_their_lines() {
        let (lines, key) = lines_of(b"lines%5B0%5D%5Bsku%5D=MUG-1&lines[0][qty]=2&lines[1][sku]=B&lines[1][qty]=1&idempotency_key=k%2B1", "application/x-www-form-urlencoded").unwrap();
        assert_eq!(
            lines,
            vec![
                Line {
                    sku: Sku::parse("MUG-1").unwrap(),
                    qty: 2
                },
                Line {
                    sku: Sku::parse("B").unwrap(),
                    qty: 1
                }
            ]
        );
        assert_eq!(key.as_deref(), Some("k+1"));
        let (lines, key) = lines_of(
            br#"{"lines": [{"sku": "A", "qty": 3}], "email": "x"}"#,
            "application/json",
        )
        .unwrap();
        assert_eq!((lines.len(), key), (1, None));
        assert_eq!(
            lines_of(b"lines[0][sku]=A", ""),
            None,
            "a line without qty is malformed"
        );
    }

    #[test]
    fn a_token_bucket_refills_continuously_and_says_when() {
        let rate = Rate {
            requests: 2,
            per_ms: 10_000,
        };
        let mut bucket = Bucket {
            milli: 2_000,
            at_ms: 0,
        };
        assert_eq!(
            (bucket.take(rate, 0), bucket.take(rate, 0)),
            (Ok(()), Ok(()))
        );
        assert_eq!(bucket.take(rate, 0), Err(5_000));
        assert_eq!(bucket.take(rate, 4_999), Err(1));
        assert_eq!(bucket.take(rate, 5_000), Ok(()));
        assert_eq!(
            bucket.take(rate, 1_000_000),
            Ok(()),
            "a long pause refills to the top only"
        );
        assert_eq!(bucket.take(rate, 1_000_000), Ok(()));
        assert!(bucket.take(rate, 1_000_000).is_err());
    }
}
