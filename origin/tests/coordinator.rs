//! The SQLite shard against the reference storage: the same replies and the same state for the
//! same requests, durability across reopening, rollback of a fault injected mid-apply, the
//! expiry index, and the CBOR wire route.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use edge_core::codec::{from_cbor, to_cbor};
use edge_core::memory::ManualClock;
use edge_core::stock::{
    apply, Line, MemoryShardStorage, OrderId, ShardReply, ShardRequest, ShardStorage, StorageFault,
    HOLD_TTL_MS_MIN,
};
use edge_core::store::StockCoordinator;
use edge_core::{Sku, SkuShard, StockLevel};
use http_body_util::BodyExt;
use origin::coordinator::{routes, OriginShards, OriginStock, SqliteShard};
use origin::db::shard_file;
use std::sync::Arc;
use tower::ServiceExt;

const TTL: u64 = 60_000;

fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}

fn order(s: &str) -> OrderId {
    OrderId::parse(s).unwrap()
}

fn line(s: &str, qty: u32) -> Line {
    Line { sku: sku(s), qty }
}

fn reserve(o: &str, lines: Vec<Line>) -> ShardRequest {
    ShardRequest::Reserve {
        order: order(o),
        lines,
        ttl_ms: TTL,
    }
}

fn seed(levels: &[(&str, u32)]) -> ShardRequest {
    ShardRequest::Seed {
        levels: levels.iter().map(|(s, n)| (sku(s), *n)).collect(),
        overwrite: true,
    }
}

fn open(dir: &tempfile::TempDir) -> SqliteShard {
    SqliteShard::open(&dir.path().join("shard.sqlite")).unwrap()
}

/// Applies and checks the whole shard's invariant (levels against hold records) after it.
fn run(shard: &mut SqliteShard, request: ShardRequest, now_ms: u64) -> ShardReply {
    let reply = shard.apply(request, now_ms).expect("no storage fault");
    shard.to_memory().unwrap().check().expect("shard invariant");
    reply
}

fn level(shard: &SqliteShard, s: &str) -> (u32, u32, u32) {
    let l = shard.level(&sku(s)).unwrap().unwrap();
    (l.available, l.held, l.sold)
}

#[test]
fn hold_commit_release_and_idempotency_match_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(&dir);
    run(&mut s, seed(&[("A", 5), ("B", 5)]), 0);
    assert_eq!(
        run(&mut s, reserve("o1", vec![line("A", 2), line("B", 1)]), 10),
        ShardReply::Held {
            expires_at_ms: 10 + TTL
        }
    );
    assert_eq!(
        run(&mut s, reserve("o1", vec![line("A", 2), line("B", 1)]), 11),
        ShardReply::Held {
            expires_at_ms: 10 + TTL
        },
        "a repeated reserve answers from the record"
    );
    assert_eq!(level(&s, "A"), (3, 2, 0));
    let commit = ShardRequest::Commit { order: order("o1") };
    assert_eq!(run(&mut s, commit.clone(), 20), ShardReply::Committed);
    assert_eq!(run(&mut s, commit, 21), ShardReply::Committed);
    assert_eq!((level(&s, "A"), level(&s, "B")), ((3, 0, 2), (4, 0, 1)));
    assert_eq!(
        run(&mut s, ShardRequest::Release { order: order("o1") }, 22),
        ShardReply::AlreadyCommitted
    );
    assert_eq!(
        run(&mut s, ShardRequest::Cancel { order: order("o1") }, 23),
        ShardReply::Cancelled
    );
    assert_eq!(
        run(&mut s, ShardRequest::Cancel { order: order("o1") }, 24),
        ShardReply::Cancelled
    );
    assert_eq!((level(&s, "A"), level(&s, "B")), ((5, 0, 0), (5, 0, 0)));
    // A release before its reserve leaves a tombstone: the late reserve holds nothing.
    assert_eq!(
        run(
            &mut s,
            ShardRequest::Release {
                order: order("late")
            },
            30
        ),
        ShardReply::Released { expired: false }
    );
    assert_eq!(
        run(&mut s, reserve("late", vec![line("A", 1)]), 31),
        ShardReply::Released { expired: false }
    );
    assert_eq!(
        run(&mut s, reserve("big", vec![line("A", 1), line("B", 6)]), 32),
        ShardReply::Insufficient {
            sku: sku("B"),
            available: 5
        }
    );
    assert_eq!(level(&s, "A"), (5, 0, 0), "all lines or none");
}

