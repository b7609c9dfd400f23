//! Deterministic simulation of checkout under faults: stock shards, many concurrent checkouts,
//! hold expiry and the outbox, on one thread, driven by one seeded PRNG.
//!
//! # What runs
//! A seed builds a small shop (3 to 6 SKUs over several shards, 2 to 8 units each, so orders
//! fight over the last units) and then takes a bounded number of steps. Each step the PRNG
//! picks one action: poll one checkout future (our own executor, a no-op waker, the PRNG picks
//! which future, so every seed interleaves differently), start an order, let a client retry an
//! order id, crash a checkout (drop its future: the host died, its record stays in the log),
//! let the host's recovery timer `resume` an open record, run the outbox (`deliver`), move the
//! clock (a little, or past `CHECKOUT_HOLD_TTL_MS`), fire a shard's `Expire` alarm, restock, or
//! correct a SKU's count (`Seed` with `overwrite`, while orders hold and sell it).
//! Checkouts of different orders interleave freely. Runs of one order id take turns, as the
//! saga's contract asks of hosts (see `OrderDesk`): a retry or the timer starts only when no
//! other future of that order is live, which includes right after a crash dropped one, while
//! the crashed run's messages may still be on the wire. `Mutant::Unserialized` shows why.
//!
//! # Faults
//! Per seed, fault rates are drawn at random ("swarm testing": some seeds are calm, some are
//! stormy in one component only). The network to the shards loses requests, applies a request
//! and loses the reply, duplicates messages, and holds messages back to deliver them many steps
//! later (the caller sees a timeout). A crashed caller's message may still arrive. The checkout
//! log fails reads, and fails writes before or after storing them (a durable store commits a
//! write atomically or not at all, but its acknowledgement can be lost). The order sink fails
//! before or after recording, and duplicates deliveries. The payment gateway is unreachable
//! before charging, or charges and loses the reply. Every component also returns `Pending` a
//! random number of times so checkouts interleave at every await.
//!
//! # What is checked
//! After every step and every message a shard applies: each shard's `MemoryShardStorage::check`
//! (the stock invariant, counters equal to the hold records) and that no SKU's `received`
//! changed except by restock or correction. On every log write: an outcome, once recorded, never changes; a
//! charge marker and a delivery mark are never taken back. On every answer a client gets: the
//! same order id never answers two different outcomes. At the end, with faults off, every open
//! record is resumed, every placed order delivered, late messages are delivered, and then: sold
//! units equal the placed orders' lines (never oversold, no lost or phantom sale), no hold is
//! left, every placed order reached the sink exactly once by id and as the log has it, every
//! charge without a placed order is refunded and no placed order's charge is.
//!
//! # The checks can fail
//! `the_checks_catch_broken_components` runs mutants (a shard that applies a duplicated
//! reserve again, a gateway that ignores refunds, a log that drops acknowledged writes, a host
//! that overlaps runs of one order) and asserts the simulation reports each.
//!
//! # Replaying
//! `SIM_SEED=S cargo test -p edge-core --test simulation` replays one seed; `SIM_SEEDS=N` runs
//! seeds `0..N` (default [`SEEDS_DEFAULT`]). A failure prints its seed, this command and the
//! last steps of the trace (`SIM_TRACE=N` keeps the last N lines instead).

use edge_core::checkout::{
    Checkout, CheckoutError, CheckoutLog, CheckoutOutcome, CheckoutRecord, OrderSink, PaymentError,
    PaymentGateway, TestGateway, CHECKOUT_HOLD_TTL_MS,
};
use edge_core::order::{total, CheckoutRequest, Order, OrderLine};
use edge_core::snapshot::Clock;
use edge_core::stock::{
    apply, Hold, HoldState, Line, MemoryShardStorage, OrderId, ShardReply, ShardRequest,
    ShardStorage, StockLevel, StorageFault,
};
use edge_core::store::{BoxFuture, StockCoordinator, StoreError};
use edge_core::{Money, Sku, SkuShard};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// Seeds run by default: enough to find rare interleavings, small enough for a debug build.
const SEEDS_DEFAULT: u64 = 2_000;
/// Steps with faults on, per seed.
const STEPS_MAX: u32 = 400;
/// Orders one seed creates at most; small, so ids get retried and resumed many times.
const ORDERS_MAX: usize = 16;
/// Live checkout, resume and delivery futures at most.
const TASKS_MAX: usize = 24;
/// Messages the network holds back at most; beyond it, it loses them.
const IN_FLIGHT_MAX: usize = 64;
/// How many steps a held-back message waits at most before it arrives.
const IN_FLIGHT_DELAY_STEPS_MAX: u64 = 60;
/// Polls one future may take: every `Pending` here is bounded, so more is a liveness bug.
const TASK_POLLS_MAX: u32 = 5_000;
/// Polls the settling phase may take to finish every live future.
const SETTLE_POLLS_MAX: u32 = 100_000;
/// Rounds of `resume` (and of outbox deliveries) at the end; faults are off, so one should do.
const RECOVERY_ROUNDS_MAX: u32 = 4;
/// `Expire` calls per shard at the end; each releases up to `EXPIRE_BATCH_MAX` holds.
const EXPIRE_ROUNDS_MAX: u32 = 8;
/// Trace lines kept for a failure report.
const TRACE_LEN: usize = 48;
/// Mutant runs try this many seeds to catch the mutant.
const MUTANT_SEEDS_MAX: u64 = 300;

/// SKUs to build shops from; they span several shards (checked in `World::new`).
const SKU_CANDIDATES: [&str; 8] = [
    "APP-001", "KIT-001", "MUG-001", "TEE-001", "BAG-001", "CAP-001", "PEN-001", "CUP-001",
];
/// A SKU the shops never stock: an order naming it ends `UnknownSku`.
const SKU_UNKNOWN: &str = "GONE-404";

// ---------------------------------------------------------------------------------------------
// Randomness

