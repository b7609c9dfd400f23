//! End-to-end checks of promotions (registered in `e2e.rs` through [`checks`]).

use super::*;

pub(crate) fn checks() -> Vec<(&'static str, Check)> {
    checks![]
}