#[test]
fn holds_expire_by_timer_or_on_touch_and_the_index_serves_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(&dir);
    run(&mut s, seed(&[("A", 5)]), 0);
    run(&mut s, reserve("o1", vec![line("A", 2)]), 0);
    run(&mut s, reserve("o2", vec![line("A", 2)]), 100);
    assert_eq!(s.next_expiry().unwrap(), Some(TTL));
    assert_eq!(s.due_holds(TTL, 10).unwrap(), vec![order("o1")]);
    assert_eq!(
        run(&mut s, ShardRequest::Expire, TTL - 1),
        ShardReply::Expired { released: 0 }
    );
    assert_eq!(
        run(&mut s, ShardRequest::Expire, TTL),
        ShardReply::Expired { released: 1 }
    );
    assert_eq!(level(&s, "A"), (3, 2, 0));
    assert_eq!(
        run(
            &mut s,
            ShardRequest::Commit { order: order("o2") },
            TTL + 100
        ),
        ShardReply::Released { expired: true },
        "past its TTL a hold is never sold"
    );
    assert_eq!(level(&s, "A"), (5, 0, 0));
    assert_eq!(s.next_expiry().unwrap(), None);
    assert!(s.due_holds(u64::MAX / 2, 10).unwrap().is_empty());

    // Both expiry queries read the partial index of live holds, not the whole table.
    for sql in [
        "SELECT order_id FROM holds WHERE state = 'held' AND expires_at_ms <= 1 ORDER BY expires_at_ms LIMIT 5",
        "SELECT MIN(expires_at_ms) FROM holds WHERE state = 'held'",
    ] {
        let plan: Vec<String> = s
            .connection()
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map([], |row| row.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            plan.iter().any(|step| step.contains("holds_by_expiry")),
            "{sql}: {plan:?}"
        );
    }
}

#[test]
fn restock_seed_and_malformed_requests_keep_the_invariant() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(&dir);
    run(&mut s, seed(&[("A", 2)]), 0);
    run(&mut s, reserve("o1", vec![line("A", 1)]), 0);
    run(&mut s, ShardRequest::Commit { order: order("o1") }, 0);
    run(&mut s, reserve("o2", vec![line("A", 1)]), 0);
    let ShardReply::Restocked { level: l, .. } = run(
        &mut s,
        ShardRequest::Restock {
            sku: sku("A"),
            qty: 10,
            receipt: None,
        },
        0,
    ) else {
        panic!("restock")
    };
    assert_eq!((l.available, l.held, l.sold, l.received), (10, 1, 1, 12));
    assert_eq!(
        run(
            &mut s,
            ShardRequest::Seed {
                levels: vec![(sku("A"), 50), (sku("B"), 7)],
                overwrite: false
            },
            0
        ),
        ShardReply::Seeded {
            written: 1,
            kept: 1
        }
    );
    assert_eq!(level(&s, "A"), (10, 1, 1), "seeding keeps live stock");
    for bad in [
        reserve("o3", vec![]),
        reserve("o3", vec![line("A", 0)]),
        reserve("o3", vec![line("A", 1), line("A", 1)]),
        ShardRequest::Reserve {
            order: order("o3"),
            lines: vec![line("A", 1)],
            ttl_ms: HOLD_TTL_MS_MIN - 1,
        },
        ShardRequest::Restock {
            sku: sku("A"),
            qty: 0,
            receipt: None,
        },
    ] {
        assert!(matches!(run(&mut s, bad, 0), ShardReply::Rejected { .. }));
    }
    assert_eq!(level(&s, "A"), (10, 1, 1));
    assert!(s.hold(&order("o3")).unwrap().is_none());
}

