//! The catalog KV namespace of a real Cloudflare account, through the Cloudflare API
//! (`/accounts/{account}/storage/kv/namespaces/{namespace}/...`), for `shopctl --target cloudflare`.
//!
//! Configuration comes from the environment: `CLOUDFLARE_ACCOUNT_ID`, `CLOUDFLARE_API_TOKEN`,
//! `CLOUDFLARE_KV_NAMESPACE_ID`, and `CLOUDFLARE_API_BASE` (default the public API; tests point it
//! at a local fake). Values are sent base64-encoded in bulk writes of up to 10,000 pairs.

use crate::publish::{batches, send_batches, CatalogKv, PublishError};
use base64::Engine;
use edge_core::snapshot::KvEntry;
use serde_json::json;
use std::time::Duration;

pub const DEFAULT_API_BASE: &str = "https://api.cloudflare.com/client/v4";
/// Pairs per bulk write (the API's limit is 10,000) and bytes per request (its limit is 100 MB).
const BULK_PAIRS: usize = 5_000;
const BULK_BYTES: usize = 50 * 1024 * 1024;
const BULK_IN_FLIGHT: usize = 4;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

pub struct CloudflareKv {
    namespace_url: String,
    token: String,
    http: reqwest::Client,
}

impl CloudflareKv {
    pub fn new(
        api_base: &str,
        account_id: &str,
        namespace_id: &str,
        token: &str,
    ) -> Result<Self, PublishError> {
        let namespace_url = format!(
            "{}/accounts/{account_id}/storage/kv/namespaces/{namespace_id}",
            api_base.trim_end_matches('/')
        );
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| PublishError::Unreachable {
                url: namespace_url.clone(),
                detail: e.to_string(),
            })?;
        Ok(Self {
            namespace_url,
            token: token.to_owned(),
            http,
        })
    }

    /// From `CLOUDFLARE_*` environment variables; names every missing one.
    pub fn from_env() -> Result<Self, PublishError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (account, token, namespace) = (
            var("CLOUDFLARE_ACCOUNT_ID"),
            var("CLOUDFLARE_API_TOKEN"),
            var("CLOUDFLARE_KV_NAMESPACE_ID"),
        );
        let missing: Vec<&str> = [
            ("CLOUDFLARE_ACCOUNT_ID", &account),
            ("CLOUDFLARE_API_TOKEN", &token),
            ("CLOUDFLARE_KV_NAMESPACE_ID", &namespace),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| n)
        .collect();
        match (account, token, namespace) {
            (Some(a), Some(t), Some(n)) => Self::new(
                &var("CLOUDFLARE_API_BASE").unwrap_or_else(|| DEFAULT_API_BASE.into()),
                &a,
                &n,
                &t,
            ),
            _ => Err(PublishError::Refused {
                what: "the Cloudflare target".into(),
                status: 0,
                body: format!("set {}", missing.join(", ")),
            }),
        }
    }

    async fn send(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, Vec<u8>), PublishError> {
        crate::publish::send_authorized(&self.namespace_url, &self.token, what, request).await
    }

    /// Checks a JSON API envelope's `success`.
    fn ensure_success(what: &str, status: u16, body: &[u8]) -> Result<(), PublishError> {
        let reply: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        if reply["success"] == true {
            Ok(())
        } else {
            Err(PublishError::Refused {
                what: what.into(),
                status,
                body: reply["errors"].to_string(),
            })
        }
    }
}

impl CatalogKv for CloudflareKv {
    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, PublishError> {
        let url = format!(
            "{}/values/{}",
            self.namespace_url,
            edge_core::listing::encode(key)
        );
        match self
            .send(&format!("reading {key}"), self.http.get(url))
            .await?
        {
            (404, _) => Ok(None),
            (_, body) => Ok(Some(body)),
        }
    }

    async fn kv_put(
        &self,
        entries: Vec<KvEntry>,
        progress: impl Fn(usize, usize),
    ) -> Result<(), PublishError> {
        let total = entries.len();
        let b64 = base64::engine::general_purpose::STANDARD;
        let pairs: Vec<(String, String)> = entries
            .into_iter()
            .map(|e| (e.key, b64.encode(&e.value)))
            .collect();
        let bulks = batches(pairs, BULK_PAIRS, BULK_BYTES, |(k, v)| k.len() + v.len());
        let url = format!("{}/bulk", self.namespace_url);
        send_batches(bulks, BULK_IN_FLIGHT, total, progress, |bulk| {
            let body: Vec<serde_json::Value> = bulk
                .into_iter()
                .map(|(key, value)| json!({ "key": key, "value": value, "base64": true }))
                .collect();
            let count = body.len();
            let request = self.http.put(&url).json(&body);
            async move {
                let (status, body) = self.send("bulk write", request).await?;
                Self::ensure_success("bulk write", status, &body).map(|()| count)
            }
        })
        .await
    }

    async fn kv_delete(&self, keys: Vec<String>) -> Result<usize, PublishError> {
        let url = format!("{}/bulk/delete", self.namespace_url);
        for batch in keys.chunks(BULK_PAIRS) {
            let (status, body) = self
                .send("bulk delete", self.http.post(&url).json(&batch))
                .await?;
            Self::ensure_success("bulk delete", status, &body)?;
        }
        Ok(keys.len())
    }
}
