//! Publishing a catalog file to an edge: validate locally, then send it to the edge's admin API.

use edge_core::product::CatalogProblem;
use edge_core::Catalog;
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// Longest a publish request may take before it is reported as failed.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{} problem(s) in the catalog; nothing was published:\n{}", .0.len(), list(.0))]
    Invalid(Vec<CatalogProblem>),
    #[error("cannot reach the edge at {url}: {detail} (is `wrangler dev` running?)")]
    Unreachable { url: String, detail: String },
    #[error("the edge refused the publish ({status}): {body}")]
    Refused { status: u16, body: String },
}

fn list(problems: &[CatalogProblem]) -> String {
    problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
}

/// What the edge reports after a publish.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct PublishReport {
    pub products: usize,
    /// SKUs whose stock was set (new SKUs).
    pub stock_written: u32,
    /// SKUs that already had live stock, left untouched.
    pub stock_kept: u32,
}

/// Reads and validates a catalog file, returning its text and the validated catalog.
pub fn load_catalog(path: &Path) -> Result<(String, Catalog), PublishError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| PublishError::Read { path: path.display().to_string(), source })?;
    let catalog = Catalog::from_json(&text).map_err(PublishError::Invalid)?;
    Ok((text, catalog))
}

/// Validates `path` and publishes it to the edge at `edge_url` with the admin `token`.
pub async fn publish_catalog(edge_url: &str, token: &str, path: &Path) -> Result<PublishReport, PublishError> {
    let (text, _) = load_catalog(path)?;
    let url = format!("{}/_admin/publish", edge_url.trim_end_matches('/'));
    let unreachable = |e: reqwest::Error| PublishError::Unreachable { url: url.clone(), detail: e.to_string() };
    let client = reqwest::Client::builder().timeout(PUBLISH_TIMEOUT).build().map_err(unreachable)?;
    let response = client
        .post(&url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(text)
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status();
    let body = response.text().await.map_err(unreachable)?;
    if !status.is_success() {
        return Err(PublishError::Refused { status: status.as_u16(), body });
    }
    serde_json::from_str(&body).map_err(|e| PublishError::Refused {
        status: status.as_u16(),
        body: format!("unexpected reply {body:?}: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_catalog_is_valid_and_big_enough() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo-catalog.json");
        let (_, catalog) = load_catalog(&path).unwrap();
        assert!(catalog.products.len() >= 40);
        let categories: std::collections::BTreeSet<_> = catalog.products.iter().map(|p| &p.category).collect();
        assert!(categories.len() >= 5, "{categories:?}");
        assert!(catalog.stock.iter().any(|&s| s == 0), "the demo shows an out-of-stock product");
        assert!(catalog.stock.iter().all(|&s| s <= 1000));
    }

    #[test]
    fn invalid_catalog_lists_every_problem() {
        let dir = std::env::temp_dir().join(format!("origin-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.json");
        std::fs::write(
            &path,
            r#"{"currency":"USD","products":[
                {"sku":"A","title":"","price_minor":-1,"category":"x","image":"/a.svg","stock":1}]}"#,
        )
        .unwrap();
        let err = load_catalog(&path).unwrap_err().to_string();
        assert!(err.contains("products[0].title: title is empty"), "{err}");
        assert!(err.contains("products[0].price_minor"), "{err}");
        assert!(err.starts_with("2 problem(s)"), "{err}");
    }

    #[tokio::test]
    async fn unreachable_edge_is_a_clear_error() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo-catalog.json");
        // Port 9 (discard) on loopback: nothing listens there in a test environment.
        let err = publish_catalog("http://127.0.0.1:9", "t", &path).await.unwrap_err();
        assert!(matches!(err, PublishError::Unreachable { .. }), "{err}");
        assert!(err.to_string().contains("wrangler dev"));
    }
}
