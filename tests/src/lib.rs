//! placeholder
pub mod pg;
pub mod python;
pub mod shard;
