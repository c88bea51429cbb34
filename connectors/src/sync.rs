//! A poison-tolerant mutex lock: the connectors' shared specs and caches are
//! updated in single steps, so a holder that panicked leaves them usable.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering the data of a poisoned lock.
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
