//! Reused buffers for bytes that records point into: response frames and
//! decompressed batches.
//!
//! A fetch response is read into a buffer, and a compressed batch decompressed into
//! another; the records handed to the caller are slices of them. When the last
//! slice is dropped, the buffer comes back to its pool instead of going to the
//! allocator, so the next response or batch lands in memory that is already
//! mapped. Without this, the allocator hands large buffers back to the kernel
//! and every new one costs a page fault per 4 KiB.

use std::sync::{Arc, Mutex, Weak};

use crate::sync::lock;
use bytes::Bytes;

/// A bounded set of spare buffers.
#[derive(Debug)]
pub(crate) struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    /// Buffers kept at most.
    keep: usize,
    /// Buffers smaller than this are left to the allocator.
    min: usize,
    /// Buffers larger than this are freed rather than kept.
    max: usize,
}

impl BufferPool {
    /// A pool keeping up to `keep` buffers of `min..=max` bytes of capacity.
    pub fn new(keep: usize, min: usize, max: usize) -> Self {
        BufferPool {
            free: Mutex::new(Vec::new()),
            keep,
            min,
            max,
        }
    }

    /// An empty buffer with room for `size` bytes, reused when one is free.
    pub fn take(&self, size: usize) -> Vec<u8> {
        if size < self.min {
            return Vec::with_capacity(size);
        }
        let reused = {
            let mut free = lock(&self.free);
            match free.iter().position(|b| b.capacity() >= size) {
                Some(i) => Some(free.swap_remove(i)),
                None => free.pop(),
            }
        };
        let mut buf = reused.unwrap_or_default();
        buf.reserve_exact(size);
        buf
    }

    /// `buf` as [`Bytes`]; a large buffer returns to the pool once every `Bytes`
    /// pointing into it is gone.
    pub fn freeze(self: &Arc<Self>, buf: Vec<u8>) -> Bytes {
        if !(self.min..=self.max).contains(&buf.capacity()) {
            return Bytes::from(buf);
        }
        Bytes::from_owner(Pooled {
            buf,
            pool: Arc::downgrade(self),
        })
    }

    fn give_back(&self, mut buf: Vec<u8>) {
        buf.clear();
        let mut free = lock(&self.free);
        if free.len() < self.keep {
            free.push(buf);
        }
    }
}

/// A pooled buffer lent out as [`Bytes`].
struct Pooled {
    buf: Vec<u8>,
    pool: Weak<BufferPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.give_back(std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: usize = 4;
    const MIN_POOLED: usize = 64 * 1024;

    fn pool() -> Arc<BufferPool> {
        Arc::new(BufferPool::new(KEEP, MIN_POOLED, 1 << 20))
    }

    #[test]
    fn a_large_buffer_comes_back_when_its_last_slice_is_dropped() {
        let pool = pool();
        let mut buf = pool.take(MIN_POOLED);
        buf.extend(std::iter::repeat_n(7u8, MIN_POOLED));
        let address = buf.as_ptr();
        let whole = pool.freeze(buf);
        let slice = whole.slice(10..20);
        drop(whole);
        assert!(
            pool.free.lock().unwrap().is_empty(),
            "a slice still holds it"
        );
        assert_eq!(&slice[..], &[7u8; 10]);
        drop(slice);
        let again = pool.take(MIN_POOLED / 2 + MIN_POOLED / 2);
        assert_eq!(again.as_ptr(), address, "the same memory is reused");
        assert!(again.is_empty());
    }

    #[test]
    fn small_buffers_are_not_pooled_and_the_pool_stays_bounded() {
        let pool = pool();
        drop(pool.freeze(pool.take(100)));
        assert!(pool.free.lock().unwrap().is_empty());
        let held: Vec<Bytes> = (0..KEEP + 3)
            .map(|_| pool.freeze(pool.take(MIN_POOLED)))
            .collect();
        drop(held);
        assert_eq!(pool.free.lock().unwrap().len(), KEEP);
    }

    #[test]
    fn buffers_above_the_largest_kept_are_freed() {
        let pool = pool();
        drop(pool.freeze(pool.take((1 << 20) + 1)));
        assert!(pool.free.lock().unwrap().is_empty());
    }

    #[test]
    fn a_buffer_outliving_its_pool_is_simply_freed() {
        let pool = pool();
        let bytes = pool.freeze(pool.take(MIN_POOLED));
        drop(pool);
        drop(bytes);
    }
}