/// A tiny deterministic generator (xorshift64*), so a failing sequence can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_request(rng: &mut Rng) -> ShardRequest {
    const SKUS: [&str; 4] = ["A", "B", "C", "D"];
    let o = order(&format!("o{}", rng.below(12)));
    match rng.below(10) {
        0..=3 => {
            let first = rng.below(4) as usize;
            let mut lines = vec![line(SKUS[first], 1 + rng.below(4) as u32)];
            if rng.below(2) == 0 {
                lines.push(line(SKUS[(first + 1) % 4], 1 + rng.below(3) as u32));
            }
            ShardRequest::Reserve {
                order: o,
                lines,
                ttl_ms: HOLD_TTL_MS_MIN + rng.below(5_000),
            }
        }
        4 | 5 => ShardRequest::Commit { order: o },
        6 => ShardRequest::Release { order: o },
        7 => ShardRequest::Cancel { order: o },
        8 => ShardRequest::Expire,
        _ => ShardRequest::Restock {
            sku: sku(SKUS[rng.below(4) as usize]),
            qty: 1 + rng.below(3) as u32,
            receipt: None,
        },
    }
}

#[test]
fn random_sequences_give_the_same_replies_and_state_as_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    for seed_value in 1..=6u64 {
        let mut sqlite =
            SqliteShard::open(&dir.path().join(format!("s{seed_value}.sqlite"))).unwrap();
        let mut memory = MemoryShardStorage::default();
        let start = seed(&[("A", 6), ("B", 3), ("C", 1), ("D", 0)]);
        apply(&mut memory, start.clone(), 0).unwrap();
        sqlite.apply(start, 0).unwrap();
        let mut rng = Rng(seed_value.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut now_ms = 0;
        for step in 0..300 {
            now_ms += rng.below(400);
            let request = random_request(&mut rng);
            let want = apply(&mut memory, request.clone(), now_ms).unwrap();
            let got = sqlite.apply(request.clone(), now_ms).unwrap();
            assert_eq!(got, want, "seed {seed_value} step {step}: {request:?}");
        }
        let copy = sqlite.to_memory().unwrap();
        copy.check().unwrap();
        memory.check().unwrap();
        assert_eq!(
            copy.levels().collect::<Vec<_>>(),
            memory.levels().collect::<Vec<_>>(),
            "seed {seed_value}"
        );
        assert_eq!(
            copy.holds().collect::<Vec<_>>(),
            memory.holds().collect::<Vec<_>>(),
            "seed {seed_value}"
        );
    }
}

#[test]
fn a_fault_inside_an_apply_rolls_back_everything_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shard.sqlite");
    let mut s = SqliteShard::open(&path).unwrap();
    run(&mut s, seed(&[("A", 5), ("B", 5)]), 0);
    // Another connection installs a trigger that fails the write of B's level: by then the
    // reserve has already written A's level, which must not survive.
    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute_batch(
            "CREATE TRIGGER fail_b BEFORE UPDATE ON stock_levels WHEN NEW.sku = 'B' \
             BEGIN SELECT RAISE(ABORT, 'injected disk fault'); END;",
        )
        .unwrap();
    let err: StorageFault = s
        .apply(reserve("o1", vec![line("A", 2), line("B", 1)]), 10)
        .unwrap_err();
    assert!(err.0.contains("injected disk fault"), "{err}");
    assert_eq!(level(&s, "A"), (5, 0, 0), "A's write was rolled back");
    assert!(s.hold(&order("o1")).unwrap().is_none());
    // The connection is usable afterwards, and a retry succeeds once the fault is gone.
    assert!(s.connection().is_autocommit(), "no transaction left open");
    other.execute_batch("DROP TRIGGER fail_b").unwrap();
    assert_eq!(
        run(&mut s, reserve("o1", vec![line("A", 2), line("B", 1)]), 11),
        ShardReply::Held {
            expires_at_ms: 11 + TTL
        }
    );
    // The schema's own CHECK refuses a level that breaks the invariant, as a second line of
    // defence under `apply`'s check.
    let broken = StockLevel {
        available: 1,
        held: 0,
        sold: 0,
        received: 2,
    };
    assert!(s.set_level(&sku("A"), &broken).is_err());
    assert_eq!(level(&s, "A"), (3, 2, 0));
}

