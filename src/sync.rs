//! Locking helpers shared by the background queue and the sandbox.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, going on with the data if a panicking holder poisoned it: every value behind
/// these mutexes is valid after any single update.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
