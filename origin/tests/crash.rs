//! `kill -9` of the origin in the middle of a flash sale, then a restart on the same data dir:
//! the shoppers who got no answer retry with their same `Idempotency-Key`. Every order that was
//! acknowledged (201) before or after the crash must be in the orders table, its units sold; no
//! unit may be lost or invented (`available + held + sold == received`); and once every
//! checkout has an answer, no hold may remain and `sold` is exactly the acknowledged orders'.

mod support;

use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use support::{checkout, flash_catalog, level, plans, stored, Answer, OriginProcess, Plan};

const SKUS: usize = 20;
const STOCK_PER_SKU: u32 = 100;
const CHECKOUTS: usize = 800;
const CONCURRENCY: usize = 32;
/// Answers received before the kill: well into the sale, with plenty still in flight.
const KILL_AFTER_ANSWERS: usize = 250;
/// Retry rounds after the restart; a retry is answered unless the origin is down again.
const RETRY_ROUNDS_MAX: usize = 5;
/// How long delivery to the orders table may lag an acknowledgement (the recovery loop).
const DELIVERY_WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_orders_survive_a_kill_9_and_retries_finish_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("origin.log");
    let (catalog, skus) = flash_catalog(dir.path(), SKUS, STOCK_PER_SKU);
    let sale = plans(CHECKOUTS, &skus, 0xc4a5_4e57, "crash");
    let client = reqwest::Client::new();

    // Before the crash: the origin is killed once enough answers came back.
    let first = Mutex::new(OriginProcess::start(&data, &catalog, &log).await);
    let url = first.lock().unwrap().url.clone();
    let answered = AtomicUsize::new(0);
    let before: Vec<(&Plan, Option<Answer>)> = futures::stream::iter(sale.iter())
        .map(|plan| {
            let (client, url, answered, first) = (&client, &url, &answered, &first);
            async move {
                let answer = checkout(client, url, plan).await.ok();
                if answer.is_some()
                    && answered.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER_ANSWERS
                {
                    first.lock().unwrap().kill();
                }
                (plan, answer)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    drop(first);
    let mut answers: BTreeMap<&str, (&Plan, Answer)> = BTreeMap::new();
    let mut unanswered: Vec<&Plan> = Vec::new();
    for (plan, answer) in before {
        match answer {
            Some(answer) => {
                answers.insert(&plan.key, (plan, answer));
            }
            None => unanswered.push(plan),
        }
    }
    println!(
        "crash: {} answered before the kill, {} unanswered",
        answers.len(),
        unanswered.len()
    );
    assert!(answers.len() >= KILL_AFTER_ANSWERS, "{}", answers.len());
    assert!(!unanswered.is_empty(), "the kill must interrupt the sale");

    // After the restart: retry what got no answer, with the same key and body.
    let origin = OriginProcess::start(&data, &catalog, &log).await;
    for _ in 0..RETRY_ROUNDS_MAX {
        if unanswered.is_empty() {
            break;
        }
        let retried: Vec<(&Plan, Option<Answer>)> = futures::stream::iter(unanswered.drain(..))
            .map(|plan| {
                let (client, url) = (&client, &origin.url);
                async move { (plan, checkout(client, url, plan).await.ok()) }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (plan, answer) in retried {
            match answer {
                Some(answer) => {
                    answers.insert(&plan.key, (plan, answer));
                }
                None => unanswered.push(plan),
            }
        }
    }
    assert!(
        unanswered.is_empty(),
        "{} retries got no answer\n{}",
        unanswered.len(),
        origin.log()
    );

    let mut sold_by_orders: BTreeMap<&edge_core::Sku, u64> = BTreeMap::new();
    let mut placed = Vec::new();
    for (plan, answer) in answers.values() {
        match answer.status {
            201 => {
                for (sku, qty) in &plan.lines {
                    *sold_by_orders.entry(sku).or_default() += u64::from(*qty);
                }
                placed.push(answer.order_id.clone().expect("a 201 names its order"));
            }
            409 => {}
            other => panic!("{}: unexpected status {other}\n{}", plan.key, origin.log()),
        }
    }
    assert!(placed.len() > 100, "{} placed", placed.len());

    // Every acknowledged order reaches the orders table (at once, or by the recovery loop).
    let deadline = tokio::time::Instant::now() + DELIVERY_WAIT;
    let mut missing: Vec<&String> = placed.iter().collect();
    while !missing.is_empty() {
        let mut still = Vec::new();
        for id in missing {
            if !stored(&client, &origin.url, id).await {
                still.push(id);
            }
        }
        missing = still;
        if missing.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} acknowledged orders never reached the orders table, e.g. {}",
            missing.len(),
            missing[0]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    for sku in &skus {
        let level = level(&client, &origin.url, sku).await;
        let accounted = u64::from(level.available) + u64::from(level.held) + u64::from(level.sold);
        assert_eq!(accounted, level.received, "{sku}: {level:?}");
        assert_eq!(level.received, u64::from(STOCK_PER_SKU), "{sku}: {level:?}");
        assert_eq!(
            level.held, 0,
            "{sku}: every checkout has an answer, no hold may remain"
        );
        assert_eq!(
            u64::from(level.sold),
            sold_by_orders.get(sku).copied().unwrap_or(0),
            "{sku}: sold must be exactly the acknowledged orders' units"
        );
    }
}