#[test]
fn a_shard_file_from_before_receipts_is_migrated_with_its_holds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shard.sqlite");
    // The schema as it was: a CHECK that knows no `received` holds.
    let old = rusqlite::Connection::open(&path).unwrap();
    old.execute_batch(
        "CREATE TABLE stock_levels (
            sku TEXT PRIMARY KEY NOT NULL, available INTEGER NOT NULL, held INTEGER NOT NULL,
            sold INTEGER NOT NULL, received INTEGER NOT NULL,
            CHECK (received = available + held + sold)) WITHOUT ROWID;
         CREATE TABLE holds (
            order_id TEXT PRIMARY KEY NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('held', 'committed', 'released', 'expired', 'cancelled')),
            expires_at_ms INTEGER CHECK ((state = 'held') = (expires_at_ms IS NOT NULL)),
            lines BLOB NOT NULL) WITHOUT ROWID;
         CREATE INDEX holds_by_expiry ON holds (expires_at_ms) WHERE state = 'held';",
    )
    .unwrap();
    drop(old);
    {
        // Without the migration this shard could hold orders but not record a receipt.
        let mut s = SqliteShard::open(&path).unwrap();
        run(&mut s, seed(&[("A", 5)]), 0);
        run(&mut s, reserve("o1", vec![line("A", 2)]), 0);
    }
    let old = rusqlite::Connection::open(&path).unwrap();
    let sql: String = old
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'holds'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(sql.contains("'received'"), "migrated: {sql}");
    drop(old);
    let mut s = SqliteShard::open(&path).unwrap();
    let receipt = edge_core::stock::receipt_for_key("delivery 9");
    let restock = ShardRequest::Restock {
        sku: sku("A"),
        qty: 4,
        receipt: Some(receipt),
    };
    run(&mut s, restock.clone(), 1);
    let ShardReply::Restocked { repeated: true, .. } = run(&mut s, restock, 2) else {
        panic!("the repeat is recognised after reopening")
    };
    assert_eq!(level(&s, "A"), (7, 2, 0));
    // The order's hold survived the rebuild and still expires on time.
    assert_eq!(s.next_expiry().unwrap(), Some(TTL));
    s.to_memory().unwrap().check().unwrap();
}

#[test]
fn acknowledged_writes_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shard.sqlite");
    {
        let mut s = SqliteShard::open(&path).unwrap();
        run(&mut s, seed(&[("A", 5)]), 0);
        run(&mut s, reserve("o1", vec![line("A", 2)]), 0);
        run(&mut s, ShardRequest::Commit { order: order("o1") }, 1);
        run(&mut s, reserve("o2", vec![line("A", 1)]), 2);
    }
    let s = SqliteShard::open(&path).unwrap();
    assert_eq!(level(&s, "A"), (2, 1, 2));
    assert_eq!(s.next_expiry().unwrap(), Some(2 + TTL));
    let mode: String = s
        .connection()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    let synchronous: i64 = s
        .connection()
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        (mode.as_str(), synchronous),
        ("wal", 2),
        "WAL with synchronous=FULL"
    );
}

/// Two SKUs on different shards.
fn two_shard_skus() -> (Sku, Sku) {
    let skus: Vec<Sku> = (0..32).map(|i| sku(&format!("SKU-{i}"))).collect();
    let a = skus[0].clone();
    let b = skus
        .iter()
        .find(|s| SkuShard::of(s) != SkuShard::of(&a))
        .unwrap()
        .clone();
    (a, b)
}

