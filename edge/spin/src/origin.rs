//! The origin, over outbound HTTP: Spin has no Durable Objects, so stock and checkouts go to the
//! origin coordinator (`origin serve`), which speaks the same CBOR protocol as the worker's
//! objects and owns the same 16 SKU shards ([`edge_core::SkuShard::of`] picks the shard here,
//! exactly as on Cloudflare).
//!
//! - [`OriginShards`]: [`ShardTransport`] over `POST {ORIGIN_URL}/coordinator/shards/{n}`.
//! - [`OriginOrders`]: [`OrderDesk`] over `POST {ORIGIN_URL}/coordinator/checkouts` and
//!   `GET {ORIGIN_URL}/coordinator/orders/{id}`: the origin runs the checkout saga (promotion
//!   usage counters included) and records the order in its table at once (no outbox on this
//!   host).
//! - [`send_events`]: a request's behaviour events to `POST {ORIGIN_URL}/internal/events`.
//!
//! Every call carries `Authorization: Bearer {ORIGIN_TOKEN}`; the origin's host must be in the
//! component's `allowed_outbound_hosts` (`spin.toml`).

use crate::send::AssumeSend;
use edge_core::checkout::{CheckoutError, CheckoutOutcome, OrderDesk, PricedOrder, RemoteCheckout};
use edge_core::codec::{from_cbor, to_cbor};
use edge_core::order::{CheckoutRequest, Order};
use edge_core::stock::{OrderId, ShardReply, ShardRequest};
use edge_core::store::{BoxFuture, ShardTransport};
use edge_core::{SkuShard, StoreError};
use spin_sdk::http::Method;
use std::sync::Arc;

/// Where the origin is and how to authenticate to it.
pub struct Origin {
    /// `ORIGIN_URL` without a trailing slash; empty when unset (every call then fails).
    base_url: String,
    token: String,
}

impl Origin {
    pub fn new(base_url: &str, token: &str) -> Arc<Self> {
        Arc::new(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    /// One request; the body of a 2xx answer. A final refusal
    /// ([`edge_core::store::refusal_is_final`]: the origin refused what this component sent, a
    /// token or version mismatch that retrying will not fix) is a `Protocol` error, anything
    /// else an `Unavailable`; both name the call.
    async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        if self.base_url.is_empty() {
            return Err(StoreError::Unavailable(format!(
                "{path}: ORIGIN_URL is not set"
            )));
        }
        let url = format!("{}{path}", self.base_url);
        let request = spin_sdk::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", content_type)
            .body(body)
            .build();
        let response: spin_sdk::http::Response = AssumeSend(spin_sdk::http::send(request))
            .await
            .map_err(|e| StoreError::Unavailable(format!("{path}: {e}")))?;
        let status = *response.status();
        let body = response.into_body();
        if !(200..300).contains(&status) {
            let detail = String::from_utf8_lossy(&body);
            let message = format!("{path}: the origin answered {status}: {detail}");
            return Err(if edge_core::store::refusal_is_final(status) {
                StoreError::Protocol(message)
            } else {
                StoreError::Unavailable(message)
            });
        }
        Ok(body)
    }

    async fn cbor<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<T, StoreError> {
        let bytes = self.call(method, path, "application/cbor", body).await?;
        from_cbor(&bytes).map_err(|e| StoreError::Protocol(format!("{path}: {e}")))
    }
}

pub struct OriginShards {
    pub origin: Arc<Origin>,
}

impl ShardTransport for OriginShards {
    fn call(
        &self,
        shard: SkuShard,
        request: ShardRequest,
    ) -> BoxFuture<'_, Result<ShardReply, StoreError>> {
        let body = to_cbor(&request);
        let path = format!("/coordinator/shards/{}", shard.index());
        Box::pin(AssumeSend(async move {
            self.origin.cbor(Method::Post, &path, body).await
        }))
    }
}

pub struct OriginOrders {
    pub origin: Arc<Origin>,
}

impl OrderDesk for OriginOrders {
    /// The checkout with its pricing and usage claims: the origin holds the usage counters on
    /// its shards beside the lines, exactly as an order's Durable Object does on Cloudflare.
    fn checkout_priced(
        &self,
        order_id: OrderId,
        request: CheckoutRequest,
        priced: PricedOrder,
    ) -> BoxFuture<'_, Result<CheckoutOutcome, CheckoutError>> {
        let body = to_cbor(&RemoteCheckout::new(order_id, request, priced));
        Box::pin(AssumeSend(async move {
            let result: Result<CheckoutOutcome, CheckoutError> = self
                .origin
                .cbor(Method::Post, "/coordinator/checkouts", body)
                .await?;
            result
        }))
    }

    fn order<'a>(
        &'a self,
        order_id: &'a OrderId,
    ) -> BoxFuture<'a, Result<Option<Order>, StoreError>> {
        let path = format!("/coordinator/orders/{order_id}");
        Box::pin(AssumeSend(async move {
            self.origin.cbor(Method::Get, &path, Vec::new()).await
        }))
    }
}

/// Sends the request's behaviour events (an instance lives for one request, so they cannot wait
/// for a batch); a failed send is counted as dropped, never fails the page.
pub async fn send_events(origin: &Origin, queue: &edge_core::events::EventQueue, now_ms: u64) {
    let Some(batch) = queue.take_due(now_ms, true) else {
        return;
    };
    let Ok(body) = serde_json::to_vec(&batch) else {
        return;
    };
    if let Err(e) = origin
        .call(Method::Post, "/internal/events", "application/json", body)
        .await
    {
        eprintln!("behaviour events not delivered: {e}");
        queue.lost(&batch);
    }
}
