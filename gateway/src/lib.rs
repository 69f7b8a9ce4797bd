//! The keyfed gateway: stateless replicas behind one public Keystone v3
//! endpoint that route each request to the shard owning its tenant, merge a
//! user's memberships across shards into one token, and validate tokens
//! offline.
//!
//! Not built yet. What it will assemble exists: the federation view and the
//! offline validator (`keyfed-federation`), the directory
//! (`keyfed-directory`), the placement ring and the token format
//! (`keyfed-shared`). Dependency direction: `gateway → {federation, shared}`,
//! never `gateway ↔ shard`.