/// splitmix64: tiny, fast, and the same on every platform, so a seed replays exactly.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0) has no value");
        self.next_u64() % n
    }

    fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi);
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1_000) < u64::from(per_mille)
    }

    /// A fault rate for one seed: zero for a third of seeds, so calm components are covered too.
    fn rate(&mut self, per_mille_max: u64) -> u32 {
        if self.chance(333) {
            0
        } else {
            self.between(1, per_mille_max) as u32
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Faults, mutants, statistics

/// One seed's fault rates, per mille of operations (weights for crash and clock jumps).
#[derive(Clone, Copy, Debug, Default)]
struct Faults {
    net_lose_request: u32,
    net_lose_reply: u32,
    net_duplicate: u32,
    net_hold_back: u32,
    /// Pending polls before a call completes: not a fault, the thing that interleaves checkouts.
    pending_polls_max: u64,
    log_get_fail: u32,
    log_put_fail_before: u32,
    log_put_fail_after: u32,
    sink_fail_before: u32,
    sink_fail_after: u32,
    sink_duplicate: u32,
    gateway_fail_before: u32,
    gateway_fail_after: u32,
    crash_weight: u32,
    clock_jump_weight: u32,
}

impl Faults {
    fn swarm(rng: &mut Rng) -> Self {
        Faults {
            net_lose_request: rng.rate(120),
            net_lose_reply: rng.rate(120),
            net_duplicate: rng.rate(150),
            net_hold_back: rng.rate(120),
            pending_polls_max: rng.between(0, 3),
            log_get_fail: rng.rate(80),
            log_put_fail_before: rng.rate(80),
            log_put_fail_after: rng.rate(80),
            sink_fail_before: rng.rate(200),
            sink_fail_after: rng.rate(200),
            sink_duplicate: rng.rate(200),
            gateway_fail_before: rng.rate(150),
            gateway_fail_after: rng.rate(150),
            crash_weight: rng.rate(4),
            clock_jump_weight: rng.rate(3),
        }
    }

    /// The same seed with every fault off, for the final phase; calls still interleave.
    fn calm(self) -> Self {
        Faults {
            pending_polls_max: self.pending_polls_max,
            ..Faults::default()
        }
    }
}

/// A deliberately broken component, to prove the checks can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mutant {
    None,
    /// A duplicated `Reserve` is applied to a storage that cannot see the order's hold record,
    /// as a host that lost its idempotency table would: it holds the units twice.
    ReserveTwice,
    /// The gateway acknowledges refunds and does nothing.
    RefundIgnored,
    /// The log acknowledges some writes it never stored (not durable).
    LogForgets,
    /// The host does not serialize runs of one order id: a second submit or the recovery timer
    /// runs while the first run is still going. The saga's contract forbids it (see
    /// `OrderDesk`): a stale run overwrites the outcome another run answered, or refunds before
    /// the other run's charge lands.
    Unserialized,
}

/// What a run exercised, summed over seeds to show the faults really happen.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    seeds: u64,
    orders: u64,
    placed: u64,
    insufficient: u64,
    unknown_sku: u64,
    declined: u64,
    payment_timeout: u64,
    hold_expired: u64,
    transient_errors: u64,
    client_retries: u64,
    crashes: u64,
    resumes: u64,
    deliveries: u64,
    net_lost: u64,
    net_reply_lost: u64,
    net_duplicated: u64,
    net_held_back: u64,
    net_late_arrivals: u64,
    log_faults: u64,
    sink_faults: u64,
    gateway_faults: u64,
    clock_jumps: u64,
    holds_expired_by_alarm: u64,
    restocks: u64,
    corrections: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        let Stats {
            seeds,
            orders,
            placed,
            insufficient,
            unknown_sku,
            declined,
            payment_timeout,
            hold_expired,
            transient_errors,
            client_retries,
            crashes,
            resumes,
            deliveries,
            net_lost,
            net_reply_lost,
            net_duplicated,
            net_held_back,
            net_late_arrivals,
            log_faults,
            sink_faults,
            gateway_faults,
            clock_jumps,
            holds_expired_by_alarm,
            restocks,
            corrections,
        } = self;
        *seeds += o.seeds;
        *orders += o.orders;
        *placed += o.placed;
        *insufficient += o.insufficient;
        *unknown_sku += o.unknown_sku;
        *declined += o.declined;
        *payment_timeout += o.payment_timeout;
        *hold_expired += o.hold_expired;
        *transient_errors += o.transient_errors;
        *client_retries += o.client_retries;
        *crashes += o.crashes;
        *resumes += o.resumes;
        *deliveries += o.deliveries;
        *net_lost += o.net_lost;
        *net_reply_lost += o.net_reply_lost;
        *net_duplicated += o.net_duplicated;
        *net_held_back += o.net_held_back;
        *net_late_arrivals += o.net_late_arrivals;
        *log_faults += o.log_faults;
        *sink_faults += o.sink_faults;
        *gateway_faults += o.gateway_faults;
        *clock_jumps += o.clock_jumps;
        *holds_expired_by_alarm += o.holds_expired_by_alarm;
        *restocks += o.restocks;
        *corrections += o.corrections;
    }

    /// Every counter, named, for the coverage assertion and the report.
    fn named(&self) -> [(&'static str, u64); 25] {
        [
            ("seeds", self.seeds),
            ("orders", self.orders),
            ("placed", self.placed),
            ("insufficient", self.insufficient),
            ("unknown_sku", self.unknown_sku),
            ("declined", self.declined),
            ("payment_timeout", self.payment_timeout),
            ("hold_expired", self.hold_expired),
            ("transient_errors", self.transient_errors),
            ("client_retries", self.client_retries),
            ("crashes", self.crashes),
            ("resumes", self.resumes),
            ("deliveries", self.deliveries),
            ("net_lost", self.net_lost),
            ("net_reply_lost", self.net_reply_lost),
            ("net_duplicated", self.net_duplicated),
            ("net_held_back", self.net_held_back),
            ("net_late_arrivals", self.net_late_arrivals),
            ("log_faults", self.log_faults),
            ("sink_faults", self.sink_faults),
            ("gateway_faults", self.gateway_faults),
            ("clock_jumps", self.clock_jumps),
            ("holds_expired_by_alarm", self.holds_expired_by_alarm),
            ("restocks", self.restocks),
            ("corrections", self.corrections),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// The world: everything the components share, behind one lock

/// A message the network held back, to arrive at `arrives_at_step`.
struct Delayed {
    shard: SkuShard,
    request: ShardRequest,
    arrives_at_step: u32,
}

/// The simulated shop: shards, the wire, the log, the sink, the clock and the one PRNG that
/// decides everything, so a seed replays exactly.
struct World {
    rng: Rng,
    step: u32,
    now_ms: u64,
    faults: Faults,
    mutant: Mutant,
    /// Whether a future of an order id (a run, resume or delivery) may start while another
    /// one of it is live. Hosts must make them take turns (see `OrderDesk`), so a second
    /// submit or the recovery timer waits; only `Mutant::Unserialized` overlaps them.
    overlap: bool,
    shards: BTreeMap<SkuShard, MemoryShardStorage>,
    /// What each SKU's `received` must be: its seed, restocks and corrections.
    received: BTreeMap<Sku, u64>,
    in_flight: Vec<Delayed>,
    /// The checkout log's durable contents.
    records: BTreeMap<OrderId, CheckoutRecord>,
    /// Every order the sink accepted, in arrival order (duplicates included).
    sink: BTreeMap<OrderId, Vec<Order>>,
    /// The first broken invariant; the driver stops at the end of the step.
    violation: Option<String>,
    trace: VecDeque<String>,
    /// Trace lines kept: [`TRACE_LEN`], or `SIM_TRACE` when replaying a seed.
    trace_len: usize,
    stats: Stats,
}

impl World {
    fn new(seed: u64, mutant: Mutant) -> Self {
        let mut rng = Rng(seed);
        let mut faults = Faults::swarm(&mut rng);
        if mutant == Mutant::ReserveTwice {
            // The mutant only shows on duplicated reserves.
            faults.net_duplicate = faults.net_duplicate.max(200);
        }
        let overlap = mutant == Mutant::Unserialized;
        World {
            rng,
            step: 0,
            now_ms: 1_000_000,
            faults,
            mutant,
            overlap,
            shards: BTreeMap::new(),
            received: BTreeMap::new(),
            in_flight: Vec::new(),
            records: BTreeMap::new(),
            sink: BTreeMap::new(),
            violation: None,
            trace: VecDeque::new(),
            trace_len: env_u64("SIM_TRACE").map_or(TRACE_LEN, |n| n as usize),
            stats: Stats {
                seeds: 1,
                ..Stats::default()
            },
        }
    }

    fn note(&mut self, event: impl FnOnce() -> String) {
        if self.trace.len() >= self.trace_len {
            self.trace.pop_front();
        }
        let line = format!("step {:>3} t={:>9}: {}", self.step, self.now_ms, event());
        self.trace.push_back(line);
    }

    fn violate(&mut self, message: String) {
        self.note(|| format!("VIOLATION: {message}"));
        if self.violation.is_none() {
            self.violation = Some(message);
        }
    }

    /// Whether the fault `rate` picks from this seed's rates happens this time.
    fn fault(&mut self, rate: impl Fn(&Faults) -> u32) -> bool {
        let per_mille = rate(&self.faults);
        per_mille > 0 && self.rng.chance(per_mille)
    }

    fn pending_polls(&mut self) -> u64 {
        let max = self.faults.pending_polls_max;
        self.rng.between(0, max)
    }

    /// One message reaches one shard: the shard applies it at the simulated time. The
    /// shard's invariants are checked right after, before anything else can look.
    fn deliver(
        &mut self,
        shard: SkuShard,
        request: ShardRequest,
    ) -> Result<ShardReply, StoreError> {
        let now_ms = self.now_ms;
        let what = describe(&request);
        let storage = self.shards.entry(shard).or_default();
        let reply = apply(storage, request, now_ms);
        let checked = storage.check();
        if let Err(e) = checked {
            self.violate(format!("shard {} after {what}: {e}", shard.index()));
        }
        match reply {
            Ok(reply) => {
                if let ShardReply::Expired { released } = reply {
                    self.stats.holds_expired_by_alarm += u64::from(released);
                }
                self.note(|| format!("shard {:>2} <- {what} = {reply:?}", shard.index()));
                Ok(reply)
            }
            // Memory storage cannot fail; a fault here is `apply` refusing a broken write.
            Err(StorageFault(e)) => {
                self.violate(format!("shard {} refused {what}: {e}", shard.index()));
                Err(StoreError::Unavailable(e))
            }
        }
    }

    /// The mutant's shard: applies a duplicated reserve without seeing the hold it made.
    fn deliver_forgetting(&mut self, shard: SkuShard, request: ShardRequest) {
        let now_ms = self.now_ms;
        let what = describe(&request);
        let storage = self.shards.entry(shard).or_default();
        let _ = apply(&mut Forgetful(storage), request, now_ms);
        let checked = storage.check();
        self.note(|| format!("shard {:>2} <- {what} (mutant: again)", shard.index()));
        if let Err(e) = checked {
            self.violate(format!("shard {} after {what}: {e}", shard.index()));
        }
    }

    /// The network between a worker and a shard: what happens to one request.
    fn transmit(
        &mut self,
        shard: SkuShard,
        request: ShardRequest,
    ) -> Result<ShardReply, StoreError> {
        let f = self.faults;
        let roll = self.rng.below(1_000) as u32;
        let mut edge = f.net_lose_request;
        if roll < edge {
            self.stats.net_lost += 1;
            self.note(|| {
                format!(
                    "net: lost {} to shard {}",
                    describe(&request),
                    shard.index()
                )
            });
            return Err(StoreError::Unavailable("request lost".into()));
        }
        edge += f.net_hold_back;
        if roll < edge {
            self.hold_back(shard, request);
            return Err(StoreError::Unavailable("shard timed out".into()));
        }
        edge += f.net_lose_reply;
        if roll < edge {
            self.stats.net_reply_lost += 1;
            let _ = self.deliver(shard, request);
            self.note(|| "net: reply lost".into());
            return Err(StoreError::Unavailable("reply lost".into()));
        }
        edge += f.net_duplicate;
        if roll < edge {
            self.stats.net_duplicated += 1;
            let reply = self.deliver(shard, request.clone());
            let is_reserve = matches!(request, ShardRequest::Reserve { .. });
            if self.mutant == Mutant::ReserveTwice && is_reserve {
                self.deliver_forgetting(shard, request);
            } else if self.rng.chance(500) {
                self.note(|| "net: duplicated now".into());
                let _ = self.deliver(shard, request);
            } else {
                self.hold_back(shard, request);
            }
            return reply;
        }
        self.deliver(shard, request)
    }

    fn hold_back(&mut self, shard: SkuShard, request: ShardRequest) {
        if self.in_flight.len() >= IN_FLIGHT_MAX {
            self.stats.net_lost += 1;
            self.note(|| format!("net: queue full, lost {}", describe(&request)));
            return;
        }
        self.stats.net_held_back += 1;
        let delay = self.rng.between(1, IN_FLIGHT_DELAY_STEPS_MAX) as u32;
        self.note(|| format!("net: held back {} for {delay} steps", describe(&request)));
        self.in_flight.push(Delayed {
            shard,
            request,
            arrives_at_step: self.step + delay,
        });
    }

    /// Late messages whose time has come arrive; nobody waits for their replies.
    fn deliver_due(&mut self) {
        let step = self.step;
        for _ in 0..IN_FLIGHT_MAX {
            let Some(i) = self
                .in_flight
                .iter()
                .position(|m| m.arrives_at_step <= step)
            else {
                break;
            };
            let late = self.in_flight.swap_remove(i);
            self.stats.net_late_arrivals += 1;
            self.note(|| "net: late arrival".into());
            let _ = self.deliver(late.shard, late.request);
        }
    }

    /// Everything still on the wire arrives, in random order.
    fn flush_in_flight(&mut self) {
        for _ in 0..IN_FLIGHT_MAX {
            if self.in_flight.is_empty() {
                break;
            }
            let i = self.rng.index(self.in_flight.len());
            let late = self.in_flight.swap_remove(i);
            self.stats.net_late_arrivals += 1;
            self.note(|| "net: late arrival (flush)".into());
            let _ = self.deliver(late.shard, late.request);
        }
        assert!(self.in_flight.is_empty(), "the queue is bounded");
    }

    /// Every shard's invariants, and `received` moved only by restocks.
    fn check_shards(&mut self) {
        let mut broken = Vec::new();
        for (shard, storage) in &self.shards {
            if let Err(e) = storage.check() {
                broken.push(format!("shard {}: {e}", shard.index()));
            }
            for (sku, level) in storage.levels() {
                let want = self.received.get(sku).copied().unwrap_or(0);
                if level.received != want {
                    broken.push(format!(
                        "{sku}: received {} but seed and restocks add up to {want}",
                        level.received
                    ));
                }
            }
        }
        for message in broken {
            self.violate(message);
        }
    }

    /// Every SKU's level, over all shards.
    fn levels(&self) -> BTreeMap<Sku, StockLevel> {
        self.shards
            .values()
            .flat_map(|s| s.levels().map(|(sku, level)| (sku.clone(), *level)))
            .collect()
    }
}

fn describe(request: &ShardRequest) -> String {
    match request {
        ShardRequest::Reserve { order, lines, .. } => {
            let lines: Vec<String> = lines
                .iter()
                .map(|l| format!("{}x{}", l.sku, l.qty))
                .collect();
            format!("Reserve {order} [{}]", lines.join(" "))
        }
        ShardRequest::Commit { order } => format!("Commit {order}"),
        ShardRequest::Release { order } => format!("Release {order}"),
        ShardRequest::Cancel { order } => format!("Cancel {order}"),
        ShardRequest::Expire => "Expire".into(),
        ShardRequest::Restock { sku, qty, .. } => format!("Restock {sku}x{qty}"),
        ShardRequest::Seed { levels, .. } => format!("Seed {} SKUs", levels.len()),
        ShardRequest::Level { sku } => format!("Level {sku}"),
    }
}

/// The world lock is only ever taken for one synchronous step, never across an await or a
/// drop of a future: a second lock on this thread would deadlock, so it panics instead.
fn lock(world: &Mutex<World>) -> MutexGuard<'_, World> {
    world
        .try_lock()
        .expect("the world lock is never held across an await")
}

/// The mutant storage: cannot see hold records, so `apply` takes every reserve as new.
struct Forgetful<'s>(&'s mut MemoryShardStorage);

impl ShardStorage for Forgetful<'_> {
    fn level(&self, sku: &Sku) -> Result<Option<StockLevel>, StorageFault> {
        self.0.level(sku)
    }
    fn set_level(&mut self, sku: &Sku, level: &StockLevel) -> Result<(), StorageFault> {
        self.0.set_level(sku, level)
    }
    fn hold(&self, _order: &OrderId) -> Result<Option<Hold>, StorageFault> {
        Ok(None)
    }
    fn set_hold(&mut self, order: &OrderId, hold: &Hold) -> Result<(), StorageFault> {
        self.0.set_hold(order, hold)
    }
    fn due_holds(&self, now_ms: u64, limit: usize) -> Result<Vec<OrderId>, StorageFault> {
        self.0.due_holds(now_ms, limit)
    }
    fn next_expiry(&self) -> Result<Option<u64>, StorageFault> {
        self.0.next_expiry()
    }
}

