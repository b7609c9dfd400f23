//! Reaching a stock shard: one Durable Object per [`SkuShard`], addressed by name, spoken to in
//! CBOR over the object's `fetch`.

use edge_core::codec::{from_cbor, to_cbor};
use edge_core::stock::{ShardReply, ShardRequest};
use edge_core::store::{BoxFuture, ShardTransport};
use edge_core::{SkuShard, StoreError};
use worker::send::SendFuture;
use worker::{js_sys::Uint8Array, Method, ObjectNamespace, Request, RequestInit};

pub struct DurableShards {
    /// `None` only when the worker was deployed without the binding: every call then fails.
    namespace: Option<ObjectNamespace>,
}

impl DurableShards {
    pub fn new(namespace: ObjectNamespace) -> Self {
        Self {
            namespace: Some(namespace),
        }
    }

    pub fn unbound() -> Self {
        Self { namespace: None }
    }

    /// The stub of the object that owns `shard`.
    pub fn stub(&self, shard: SkuShard) -> Result<worker::Stub, StoreError> {
        let name = shard.object_name();
        let namespace = self
            .namespace
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("no STOCK binding".into()))?;
        namespace
            .get_by_name(&name)
            .map_err(|e| StoreError::Unavailable(format!("{name}: {e}")))
    }

    async fn call_inner(&self, shard: SkuShard, body: Vec<u8>) -> Result<ShardReply, StoreError> {
        let name = shard.object_name();
        let unavailable = |e: worker::Error| StoreError::Unavailable(format!("{name}: {e}"));
        let stub = self.stub(shard)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(Uint8Array::from(body.as_slice()).into()));
        let request =
            Request::new_with_init("https://stock-shard/apply", &init).map_err(unavailable)?;
        let mut response = stub
            .fetch_with_request(request)
            .await
            .map_err(unavailable)?;
        let bytes = response.bytes().await.map_err(unavailable)?;
        if response.status_code() != 200 {
            let detail = String::from_utf8_lossy(&bytes);
            return Err(StoreError::Unavailable(format!(
                "{name} answered {}: {detail}",
                response.status_code()
            )));
        }
        from_cbor(&bytes).map_err(|e| StoreError::Protocol(format!("{name}: {e}")))
    }
}

impl ShardTransport for DurableShards {
    fn call(
        &self,
        shard: SkuShard,
        request: ShardRequest,
    ) -> BoxFuture<'_, Result<ShardReply, StoreError>> {
        let body = to_cbor(&request);
        Box::pin(SendFuture::new(self.call_inner(shard, body)))
    }
}
