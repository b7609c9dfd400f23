//! `Send` for what a wasip2 component never moves between threads.
//!
//! edge-core's store traits return `Send` futures (axum handlers need them). A Spin component
//! has one thread, but the SDK's outbound-HTTP futures and key-value handles are not `Send`
//! (they hold `Rc`s and WASI resources). These wrappers assert what the target guarantees.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A value (or future) asserted `Send` and `Sync`: sound only because `wasm32-wasip2` without
/// threads has one thread, on which everything is created and used.
pub struct AssumeSend<T>(pub T);

// SAFETY: the component runs on wasm32-wasip2 with no threads (checked below): the value is
// never reachable from a second thread.
unsafe impl<T> Send for AssumeSend<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for AssumeSend<T> {}

#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
compile_error!("AssumeSend is only sound without wasm threads");

impl<F: Future> Future for AssumeSend<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: structural pinning of the only field; it is never moved out.
        unsafe { self.map_unchecked_mut(|s| &mut s.0) }.poll(cx)
    }
}
