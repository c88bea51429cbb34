//! The status server of `strom run` (stub in this worktree: only the page's assets).

pub mod page;
