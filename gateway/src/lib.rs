//! The keyfed gateway: stateless replicas behind one public Keystone v3
//! endpoint that route each request to the shard owning its tenant, merge a
//! user's memberships across shards into one token, and validate tokens
//! offline.
//!
//! Not built yet: this crate holds the place in the workspace so that the
//! dependency direction (`gateway → shared`, never `gateway ↔ shard`) is
//! fixed from the start. The pieces it will assemble — the placement ring
//! (`keyfed_shared::ring`), the directory on NATS (`keyfed-directory`) and the
//! token format (`keyfed_shared::token`) — are being built in their own
//! crates and modules first.
