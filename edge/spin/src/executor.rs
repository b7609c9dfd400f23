//! The executor Leptos spawns on, inside a Spin component.
//!
//! Leptos renders with spawned tasks (resources, the streaming renderer) through `any_spawner`.
//! On Cloudflare those go to the wasm-bindgen executor; on wasip2 there is none, and Spin's own
//! `spin_executor::run` drives exactly one future. So spawned tasks queue here, and [`drive`]
//! wraps the request's future: every time Spin polls it, it polls the request and every queued
//! task, round after round while any of them was woken, and reports `Pending` only when all are
//! waiting on WASI I/O (whose pollables Spin's loop then waits for; their wakers land here).
//!
//! One instance serves one request and has one thread, so the queue is a thread-local and a
//! single "woken" flag stands in for per-task wakers: polling every task each round is cheap at
//! the handful of tasks a page spawns.

use any_spawner::{CustomExecutor, PinnedFuture, PinnedLocalFuture};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

type Task = Pin<Box<dyn Future<Output = ()>>>;

thread_local! {
    /// Tasks spawned and not finished, in spawn order.
    static TASKS: RefCell<Vec<Task>> = const { RefCell::new(Vec::new()) };
}

/// Set by every waker handed out here (and by spawning): some future can make progress.
static WOKEN: AtomicBool = AtomicBool::new(false);

/// Rounds one poll may run while tasks keep waking each other; more means a livelock (a bug).
const ROUNDS_PER_POLL_MAX: u32 = 100_000;
/// Tasks alive at once; a page spawns a few dozen at most.
const TASKS_MAX: usize = 10_000;

struct WokenFlag;

impl Wake for WokenFlag {
    fn wake(self: Arc<Self>) {
        WOKEN.store(true, Ordering::Release);
    }
}

/// The `any_spawner` executor of this component (both kinds of spawn queue here).
struct InstanceExecutor;

fn enqueue(task: Task) {
    TASKS.with(|tasks| {
        let mut tasks = tasks.borrow_mut();
        assert!(
            tasks.len() < TASKS_MAX,
            "more than {TASKS_MAX} spawned tasks alive"
        );
        tasks.push(task);
    });
    WOKEN.store(true, Ordering::Release);
}

impl CustomExecutor for InstanceExecutor {
    fn spawn(&self, fut: PinnedFuture<()>) {
        enqueue(fut);
    }

    fn spawn_local(&self, fut: PinnedLocalFuture<()>) {
        enqueue(fut);
    }

    fn poll_local(&self) {}
}

/// Installs the executor (once per instance; later calls are no-ops).
pub fn init() {
    let _ = any_spawner::Executor::init_custom_executor(InstanceExecutor);
}

/// Runs `main` together with every task spawned while it runs (see the module doc). Tasks still
/// pending when `main` is done are dropped with the instance.
pub fn drive<F: Future>(main: F) -> impl Future<Output = F::Output> {
    let mut main = Box::pin(main);
    let waker = Waker::from(Arc::new(WokenFlag));
    std::future::poll_fn(move |_spin_cx| {
        let mut cx = Context::from_waker(&waker);
        for _ in 0..ROUNDS_PER_POLL_MAX {
            WOKEN.store(false, Ordering::Release);
            if let Poll::Ready(output) = main.as_mut().poll(&mut cx) {
                return Poll::Ready(output);
            }
            let mut running = TASKS.with(|tasks| std::mem::take(&mut *tasks.borrow_mut()));
            running.retain_mut(|task| task.as_mut().poll(&mut cx).is_pending());
            TASKS.with(|tasks| {
                let mut tasks = tasks.borrow_mut();
                // Tasks spawned during this round go after the older ones.
                let spawned = std::mem::replace(&mut *tasks, running);
                tasks.extend(spawned);
            });
            if !WOKEN.load(Ordering::Acquire) {
                return Poll::Pending;
            }
        }
        panic!("spawned tasks kept waking each other for {ROUNDS_PER_POLL_MAX} rounds");
    })
}
