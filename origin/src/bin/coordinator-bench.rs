//! `coordinator-bench`: what a durable stock reservation costs on one shard, against the floor
//! of any durable SQLite write on the same disk.
//!
//! ```text
//! cargo run -p origin --release --bin coordinator-bench -- [--ops 2000] [--rounds 3] [--dir DIR]
//! ```
//!
//! Each round times, interleaved in chunks of 50 in fresh files under `DIR` (default: the system
//! temp dir), so both sample the same disk conditions:
//! - `reserve`: [`SqliteShard::apply`] of a one-line `Reserve` for a new order, i.e. read the
//!   hold, read the level, write the level and the hold, in one `BEGIN IMMEDIATE … COMMIT`
//!   fsynced by WAL with `synchronous=FULL`;
//! - `counter`: `UPDATE counter SET n = n + 1` in the same kind of transaction on a file opened
//!   the same way ([`origin::db::open_durable`]).
//!
//! It prints each round and the median rates, and `reserve/counter` as a ratio: near 1.0 means
//! the fsync dominates and the protocol's own work is noise; well below means the shard logic
//! (CBOR, the extra reads and writes) is worth optimizing. Then it runs the same reserves over
//! all 16 shards at once through [`OriginShards`] (the origin's async path) for the aggregate.

use edge_core::memory::ManualClock;
use edge_core::stock::{Line, OrderId, ShardReply, ShardRequest, HOLD_TTL_MS_MAX};
use edge_core::{Sku, SkuShard};
use origin::coordinator::{OriginShards, SqliteShard};
use origin::db::{begin_immediate, finish, open_durable};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most operations per round: bounds the run (and the files it leaves while running).
const OPS_MAX: usize = 1_000_000;
const ROUNDS_MAX: usize = 50;

struct Args {
    ops: usize,
    rounds: usize,
    dir: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        ops: 2_000,
        rounds: 3,
        dir: std::env::temp_dir(),
    };
    let mut raw = std::env::args().skip(1);
    while let Some(flag) = raw.next() {
        let value = raw.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--ops" => args.ops = value.parse().map_err(|e| format!("--ops: {e}"))?,
            "--rounds" => args.rounds = value.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--dir" => args.dir = PathBuf::from(value),
            other => return Err(format!("unknown flag {other}; see the file's doc")),
        }
    }
    if !(1..=OPS_MAX).contains(&args.ops) || !(1..=ROUNDS_MAX).contains(&args.rounds) {
        return Err(format!(
            "--ops is 1 to {OPS_MAX}, --rounds 1 to {ROUNDS_MAX}"
        ));
    }
    Ok(args)
}

fn reserve(order: usize, sku: &Sku) -> ShardRequest {
    ShardRequest::Reserve {
        order: OrderId::parse(&format!("bench-{order}")).expect("a valid order id"),
        lines: vec![Line {
            sku: sku.clone(),
            qty: 1,
        }],
        ttl_ms: HOLD_TTL_MS_MAX,
    }
}

/// Operations timed back to back before switching to the other kind: the disk's fsync time
/// drifts (other processes, the device's cache), so both kinds sample the same conditions.
const CHUNK_OPS: usize = 50;