// ---------------------------------------------------------------------------------------------
// The components the checkout talks to

/// Returns `Pending` once (waking itself), so the executor may switch to another future.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

async fn stall(polls: u64) {
    for _ in 0..polls {
        YieldOnce(false).await;
    }
}

/// A request that is on the wire. If its caller dies first (the future is dropped), the message
/// does not vanish with it: it may still arrive, later.
struct OnTheWire<'w> {
    world: &'w Mutex<World>,
    message: Option<(SkuShard, ShardRequest)>,
}

impl Drop for OnTheWire<'_> {
    fn drop(&mut self) {
        let Some((shard, request)) = self.message.take() else {
            return;
        };
        // Not `lock`: this also runs while a failing test unwinds, and must not panic then.
        if let Ok(mut world) = self.world.try_lock() {
            if world.rng.chance(500) {
                world.hold_back(shard, request);
            }
        }
    }
}

/// The shards, reached over the faulty network.
struct SimNet<'w> {
    world: &'w Mutex<World>,
}

impl StockCoordinator for SimNet<'_> {
    fn on_shard(
        &self,
        shard: SkuShard,
        request: ShardRequest,
    ) -> BoxFuture<'_, Result<ShardReply, StoreError>> {
        let world = self.world;
        Box::pin(async move {
            let polls = lock(world).pending_polls();
            let mut wire = OnTheWire {
                world,
                message: Some((shard, request)),
            };
            stall(polls).await;
            let (shard, request) = wire.message.take().expect("sent once");
            lock(world).transmit(shard, request)
        })
    }
}