#[tokio::test]
async fn origin_shards_route_by_sku_persist_per_shard_and_expire_on_the_timer() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::default());
    let shards = OriginShards::open(dir.path(), clock.clone()).unwrap();
    let stock = OriginStock::new(shards.clone());
    let (a, b) = two_shard_skus();
    let report = stock
        .seed(vec![(a.clone(), 5), (b.clone(), 7)], false)
        .await
        .unwrap();
    assert_eq!((report.written, report.kept), (2, 0));
    for index in 0..16 {
        assert!(
            shard_file(dir.path(), index).exists(),
            "shard-{index:02}.sqlite"
        );
    }
    // Each SKU lives in its own shard's file only.
    let in_file = |shard: SkuShard, s: &Sku| {
        SqliteShard::open(&shard_file(dir.path(), shard.index()))
            .unwrap()
            .level(s)
            .unwrap()
    };
    assert!(in_file(SkuShard::of(&a), &a).is_some());
    assert!(in_file(SkuShard::of(&a), &b).is_none());

    let held = stock
        .on_shard(
            SkuShard::of(&a),
            ShardRequest::Reserve {
                order: order("o1"),
                lines: vec![Line {
                    sku: a.clone(),
                    qty: 2,
                }],
                ttl_ms: HOLD_TTL_MS_MIN,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        held,
        ShardReply::Held {
            expires_at_ms: HOLD_TTL_MS_MIN
        }
    );
    assert_eq!(shards.expire_due().await.unwrap(), 0, "not due yet");
    clock.advance(HOLD_TTL_MS_MIN);
    assert_eq!(shards.expire_due().await.unwrap(), 1);
    let level = stock.level(&a).await.unwrap().unwrap();
    assert_eq!((level.available, level.held), (5, 0));
    for shard in SkuShard::all() {
        shards.snapshot(shard).await.unwrap().check().unwrap();
    }
}

async fn wire(
    app: &axum::Router,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let mut request = Request::post(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    (
        status,
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
}

#[tokio::test]
async fn the_wire_route_speaks_cbor_and_refuses_what_it_must() {
    let dir = tempfile::tempdir().unwrap();
    let shards = OriginShards::open(dir.path(), Arc::new(ManualClock::default())).unwrap();
    let app = routes(shards, Some("tok".into()));
    let (a, _) = two_shard_skus();
    let n = SkuShard::of(&a).index();
    let path = format!("/coordinator/shards/{n}");
    let seed = to_cbor(&ShardRequest::Seed {
        levels: vec![(a.clone(), 3)],
        overwrite: false,
    });
    let (status, body) = wire(&app, &path, Some("tok"), seed.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        from_cbor::<ShardReply>(&body).unwrap(),
        ShardReply::Seeded {
            written: 1,
            kept: 0
        }
    );
    let level = to_cbor(&ShardRequest::Level { sku: a.clone() });
    let (_, body) = wire(&app, &path, Some("tok"), level.clone()).await;
    assert_eq!(
        from_cbor::<ShardReply>(&body).unwrap(),
        ShardReply::Level {
            level: Some(StockLevel::fresh(3))
        }
    );
    assert_eq!(
        wire(&app, &path, None, seed.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        wire(&app, &path, Some("nope"), seed.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        wire(&app, &path, Some("tok"), b"\xffjunk".to_vec()).await.0,
        StatusCode::BAD_REQUEST
    );
    for bad in ["16", "-1", "x", "99999"] {
        let path = format!("/coordinator/shards/{bad}");
        assert_eq!(
            wire(&app, &path, Some("tok"), level.clone()).await.0,
            StatusCode::NOT_FOUND,
            "{bad}"
        );
    }
    // A storage fault is a 503 with the JSON error shape, and changes nothing.
    let other = rusqlite::Connection::open(shard_file(dir.path(), n)).unwrap();
    other
        .execute_batch(
            "CREATE TRIGGER fail BEFORE UPDATE ON stock_levels \
             BEGIN SELECT RAISE(ABORT, 'injected'); END;",
        )
        .unwrap();
    let restock = to_cbor(&ShardRequest::Restock {
        sku: a.clone(),
        qty: 1,
        receipt: None,
    });
    let (status, body) = wire(&app, &path, Some("tok"), restock).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"], "unavailable");
    let (_, body) = wire(&app, &path, Some("tok"), level).await;
    assert_eq!(
        from_cbor::<ShardReply>(&body).unwrap(),
        ShardReply::Level {
            level: Some(StockLevel::fresh(3))
        }
    );
    // Without a token the coordinator is not served at all.
    let closed = routes(
        OriginShards::open(dir.path(), Arc::new(ManualClock::default())).unwrap(),
        None,
    );
    assert_eq!(
        wire(&closed, &path, Some(""), seed).await.0,
        StatusCode::NOT_FOUND
    );
}
