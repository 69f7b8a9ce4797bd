//! placeholder
pub mod gateway;
pub mod pg;
pub mod python;
pub mod shard;