/// The checkout log: a durable store whose writes are atomic, but whose answers can be lost.
/// It also checks that the saga only ever moves a record forward.
struct SimLog<'w> {
    world: &'w Mutex<World>,
}

impl CheckoutLog for SimLog<'_> {
    fn get<'a>(
        &'a self,
        order: &'a OrderId,
    ) -> BoxFuture<'a, Result<Option<CheckoutRecord>, StoreError>> {
        Box::pin(async move {
            let polls = lock(self.world).pending_polls();
            stall(polls).await;
            let mut w = lock(self.world);
            if w.fault(|f| f.log_get_fail) {
                w.stats.log_faults += 1;
                w.note(|| format!("log: get {order} failed"));
                return Err(StoreError::Unavailable("log read failed".into()));
            }
            Ok(w.records.get(order).cloned())
        })
    }

    fn put<'a>(&'a self, record: &'a CheckoutRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let polls = lock(self.world).pending_polls();
            stall(polls).await;
            let mut w = lock(self.world);
            let id = &record.order_id;
            if w.fault(|f| f.log_put_fail_before) {
                w.stats.log_faults += 1;
                w.note(|| format!("log: put {id} failed, not stored"));
                return Err(StoreError::Unavailable("log write failed".into()));
            }
            if w.mutant == Mutant::LogForgets && w.rng.chance(100) {
                w.note(|| format!("log: put {id} acknowledged, not stored (mutant)"));
                return Ok(());
            }
            if let Some(old) = w.records.get(id) {
                let regressions = record_regressions(old, record);
                if !regressions.is_empty() {
                    w.violate(format!("log: put {id} {}", regressions.join(", ")));
                }
            }
            w.note(|| format!("log: put {id} {}", record_state(record)));
            w.records.insert(id.clone(), record.clone());
            if w.fault(|f| f.log_put_fail_after) {
                w.stats.log_faults += 1;
                w.note(|| format!("log: put {id} stored, acknowledgement lost"));
                return Err(StoreError::Unavailable("log write timed out".into()));
            }
            Ok(())
        })
    }
}

/// How a write would move a record backwards, if it would.
fn record_regressions(old: &CheckoutRecord, new: &CheckoutRecord) -> Vec<String> {
    let mut broken = Vec::new();
    if old.outcome.is_some() && new.outcome != old.outcome {
        broken.push(format!(
            "changes the recorded outcome {} to {}",
            outcome_name(old.outcome.as_ref()),
            outcome_name(new.outcome.as_ref())
        ));
    }
    if let (Some(CheckoutOutcome::Placed(a)), Some(CheckoutOutcome::Placed(b))) =
        (&old.outcome, &new.outcome)
    {
        if a != b {
            broken.push("replaces the placed order with a different one".into());
        }
    }
    // A charge attempt forgotten would never be refunded.
    if old.charging && !new.charging {
        broken.push("forgets that charging started".into());
    }
    // A delivery mark taken back would send the order to the origin again.
    if old.delivered && !new.delivered {
        broken.push("takes back the delivery mark".into());
    }
    if old.fingerprint != new.fingerprint {
        broken.push("changes the request's fingerprint".into());
    }
    broken
}

fn record_state(record: &CheckoutRecord) -> String {
    format!(
        "charging={} outcome={} delivered={}",
        record.charging,
        outcome_name(record.outcome.as_ref()),
        record.delivered
    )
}

fn outcome_name(outcome: Option<&CheckoutOutcome>) -> String {
    match outcome {
        None => "open".into(),
        Some(CheckoutOutcome::Placed(order)) => format!("Placed(at {})", order.placed_at_ms),
        Some(CheckoutOutcome::Insufficient { sku, available }) => {
            format!("Insufficient({sku}, {available})")
        }
        Some(CheckoutOutcome::UnknownSku { sku }) => format!("UnknownSku({sku})"),
        Some(CheckoutOutcome::Declined { .. }) => "Declined".into(),
        Some(CheckoutOutcome::PaymentTimeout) => "PaymentTimeout".into(),
        Some(CheckoutOutcome::HoldExpired) => "HoldExpired".into(),
    }
}

