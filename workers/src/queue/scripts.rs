//! The queue's Lua scripts. Each is `common.lua` followed by its own body, so the helpers that
//! keep the invariants (a tenant is in a kind's ring iff it has ready jobs of that kind; the
//! running count of a tenant equals its leased jobs) exist once.
//!
//! Scripts are invoked by SHA; after a Redis restart the server has forgotten them and
//! `invoke_async` reloads them on NOSCRIPT, so no caller has to care.

use std::sync::LazyLock;

use redis::Script;

const COMMON: &str = include_str!("lua/common.lua");

fn build(body: &str) -> Script {
    Script::new(&format!("{COMMON}\n{body}"))
}

/// The queue's scripts, compiled once per process.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub push: Script,
    pub fetch: Script,
    pub ack: Script,
    pub reap: Script,
    pub renew: Script,
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    push: build(include_str!("lua/push.lua")),
    fetch: build(include_str!("lua/fetch.lua")),
    ack: build(include_str!("lua/ack.lua")),
    reap: build(include_str!("lua/reap.lua")),
    renew: build(include_str!("lua/renew.lua")),
});