/// Durable one-line reserves per second on one shard, and durable counter increments per
/// second (the floor of a durable write on this disk), interleaved chunk by chunk.
fn reserves_and_increments_per_s(dir: &Path, ops: usize) -> Result<(f64, f64), String> {
    let mut shard = SqliteShard::open(&dir.join("reserve.sqlite")).map_err(|e| e.to_string())?;
    let sku = Sku::parse("BENCH-1").expect("a valid SKU");
    let seed = ShardRequest::Seed {
        levels: vec![(sku.clone(), u32::try_from(ops).unwrap_or(u32::MAX))],
        overwrite: true,
    };
    shard.apply(seed, 0).map_err(|e| e.to_string())?;
    let conn = open_durable(
        &dir.join("counter.sqlite"),
        "CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
         INSERT OR IGNORE INTO counter (id, n) VALUES (1, 0);",
    )
    .map_err(|e| e.to_string())?;
    let (mut reserve_time, mut counter_time) = (Duration::ZERO, Duration::ZERO);
    let mut done = 0;
    while done < ops {
        let chunk = CHUNK_OPS.min(ops - done);
        let started = Instant::now();
        for i in done..done + chunk {
            match shard
                .apply(reserve(i, &sku), 1)
                .map_err(|e| e.to_string())?
            {
                ShardReply::Held { .. } => {}
                other => return Err(format!("reserve {i} answered {other:?}")),
            }
        }
        reserve_time += started.elapsed();
        let started = Instant::now();
        for _ in 0..chunk {
            begin_immediate(&conn).map_err(|e| e.to_string())?;
            let result = conn
                .prepare_cached("UPDATE counter SET n = n + 1 WHERE id = 1")
                .and_then(|mut update| update.execute([]));
            finish(&conn, result, |e| e).map_err(|e| e.to_string())?;
        }
        counter_time += started.elapsed();
        done += chunk;
    }
    Ok((
        ops as f64 / reserve_time.as_secs_f64(),
        ops as f64 / counter_time.as_secs_f64(),
    ))
}

/// Reserves per second over all 16 shards at once, through the origin's async path.
async fn all_shards_reserves_per_s(dir: &Path, ops: usize) -> Result<f64, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let shards =
        OriginShards::open(dir, Arc::new(ManualClock::default())).map_err(|e| e.to_string())?;
    // One SKU per shard, so every shard has work.
    let mut skus: Vec<Option<Sku>> = vec![None; SkuShard::all().count()];
    for i in 0..10_000 {
        let sku = Sku::parse(&format!("BENCH-{i}")).expect("a valid SKU");
        let slot = &mut skus[usize::from(SkuShard::of(&sku).index())];
        if slot.is_none() {
            *slot = Some(sku);
        }
        if skus.iter().all(Option::is_some) {
            break;
        }
    }
    let skus: Vec<Sku> = skus.into_iter().flatten().collect();
    for sku in &skus {
        let seed = ShardRequest::Seed {
            levels: vec![(sku.clone(), u32::try_from(ops).unwrap_or(u32::MAX))],
            overwrite: true,
        };
        shards
            .apply(SkuShard::of(sku), seed)
            .await
            .map_err(|e| e.to_string())?;
    }
    let per_shard = ops;
    let started = Instant::now();
    let runs = skus.iter().map(|sku| {
        let shards = shards.clone();
        let sku = sku.clone();
        tokio::spawn(async move {
            for i in 0..per_shard {
                shards
                    .apply(SkuShard::of(&sku), reserve(i, &sku))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        })
    });
    for run in futures::future::join_all(runs).await {
        run.map_err(|e| e.to_string())??;
    }
    Ok((per_shard * skus.len()) as f64 / started.elapsed().as_secs_f64())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn run(args: &Args, dir: &Path) -> Result<(), String> {
    let (mut reserves, mut increments) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let round_dir = dir.join(format!("round-{round}"));
        std::fs::create_dir_all(&round_dir).map_err(|e| e.to_string())?;
        let (r, c) = reserves_and_increments_per_s(&round_dir, args.ops)?;
        println!(
            "round {round}: reserve {r:>8.0}/s   counter {c:>8.0}/s   ratio {:.2}",
            r / c
        );
        reserves.push(r);
        increments.push(c);
    }
    let (r, c) = (median(reserves), median(increments));
    println!(
        "median over {} rounds of {} ops: reserve {r:.0}/s per shard, durable counter {c:.0}/s, \
         reserve/counter = {:.2}",
        args.rounds,
        args.ops,
        r / c
    );
    let all = all_shards_reserves_per_s(&dir.join("all"), args.ops).await?;
    println!("all 16 shards at once (async path): {all:.0} reserves/s in total");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("coordinator-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dir = args
        .dir
        .join(format!("coordinator-bench-{}", std::process::id()));
    let result = run(&args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coordinator-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
