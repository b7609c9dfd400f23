//! Shared by the load tests: the real `origin` binary on a free loopback port with a temporary
//! data dir, a generated flash-sale catalog, and checkout plans and calls.

#![allow(dead_code)] // Each test binary uses its own subset.

use edge_core::{Sku, SkuShard, StockLevel};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "load-test-token";
/// How long the origin may take to answer `/healthz` after it starts (a debug build, a busy CI).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest one checkout may take before it counts as unanswered.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `origin serve`; killed (SIGKILL) when dropped.
pub struct OriginProcess {
    child: Child,
    pub url: String,
    log: PathBuf,
}

impl OriginProcess {
    /// Starts the binary on a free port and waits until it answers `/healthz`.
    pub async fn start(data_dir: &Path, catalog: &Path, log: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_origin"))
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--catalog")
            .arg(catalog)
            .env("ORIGIN_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("the origin binary starts");
        let mut origin = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log: log.to_owned(),
        };
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Some(status) = origin.child.try_wait().unwrap() {
                panic!("the origin exited with {status}:\n{}", origin.log());
            }
            let health = client.get(format!("{}/healthz", origin.url)).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return origin;
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "the origin did not start:\n{}",
                origin.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9`: no shutdown, no flush beyond what was already committed.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the origin printed to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for OriginProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `skus` SKUs with `stock` units each, priced 5.00 to 24.00; the SKUs span several shards.
pub fn flash_catalog(dir: &Path, skus: usize, stock: u32) -> (PathBuf, Vec<Sku>) {
    let list: Vec<Sku> = (0..skus)
        .map(|i| Sku::parse(&format!("FLASH-{i:02}")).unwrap())
        .collect();
    let shards: BTreeSet<SkuShard> = list.iter().map(SkuShard::of).collect();
    assert!(
        shards.len() >= 4,
        "the SKUs span only {} shards",
        shards.len()
    );
    let products: Vec<Value> = list
        .iter()
        .enumerate()
        .map(|(i, sku)| {
            json!({"sku": sku, "title": format!("Flash item {i}"), "price_minor": 500 + 100 * i,
                   "category": "flash", "image": "/images/flash.svg", "stock": stock})
        })
        .collect();
    let path = dir.join("catalog.json");
    std::fs::write(
        &path,
        json!({"currency": "USD", "products": products}).to_string(),
    )
    .unwrap();
    (path, list)
}

/// One planned checkout: its key, its lines (distinct SKUs), and its JSON body.
#[derive(Clone, Debug)]
pub struct Plan {
    pub key: String,
    pub lines: Vec<(Sku, u32)>,
    pub body: String,
}

/// `count` checkouts of 1 to 3 lines of random SKUs, 1 to 2 units each, deterministic in `seed`.
pub fn plans(count: usize, skus: &[Sku], seed: u64, key_prefix: &str) -> Vec<Plan> {
    let mut state = seed.max(1);
    let mut next = move |n: u64| {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    };
    (0..count)
        .map(|i| {
            let mut lines: Vec<(Sku, u32)> = Vec::new();
            let want = 1 + next(3) as usize;
            while lines.len() < want {
                let sku = &skus[next(skus.len() as u64) as usize];
                if !lines.iter().any(|(s, _)| s == sku) {
                    lines.push((sku.clone(), 1 + next(2) as u32));
                }
            }
            let body = json!({
                "lines": lines.iter().map(|(sku, qty)| json!({"sku": sku, "qty": qty})).collect::<Vec<_>>(),
                "email": format!("shopper{i}@example.com"),
                "payment_token": "tok_visa",
            })
            .to_string();
            Plan {
                key: format!("{key_prefix}-{i}"),
                lines,
                body,
            }
        })
        .collect()
}

/// An answered checkout: its status, the order id of a 201, and how long it took.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub order_id: Option<String>,
    pub latency: Duration,
}

/// Sends one checkout; `Err` when no answer came (connection refused or reset, timeout).
pub async fn checkout(
    client: &reqwest::Client,
    url: &str,
    plan: &Plan,
) -> Result<Answer, reqwest::Error> {
    let started = Instant::now();
    let response = client
        .post(format!("{url}/api/checkout"))
        .header("content-type", "application/json")
        .header("idempotency-key", &plan.key)
        .body(plan.body.clone())
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await?;
    let status = response.status().as_u16();
    let body: Value = response.json().await?;
    let latency = started.elapsed();
    Ok(Answer {
        status,
        order_id: body["order_id"].as_str().map(str::to_owned),
        latency,
    })
}

/// A SKU's full level through the admin API.
pub async fn level(client: &reqwest::Client, url: &str, sku: &Sku) -> StockLevel {
    let response = client
        .get(format!("{url}/_admin/stock/{sku}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "level of {sku}");
    let body: Value = response.json().await.unwrap();
    serde_json::from_value(body["level"].clone()).unwrap()
}

/// Whether the orders table has the order (`GET /internal/orders/{id}`).
pub async fn stored(client: &reqwest::Client, url: &str, id: &str) -> bool {
    let response = client
        .get(format!("{url}/internal/orders/{id}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    match response.status().as_u16() {
        200 => {
            let order: Value = response.json().await.unwrap();
            assert_eq!(order["id"], id);
            true
        }
        404 => false,
        other => panic!("GET /internal/orders/{id} answered {other}"),
    }
}

/// The `q`-quantile of sorted latencies.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}