/// The origin's order intake. It records every order it accepts, by id.
struct SimSink<'w> {
    world: &'w Mutex<World>,
}

impl OrderSink for SimSink<'_> {
    fn deliver<'a>(&'a self, order: &'a Order) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let polls = lock(self.world).pending_polls();
            stall(polls).await;
            let mut w = lock(self.world);
            if w.fault(|f| f.sink_fail_before) {
                w.stats.sink_faults += 1;
                w.note(|| format!("sink: {} refused", order.id));
                return Err(StoreError::Unavailable("origin unreachable".into()));
            }
            w.stats.deliveries += 1;
            w.note(|| format!("sink: accepted {}", order.id));
            let copies = if w.fault(|f| f.sink_duplicate) {
                w.stats.sink_faults += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                w.sink
                    .entry(order.id.clone())
                    .or_default()
                    .push(order.clone());
            }
            if w.fault(|f| f.sink_fail_after) {
                w.stats.sink_faults += 1;
                w.note(|| format!("sink: {} accepted, acknowledgement lost", order.id));
                return Err(StoreError::Unavailable("origin timed out".into()));
            }
            Ok(())
        })
    }
}

/// The test gateway behind an unreliable connection.
struct SimGateway<'w> {
    world: &'w Mutex<World>,
    inner: TestGateway,
}

/// Where a gateway call fails, decided before the call so no lock is held across it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum GatewayFate {
    Reached,
    Unreachable,
    ReplyLost,
}

impl SimGateway<'_> {
    fn fate(&self, what: impl FnOnce() -> String) -> (u64, GatewayFate) {
        let mut w = lock(self.world);
        let polls = w.pending_polls();
        let fate = if w.fault(|f| f.gateway_fail_before) {
            GatewayFate::Unreachable
        } else if w.fault(|f| f.gateway_fail_after) {
            GatewayFate::ReplyLost
        } else {
            GatewayFate::Reached
        };
        if fate != GatewayFate::Reached {
            w.stats.gateway_faults += 1;
        }
        let what = what();
        let said = match fate {
            GatewayFate::Reached => "",
            GatewayFate::Unreachable => " (unreachable)",
            GatewayFate::ReplyLost => " (reply will be lost)",
        };
        w.note(|| format!("gateway: {what}{said}"));
        (polls, fate)
    }
}

impl PaymentGateway for SimGateway<'_> {
    fn charge<'a>(
        &'a self,
        order: &'a OrderId,
        amount: &'a Money,
        token: &'a str,
    ) -> BoxFuture<'a, Result<String, PaymentError>> {
        Box::pin(async move {
            let (polls, fate) = self.fate(|| format!("charge {order} {token}"));
            stall(polls).await;
            if fate == GatewayFate::Unreachable {
                return Err(PaymentError::Unavailable("connection refused".into()));
            }
            let charged = self.inner.charge(order, amount, token).await;
            if fate == GatewayFate::ReplyLost {
                // Money may have moved; the caller cannot know.
                return Err(PaymentError::Timeout);
            }
            charged
        })
    }

    fn refund<'a>(&'a self, order: &'a OrderId) -> BoxFuture<'a, Result<(), PaymentError>> {
        Box::pin(async move {
            let (polls, fate) = self.fate(|| format!("refund {order}"));
            stall(polls).await;
            if fate == GatewayFate::Unreachable {
                return Err(PaymentError::Unavailable("connection refused".into()));
            }
            if lock(self.world).mutant != Mutant::RefundIgnored {
                self.inner.refund(order).await?;
            }
            if fate == GatewayFate::ReplyLost {
                return Err(PaymentError::Unavailable("refund timed out".into()));
            }
            Ok(())
        })
    }
}

struct SimClock<'w> {
    world: &'w Mutex<World>,
}

impl Clock for SimClock<'_> {
    fn now_ms(&self) -> u64 {
        lock(self.world).now_ms
    }
}

// ---------------------------------------------------------------------------------------------
// Clients, tasks and the executor

/// An order as its shopper's browser knows it: the request it sends (again) under one id.
struct ClientOrder {
    id: OrderId,
    request: CheckoutRequest,
    lines: Vec<OrderLine>,
    total: Money,
    /// The first outcome anyone was answered for this id; every later answer must equal it.
    answered: Option<CheckoutOutcome>,
}

enum Done {
    Run(Result<CheckoutOutcome, CheckoutError>),
    Resume(Result<Option<CheckoutOutcome>, CheckoutError>),
    Deliver(Result<bool, StoreError>),
}

struct Task<'a> {
    order: OrderId,
    kind: &'static str,
    polls: u32,
    future: Pin<Box<dyn Future<Output = Done> + 'a>>,
}

#[derive(Clone, Copy, Debug)]
enum Action {
    Poll,
    NewOrder,
    Retry,
    Resume,
    Deliver,
    Crash,
    Tick,
    ClockJump,
    Expire,
    Restock,
    Correct,
}

/// Runs one seed: the clients, the host's timers and the executor.
struct Driver<'a> {
    world: &'a Mutex<World>,
    checkout: &'a Checkout<'a>,
    sink: &'a SimSink<'a>,
    skus: Vec<Sku>,
    orders: Vec<ClientOrder>,
    tasks: Vec<Task<'a>>,
}

