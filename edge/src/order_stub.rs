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
