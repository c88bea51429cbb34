//! Sources and sinks: the traits connectors implement, plus the test and demo
//! implementations (vec, generator, collecting sink).

pub mod collect;
pub mod generator;
pub mod sink;
pub mod source;
pub mod vec_source;