impl<'a> Driver<'a> {
    fn world(&self) -> MutexGuard<'a, World> {
        lock(self.world)
    }

    fn setup(&mut self) {
        let mut w = self.world();
        let mut candidates: Vec<Sku> = SKU_CANDIDATES.iter().map(|s| sku(s)).collect();
        let count = w.rng.between(3, 6) as usize;
        for _ in 0..count {
            let i = w.rng.index(candidates.len());
            self.skus.push(candidates.swap_remove(i));
        }
        let shards: BTreeSet<SkuShard> = self.skus.iter().map(SkuShard::of).collect();
        assert!(shards.len() >= 2, "the candidates span shards: {shards:?}");
        for sku in &self.skus {
            let units = w.rng.between(2, 8);
            w.received.insert(sku.clone(), units);
            let seed = ShardRequest::Seed {
                levels: vec![(sku.clone(), units as u32)],
                overwrite: true,
            };
            w.deliver(SkuShard::of(sku), seed)
                .expect("seeding a memory shard");
        }
        let (faults, overlap) = (w.faults, w.overlap);
        w.note(|| format!("setup: overlap={overlap} {faults:?}"));
    }

    fn action(&self) -> Action {
        let mut w = self.world();
        let f = w.faults;
        let weights = [
            (Action::Poll, 60),
            (Action::NewOrder, 6),
            (Action::Retry, 5),
            (Action::Resume, 3),
            (Action::Deliver, 4),
            (Action::Crash, f.crash_weight),
            (Action::Tick, 6),
            (Action::ClockJump, f.clock_jump_weight),
            (Action::Expire, 3),
            (Action::Restock, 1),
            (Action::Correct, 1),
        ];
        let sum: u32 = weights.iter().map(|(_, w)| w).sum();
        let mut roll = w.rng.below(u64::from(sum)) as u32;
        for (action, weight) in weights {
            if roll < weight {
                return action;
            }
            roll -= weight;
        }
        unreachable!("the roll is below the sum of weights")
    }

    /// One step with faults on.
    fn step(&mut self) {
        {
            let mut w = self.world();
            w.step += 1;
            w.deliver_due();
        }
        match self.action() {
            Action::Poll => self.poll_one(),
            Action::NewOrder => self.new_order(),
            Action::Retry => self.retry(),
            Action::Resume => self.recover_one(),
            Action::Deliver => self.deliver_one(),
            Action::Crash => self.crash(),
            Action::Tick => {
                let mut w = self.world();
                let ms = w.rng.between(1, 5_000);
                w.now_ms += ms;
            }
            Action::ClockJump => {
                let mut w = self.world();
                let ms = w
                    .rng
                    .between(CHECKOUT_HOLD_TTL_MS / 4, CHECKOUT_HOLD_TTL_MS * 3 / 2);
                w.now_ms += ms;
                w.stats.clock_jumps += 1;
                w.note(|| format!("clock: jumped {ms} ms"));
            }
            Action::Expire => {
                let mut w = self.world();
                let i = w.rng.index(self.skus.len());
                let _ = w.deliver(SkuShard::of(&self.skus[i]), ShardRequest::Expire);
            }
            Action::Restock => {
                let mut w = self.world();
                let i = w.rng.index(self.skus.len());
                let qty = w.rng.between(1, 3);
                let sku = self.skus[i].clone();
                *w.received.get_mut(&sku).expect("a seeded SKU") += qty;
                w.stats.restocks += 1;
                let restock = ShardRequest::Restock {
                    sku: sku.clone(),
                    qty: qty as u32,
                    receipt: None,
                };
                let _ = w.deliver(SkuShard::of(&sku), restock);
            }
            Action::Correct => self.correct(),
        }
        self.world().check_shards();
    }

    /// A stock count corrects a SKU's available units while orders hold and sell it.
    fn correct(&mut self) {
        let mut w = self.world();
        let i = w.rng.index(self.skus.len());
        let sku = self.skus[i].clone();
        let available = w.rng.between(0, 8) as u32;
        let shard = SkuShard::of(&sku);
        let before = w.shards[&shard]
            .level(&sku)
            .expect("memory")
            .expect("seeded");
        // What is held or sold stays; `received` follows the counted units.
        let received = u64::from(available) + u64::from(before.held) + u64::from(before.sold);
        w.received.insert(sku.clone(), received);
        w.stats.corrections += 1;
        let correction = ShardRequest::Seed {
            levels: vec![(sku, available)],
            overwrite: true,
        };
        let _ = w.deliver(shard, correction);
    }

    fn new_order(&mut self) {
        if self.orders.len() >= ORDERS_MAX || self.tasks.len() >= TASKS_MAX {
            return;
        }
        let mut w = self.world();
        let id = OrderId::parse(&format!("o{}", self.orders.len())).expect("a valid id");
        let line_count = w.rng.between(1, 3) as usize;
        let mut pool = self.skus.clone();
        let mut request_lines = Vec::new();
        for _ in 0..line_count.min(pool.len()) {
            let i = w.rng.index(pool.len());
            let qty = w.rng.between(1, 3) as u32;
            request_lines.push(Line {
                sku: pool.swap_remove(i),
                qty,
            });
        }
        if w.rng.chance(30) {
            request_lines.push(Line {
                sku: sku(SKU_UNKNOWN),
                qty: 1,
            });
        }
        let token = match w.rng.below(100) {
            0..70 => "tok_visa",
            70..85 => "tok_declined",
            _ => "tok_timeout",
        };
        w.stats.orders += 1;
        drop(w);
        let lines: Vec<OrderLine> = request_lines
            .iter()
            .enumerate()
            .map(|(i, l)| OrderLine {
                sku: l.sku.clone(),
                title: format!("Item {i}"),
                qty: l.qty,
                unit_price: Money::new(100 * (i as u64 + 1), "USD"),
            })
            .collect();
        let total = total(&lines).expect("one currency");
        let order = ClientOrder {
            id,
            request: CheckoutRequest {
                lines: request_lines,
                email: "shopper@example.com".into(),
                payment_token: token.into(),
                codes: Vec::new(),
            },
            lines,
            total,
            answered: None,
        };
        self.orders.push(order);
        self.spawn_run(self.orders.len() - 1);
    }

    fn retry(&mut self) {
        if self.orders.is_empty() || self.tasks.len() >= TASKS_MAX {
            return;
        }
        let i = self.world().rng.index(self.orders.len());
        let id = self.orders[i].id.clone();
        if !self.may_start(&id) {
            return;
        }
        self.world().stats.client_retries += 1;
        self.spawn_run(i);
    }

    /// Whether a future for `id` may start now: it waits for the order's turn (it is skipped
    /// this step; the client or timer comes back later), unless the host is the mutant.
    fn may_start(&self, id: &OrderId) -> bool {
        self.world().overlap || self.tasks.iter().all(|t| &t.order != id)
    }

    fn spawn_run(&mut self, i: usize) {
        let checkout = self.checkout;
        let order = &self.orders[i];
        let (id, request, lines, total) = (
            order.id.clone(),
            order.request.clone(),
            order.lines.clone(),
            order.total.clone(),
        );
        self.world().note(|| format!("client: checkout {id}"));
        self.tasks.push(Task {
            order: id.clone(),
            kind: "run",
            polls: 0,
            future: Box::pin(
                async move { Done::Run(checkout.run(id, request, lines, total).await) },
            ),
        });
    }

    fn spawn_resume(&mut self, id: OrderId) {
        let checkout = self.checkout;
        let mut w = self.world();
        w.stats.resumes += 1;
        w.note(|| format!("timer: resume {id}"));
        drop(w);
        let order = id.clone();
        self.tasks.push(Task {
            order,
            kind: "resume",
            polls: 0,
            future: Box::pin(async move { Done::Resume(checkout.resume(&id).await) }),
        });
    }

    fn spawn_deliver(&mut self, id: OrderId) {
        let (checkout, sink) = (self.checkout, self.sink);
        self.world().note(|| format!("outbox: deliver {id}"));
        let order = id.clone();
        self.tasks.push(Task {
            order,
            kind: "deliver",
            polls: 0,
            future: Box::pin(async move { Done::Deliver(checkout.deliver(&id, sink).await) }),
        });
    }

    /// The host's recovery timer: finishes one open checkout.
    fn recover_one(&mut self) {
        if self.tasks.len() >= TASKS_MAX {
            return;
        }
        let open = self.records_where(|r| r.outcome.is_none());
        if open.is_empty() {
            return;
        }
        let id = open[self.world().rng.index(open.len())].clone();
        if self.may_start(&id) {
            self.spawn_resume(id);
        }
    }

    /// The outbox: hands one placed order to the origin.
    fn deliver_one(&mut self) {
        if self.tasks.len() >= TASKS_MAX {
            return;
        }
        let undelivered = self.records_where(undelivered);
        if undelivered.is_empty() {
            return;
        }
        let id = undelivered[self.world().rng.index(undelivered.len())].clone();
        if self.may_start(&id) {
            self.spawn_deliver(id);
        }
    }

    fn records_where(&self, keep: impl Fn(&CheckoutRecord) -> bool) -> Vec<OrderId> {
        self.world()
            .records
            .values()
            .filter(|r| keep(r))
            .map(|r| r.order_id.clone())
            .collect()
    }

    /// The host running one future dies: the future is dropped wherever it was.
    fn crash(&mut self) {
        if self.tasks.is_empty() {
            return;
        }
        let i = self.world().rng.index(self.tasks.len());
        let task = self.tasks.swap_remove(i);
        let (order, kind, polls) = (task.order.clone(), task.kind, task.polls);
        // Dropped before the lock is taken: its in-flight messages take the lock to go on.
        drop(task);
        let mut w = self.world();
        w.stats.crashes += 1;
        w.note(|| format!("crash: {kind} of {order} dropped after {polls} polls"));
    }

    fn poll_one(&mut self) {
        if self.tasks.is_empty() {
            return;
        }
        let i = self.world().rng.index(self.tasks.len());
        let task = &mut self.tasks[i];
        task.polls += 1;
        let mut cx = Context::from_waker(Waker::noop());
        let Poll::Ready(done) = task.future.as_mut().poll(&mut cx) else {
            if task.polls > TASK_POLLS_MAX {
                let message = format!(
                    "{} of {} still pending after {TASK_POLLS_MAX} polls",
                    task.kind, task.order
                );
                self.world().violate(message);
            }
            return;
        };
        let task = self.tasks.swap_remove(i);
        self.finished(task.order, done);
    }

    /// What a finished future answered, checked against what earlier ones answered.
    fn finished(&mut self, id: OrderId, done: Done) {
        let mut w = self.world();
        let outcome = match done {
            Done::Run(Ok(outcome)) | Done::Resume(Ok(Some(outcome))) => outcome,
            Done::Run(Err(CheckoutError::Store(e)))
            | Done::Resume(Err(CheckoutError::Store(e))) => {
                w.stats.transient_errors += 1;
                w.note(|| format!("answer: {id} failed transiently: {e}"));
                return;
            }
            Done::Run(Err(e)) | Done::Resume(Err(e)) => {
                w.violate(format!("{id}: the same request was refused: {e}"));
                return;
            }
            Done::Resume(Ok(None)) => {
                w.violate(format!("{id}: resumed, but its record is gone"));
                return;
            }
            Done::Deliver(result) => {
                w.note(|| format!("answer: deliver {id} = {result:?}"));
                return;
            }
        };
        w.note(|| format!("answer: {id} = {}", outcome_name(Some(&outcome))));
        let order = self
            .orders
            .iter_mut()
            .find(|o| o.id == id)
            .expect("every task belongs to an order");
        match &order.answered {
            None => {
                let stat = match &outcome {
                    CheckoutOutcome::Placed(_) => &mut w.stats.placed,
                    CheckoutOutcome::Insufficient { .. } => &mut w.stats.insufficient,
                    CheckoutOutcome::UnknownSku { .. } => &mut w.stats.unknown_sku,
                    CheckoutOutcome::Declined { .. } => &mut w.stats.declined,
                    CheckoutOutcome::PaymentTimeout => &mut w.stats.payment_timeout,
                    CheckoutOutcome::HoldExpired => &mut w.stats.hold_expired,
                };
                *stat += 1;
                order.answered = Some(outcome);
            }
            Some(first) if *first != outcome => {
                let message = format!(
                    "{id}: answered {} before and {} now",
                    outcome_name(Some(first)),
                    outcome_name(Some(&outcome))
                );
                w.violate(message);
            }
            Some(_) => {}
        }
    }

    /// Polls every live future to its end, in random order.
    fn drain(&mut self) -> Result<(), String> {
        for _ in 0..SETTLE_POLLS_MAX {
            if self.tasks.is_empty() {
                return Ok(());
            }
            self.poll_one();
            self.stop_on_violation()?;
        }
        Err(format!(
            "{} futures still pending after {SETTLE_POLLS_MAX} polls",
            self.tasks.len()
        ))
    }

    fn stop_on_violation(&self) -> Result<(), String> {
        match self.world().violation.take() {
            Some(message) => Err(message),
            None => Ok(()),
        }
    }

    fn run(&mut self) -> Result<(), String> {
        for _ in 0..STEPS_MAX {
            self.step();
            self.stop_on_violation()?;
        }
        Ok(())
    }

    /// Faults off: finish everything the way the host eventually would.
    fn settle(&mut self) -> Result<(), String> {
        {
            let mut w = self.world();
            w.faults = w.faults.calm();
            w.step += 1;
            w.note(|| "faults off: settling".into());
            w.flush_in_flight();
        }
        self.drain()?;
        for _ in 0..RECOVERY_ROUNDS_MAX {
            let open = self.records_where(|r| r.outcome.is_none());
            if open.is_empty() {
                break;
            }
            for id in open {
                self.spawn_resume(id);
            }
            self.drain()?;
        }
        let open = self.records_where(|r| r.outcome.is_none());
        if !open.is_empty() {
            return Err(format!(
                "records still open after {RECOVERY_ROUNDS_MAX} recovery rounds: {open:?}"
            ));
        }
        for _ in 0..RECOVERY_ROUNDS_MAX {
            let pending = self.records_where(undelivered);
            if pending.is_empty() {
                break;
            }
            for id in pending {
                self.spawn_deliver(id);
            }
            self.drain()?;
        }
        let pending = self.records_where(undelivered);
        if !pending.is_empty() {
            return Err(format!(
                "placed orders still undelivered after {RECOVERY_ROUNDS_MAX} rounds: {pending:?}"
            ));
        }
        self.stop_on_violation()
    }
}

