//! Poison-tolerant lock helpers.
//!
//! A lock is poisoned when a thread panicked while holding it. The client's
//! shared states (connection maps, metadata caches, group and producer state)
//! are updated in single steps that leave them usable, so the next holder takes
//! the data as it is rather than turning one panic into a panic in every task.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `m`, recovering the data of a poisoned lock.
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Read-locks `l`, recovering the data of a poisoned lock.
pub(crate) fn read<T: ?Sized>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

/// Write-locks `l`, recovering the data of a poisoned lock.
pub(crate) fn write<T: ?Sized>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}
