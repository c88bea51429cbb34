//! Keyed state: key groups, the state codec, and in-memory state tables organised
//! by key group with a snapshot/restore interface.

pub mod codec;
pub mod key_group;
pub mod keyed;