fn undelivered(record: &CheckoutRecord) -> bool {
    matches!(record.outcome, Some(CheckoutOutcome::Placed(_))) && !record.delivered
}

fn sku(raw: &str) -> Sku {
    Sku::parse(raw).expect("a valid SKU")
}

// ---------------------------------------------------------------------------------------------
// The end-state checks

/// Every check on the settled world; the first broken one.
fn check_settled(
    w: &mut World,
    orders: &[ClientOrder],
    gateway: &TestGateway,
) -> Result<(), String> {
    let placed: BTreeMap<&OrderId, &Order> = w
        .records
        .values()
        .filter_map(|r| match &r.outcome {
            Some(CheckoutOutcome::Placed(order)) => Some((&r.order_id, order)),
            _ => None,
        })
        .collect();

    // A finished checkout leaves no hold: placed ones sold theirs, failed ones released them.
    for (sku, level) in w.levels() {
        if level.held != 0 {
            return Err(format!(
                "{sku}: {} units still held after every checkout finished",
                level.held
            ));
        }
    }

    // (1) Sold units are exactly the placed orders' lines, SKU by SKU and order by order.
    let mut want_sold: BTreeMap<Sku, u64> = BTreeMap::new();
    for order in placed.values() {
        for line in &order.lines {
            *want_sold.entry(line.sku.clone()).or_default() += u64::from(line.qty);
        }
    }
    let levels = w.levels();
    for (sku, level) in &levels {
        let want = want_sold.get(sku).copied().unwrap_or(0);
        if u64::from(level.sold) != want {
            return Err(format!(
                "{sku}: sold {} but placed orders hold {want}",
                level.sold
            ));
        }
    }
    for sku in want_sold.keys() {
        if !levels.contains_key(sku) {
            return Err(format!("{sku}: placed orders sold it, no shard stocks it"));
        }
    }
    for (shard, storage) in &w.shards {
        for (id, hold) in storage.holds() {
            let committed = hold.state == HoldState::Committed;
            if committed != placed.contains_key(id) && !hold.lines.is_empty() {
                return Err(format!(
                    "shard {}: order {id} is {:?} but its record says {}",
                    shard.index(),
                    hold.state,
                    outcome_name(w.records.get(id).and_then(|r| r.outcome.as_ref()))
                ));
            }
        }
    }

    // (2) What a client was told is what the log keeps, and placed orders reached the origin
    // exactly once by id, as placed.
    for order in orders {
        let Some(answered) = &order.answered else {
            continue;
        };
        let recorded = w.records.get(&order.id).and_then(|r| r.outcome.as_ref());
        if recorded != Some(answered) {
            return Err(format!(
                "{}: the client was answered {} but the log says {}",
                order.id,
                outcome_name(Some(answered)),
                outcome_name(recorded)
            ));
        }
    }
    for (id, order) in &placed {
        let Some(received) = w.sink.get(*id) else {
            return Err(format!("{id}: placed but never reached the origin"));
        };
        if received.iter().any(|r| r != *order) {
            return Err(format!(
                "{id}: the origin received a different order than the log's"
            ));
        }
    }
    for id in w.sink.keys() {
        if !placed.contains_key(id) {
            return Err(format!(
                "{id}: the origin received an order that was not placed"
            ));
        }
    }

    // (3) Money: a charge stands exactly when its order was placed.
    let charges = gateway.charges();
    for (id, charge) in &charges {
        match placed.get(id) {
            Some(order) if charge.refunded => {
                return Err(format!(
                    "{id}: placed, but its charge {} was refunded",
                    order.charge_id
                ))
            }
            Some(order) if order.charge_id != charge.id || order.total != charge.amount => {
                return Err(format!("{id}: the order and its charge disagree"))
            }
            Some(_) => {}
            None if !charge.refunded => {
                return Err(format!(
                    "{id}: charged but not placed ({}), and not refunded",
                    outcome_name(w.records.get(id).and_then(|r| r.outcome.as_ref()))
                ))
            }
            None => {}
        }
    }
    for id in placed.keys() {
        if !charges.contains_key(*id) {
            return Err(format!("{id}: placed without a charge"));
        }
    }

    // (4) After the TTL and every shard's alarm, nothing is held (checked again after expiry,
    // which must find nothing to release).
    w.now_ms += CHECKOUT_HOLD_TTL_MS + 1;
    let shards: Vec<SkuShard> = w.shards.keys().copied().collect();
    for shard in shards {
        for round in 0..=EXPIRE_ROUNDS_MAX {
            if round == EXPIRE_ROUNDS_MAX {
                return Err(format!("shard {}: Expire never ran dry", shard.index()));
            }
            match w.deliver(shard, ShardRequest::Expire) {
                Ok(ShardReply::Expired { released: 0 }) => break,
                Ok(ShardReply::Expired { .. }) => continue,
                other => {
                    return Err(format!(
                        "shard {}: Expire answered {other:?}",
                        shard.index()
                    ))
                }
            }
        }
    }
    for (sku, level) in w.levels() {
        if level.held != 0 {
            return Err(format!("{sku}: {} units held after expiry", level.held));
        }
    }
    w.check_shards();
    match w.violation.take() {
        Some(message) => Err(message),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Running seeds

struct Failure {
    seed: u64,
    message: String,
    trace: Vec<String>,
}

impl Failure {
    fn report(&self) -> String {
        let mut out = format!(
            "simulation seed {} failed: {}\nreplay: SIM_SEED={} cargo test -p edge-core --test simulation\nlast steps:\n",
            self.seed, self.message, self.seed
        );
        for line in &self.trace {
            let _ = writeln!(out, "  {line}");
        }
        out
    }
}

fn run_seed(seed: u64, mutant: Mutant) -> Result<Stats, Failure> {
    let world = Mutex::new(World::new(seed, mutant));
    let net = SimNet { world: &world };
    let log = SimLog { world: &world };
    let sink = SimSink { world: &world };
    let gateway = SimGateway {
        world: &world,
        inner: TestGateway::default(),
    };
    let clock = SimClock { world: &world };
    let checkout = Checkout {
        stock: &net,
        payments: &gateway,
        log: &log,
        clock: &clock,
    };
    let mut driver = Driver {
        world: &world,
        checkout: &checkout,
        sink: &sink,
        skus: Vec::new(),
        orders: Vec::new(),
        tasks: Vec::new(),
    };
    driver.setup();
    let mut result = driver.run().and_then(|()| driver.settle());
    let Driver { orders, tasks, .. } = driver;
    // Futures hold the world's lock for nothing, but drop them before taking it for good.
    drop(tasks);
    let mut w = lock(&world);
    if result.is_ok() {
        result = check_settled(&mut w, &orders, &gateway.inner);
    }
    match result {
        Ok(()) => Ok(w.stats),
        Err(message) => Err(Failure {
            seed,
            message,
            trace: w.trace.iter().cloned().collect(),
        }),
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let raw = std::env::var(name).ok()?;
    Some(
        raw.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {raw:?}")),
    )
}

#[test]
fn checkout_survives_faults_for_every_seed() {
    let seeds: Vec<u64> = match (env_u64("SIM_SEED"), env_u64("SIM_SEEDS")) {
        (Some(seed), _) => vec![seed],
        (None, count) => (0..count.unwrap_or(SEEDS_DEFAULT)).collect(),
    };
    let replay = seeds.len() == 1;
    let started = Instant::now();
    let mut total = Stats::default();
    for &seed in &seeds {
        match run_seed(seed, Mutant::None) {
            Ok(stats) => total.add(&stats),
            Err(failure) => panic!("{}", failure.report()),
        }
    }
    eprintln!(
        "simulated {} seeds in {:.1} s: {:?}",
        seeds.len(),
        started.elapsed().as_secs_f64(),
        total.named()
    );
    if !replay && seeds.len() as u64 >= SEEDS_DEFAULT {
        // A simulation that never injects a fault proves nothing: every kind must have happened.
        for (name, count) in total.named() {
            assert!(count > 0, "no seed exercised {name}: {:?}", total.named());
        }
    }
}

#[test]
fn the_checks_catch_broken_components() {
    for (mutant, symptom) in [
        (Mutant::ReserveTwice, "hold records say"),
        (Mutant::RefundIgnored, "not refunded"),
        (Mutant::LogForgets, ""),
        (Mutant::Unserialized, ""),
    ] {
        let caught = (0..MUTANT_SEEDS_MAX).find_map(|seed| run_seed(seed, mutant).err());
        let Some(failure) = caught else {
            panic!("{mutant:?} went unnoticed for {MUTANT_SEEDS_MAX} seeds");
        };
        assert!(
            failure.message.contains(symptom),
            "{mutant:?} was caught for the wrong reason:\n{}",
            failure.report()
        );
        eprintln!(
            "{mutant:?} caught at seed {}: {}",
            failure.seed, failure.message
        );
    }
}
