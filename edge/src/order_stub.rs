//! Reaching an order: the `OrderShard` that owns its id, spoken to in CBOR over its `fetch`.

use crate::order_object::CheckoutCall;
use edge_core::checkout::{CheckoutError, CheckoutOutcome, OrderDesk};
use edge_core::codec::{from_cbor, to_cbor};
use edge_core::order::{CheckoutRequest, Order};
use edge_core::stock::OrderId;
use edge_core::store::BoxFuture;
use edge_core::StoreError;
use worker::send::SendFuture;
use worker::{js_sys::Uint8Array, Method, ObjectNamespace, Request, RequestInit, Stub};

pub struct DurableOrders {
    namespace: ObjectNamespace,
}

impl DurableOrders {
    pub fn new(namespace: ObjectNamespace) -> Self {
        Self { namespace }
    }

    pub fn stub(&self, order: &OrderId) -> Result<Stub, StoreError> {
        let name = crate::order_object::order_shard_name(order);
        self.namespace
            .get_by_name(&name)
            .map_err(|e| StoreError::Unavailable(format!("order {order}: {e}")))
    }

    /// Every order shard's waiting deliveries to the origin (see
    /// [`crate::order_object::PendingDelivery`]), oldest first, and the shards that did not answer.
    pub async fn outbox(&self) -> (Vec<crate::order_object::PendingDelivery>, Vec<String>) {
        let lists = (0..crate::order_object::ORDER_SHARD_COUNT).map(|n| async move {
            let name = crate::order_object::shard_name(n);
            let listed = async {
                let stub = self.namespace.get_by_name(&name)?;
                let mut response = stub.fetch_with_str("https://order/outbox").await?;
                if response.status_code() != 200 {
                    let detail = response.text().await.unwrap_or_default();
                    return Err(worker::Error::RustError(format!(
                        "answered {}: {detail}",
                        response.status_code()
                    )));
                }
                response
                    .json::<Vec<crate::order_object::PendingDelivery>>()
                    .await
            };
            listed.await.map_err(|e| format!("{name}: {e}"))
        });
        let mut pending = Vec::new();
        let mut unreachable = Vec::new();
        for listed in futures::future::join_all(lists).await {
            match listed {
                Ok(list) => pending.extend(list),
                Err(e) => unreachable.push(e),
            }
        }
        pending.sort_by_key(|p| p.placed_at_ms);
        (pending, unreachable)
    }

    /// POSTs `body` to `path` of the order's shard (`/status`, `/outbox/retry`): the shard's
    /// answer as it is.
    pub async fn forward(
        &self,
        order: &OrderId,
        path: &str,
        body: &[u8],
    ) -> Result<worker::Response, StoreError> {
        let unavailable = |e: worker::Error| StoreError::Unavailable(format!("order {order}: {e}"));
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(Uint8Array::from(body).into()));
        let url = format!("https://order{path}?order={order}");
        let request = Request::new_with_init(&url, &init).map_err(unavailable)?;
        self.stub(order)?
            .fetch_with_request(request)
            .await
            .map_err(unavailable)
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        order: &OrderId,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, StoreError> {
        let unavailable = |e: worker::Error| StoreError::Unavailable(format!("order {order}: {e}"));
        let mut init = RequestInit::new();
        // The request behind this call, for the order's delivery to the origin.
        let headers = worker::Headers::new();
        headers
            .set(
                crate::request_id::HEADER,
                &crate::request_id::current_or_fresh(),
            )
            .map_err(unavailable)?;
        init.with_method(method).with_headers(headers);
        if let Some(body) = body {
            init.with_body(Some(Uint8Array::from(body.as_slice()).into()));
        }
        let url = format!("https://order{path}?order={order}");
        let request = Request::new_with_init(&url, &init).map_err(unavailable)?;
        let mut response = self
            .stub(order)?
            .fetch_with_request(request)
            .await
            .map_err(unavailable)?;
        let bytes = response.bytes().await.map_err(unavailable)?;
        if response.status_code() != 200 {
            let detail = String::from_utf8_lossy(&bytes);
            return Err(StoreError::Unavailable(format!(
                "order {order} answered {}: {detail}",
                response.status_code()
            )));
        }
        from_cbor(&bytes).map_err(|e| StoreError::Protocol(format!("order {order}: {e}")))
    }
}

impl OrderDesk for DurableOrders {
    fn checkout_priced(
        &self,
        order_id: OrderId,
        request: CheckoutRequest,
        priced: edge_core::checkout::PricedOrder,
    ) -> BoxFuture<'_, Result<CheckoutOutcome, CheckoutError>> {
        Box::pin(SendFuture::new(async move {
            let edge_core::checkout::PricedOrder {
                lines,
                total,
                pricing,
                usage,
            } = priced;
            let body = to_cbor(&CheckoutCall {
                order_id: order_id.clone(),
                request,
                lines,
                total,
                pricing,
                usage,
            });
            let result: Result<CheckoutOutcome, CheckoutError> = self
                .call(&order_id, Method::Post, "/checkout", Some(body))
                .await?;
            result
        }))
    }

    fn order<'a>(
        &'a self,
        order_id: &'a OrderId,
    ) -> BoxFuture<'a, Result<Option<Order>, StoreError>> {
        Box::pin(SendFuture::new(self.call(
            order_id,
            Method::Get,
            "/order",
            None,
        )))
    }
}
