//! `[routes.cache]` and `[server.cache]`: the response cache as written, and its checks
//! (identity partitions only behind token rules, Redis storage only with `[redis]`, GET
//! and HEAD only, `ttl` within `max_ttl`, `max_body` within `max_memory` for memory storage).

use std::time::Duration as StdDuration;

use gateway::response_cache::{CacheSettings, Partition};
use serde::Deserialize;
use serde_json::{json, Value};
use toml::Spanned;

use super::values::{ByteSize, Method};
use super::{Duration, Failure};

const DEFAULT_TTL: u64 = 30;
const DEFAULT_MAX_TTL: u64 = 600;
/// The longest `max_ttl`: a day (an entry kept longer outlives most deployments of what it
/// answers for).
const LONGEST_TTL: u64 = 86_400;
const DEFAULT_MAX_BODY: u64 = 1 << 20;
/// The largest `max_body`: a miss being stored holds its body in memory until it ends.
const LARGEST_BODY: u64 = 64 << 20;

/// `[server.cache]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerCache {
    /// Memory of all memory-stored responses together (default 256MB); the least recently
    /// used go first.
    #[serde(default = "default_max_memory")]
    pub max_memory: ByteSize,
}

impl Default for ServerCache {
    fn default() -> Self {
        ServerCache {
            max_memory: default_max_memory(),
        }
    }
}

fn default_max_memory() -> ByteSize {
    ByteSize(256 << 20)
}

/// `[routes.cache]` as written; every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Freshness when the upstream gives none (default 30s).
    pub ttl: Option<Spanned<Duration>>,
    /// Most freshness an entry gets, whatever the upstream says (default 10m, at most 1d).
    pub max_ttl: Option<Spanned<Duration>>,
    /// `subject` (default), `client` or `shared`.
    pub partition: Option<Spanned<String>>,
    /// Methods whose responses are cached (default GET and HEAD; no others).
    pub methods: Option<Spanned<Vec<Method>>>,
    /// Largest body stored (default 1MB); larger responses pass through, streamed.
    pub max_body: Option<Spanned<ByteSize>>,
    /// `memory` (default) or `redis`.
    pub storage: Option<Spanned<String>>,
}

/// Where a route's entries go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    /// This node's memory.
    Memory,
    /// Redis (`[redis]`), shared by the nodes.
    Redis,
}

/// A route's cache, checked.
#[derive(Debug, Clone)]
pub struct CacheSpec {
    /// The settings the gateway's cache takes.
    pub settings: CacheSettings,
    /// Where its entries go.
    pub storage: StorageKind,
}

impl CacheSpec {
    /// The policy as `config check` shows it.
    pub fn effective(&self) -> Value {
        let s = &self.settings;
        json!({
            "ttl": format!("{}s", s.ttl.as_secs()),
            "max_ttl": format!("{}s", s.max_ttl.as_secs()),
            "partition": s.partition.as_str(),
            "methods": s.methods.iter().map(http::Method::as_str).collect::<Vec<_>>(),
            "max_body": s.max_body,
            "storage": match self.storage {
                StorageKind::Memory => "memory",
                StorageKind::Redis => "redis",
            },
        })
    }
}

/// What the checks of a route's cache need to know about the rest of the configuration.
pub(super) struct Around {
    /// The route has token rules.
    pub has_token_rules: bool,
    /// `[redis]` is configured.
    pub has_redis: bool,
    /// `[server.cache] max_memory`, bytes.
    pub max_memory: u64,
}

/// The route's cache, checked; `what` names it in messages.
pub(super) fn spec(
    section: &Spanned<CacheConfig>,
    what: &str,
    around: &Around,
) -> Result<CacheSpec, Failure> {
    let written = section.get_ref();
    let seconds = |value: &Option<Spanned<Duration>>, default: u64, field: &str| match value {
        None => Ok(default),
        Some(v) if v.get_ref().0 == 0 || v.get_ref().0 > LONGEST_TTL => Err((
            v.span(),
            format!("{what}: {field} must be between 1s and 1d"),
        )),
        Some(v) => Ok(v.get_ref().0),
    };
    let ttl = seconds(&written.ttl, DEFAULT_TTL, "ttl")?;
    let max_ttl = seconds(&written.max_ttl, DEFAULT_MAX_TTL, "max_ttl")?;
    if ttl > max_ttl {
        let span = written
            .ttl
            .as_ref()
            .or(written.max_ttl.as_ref())
            .map_or_else(|| section.span(), Spanned::span);
        return Err((
            span,
            format!("{what}: ttl ({ttl}s) is longer than max_ttl ({max_ttl}s)"),
        ));
    }
    let partition = partition(section, what, around)?;
    let methods = methods(written, what)?;
    let redis = written
        .storage
        .as_ref()
        .is_some_and(|s| s.get_ref() == "redis");
    let max_body = match &written.max_body {
        Some(m) if m.get_ref().0 > LARGEST_BODY => {
            return Err((
                m.span(),
                format!("{what}: max_body is at most 64MB (each miss being stored holds its body in memory)"),
            ))
        }
        Some(m) if m.get_ref().0 > around.max_memory && !redis => {
            return Err((
                m.span(),
                format!("{what}: max_body is larger than [server.cache] max_memory"),
            ))
        }
        Some(m) => m.get_ref().0,
        None if redis => DEFAULT_MAX_BODY,
        None => DEFAULT_MAX_BODY.min(around.max_memory),
    };
    let storage = match &written.storage {
        None => StorageKind::Memory,
        Some(s) => match s.get_ref().as_str() {
            "memory" => StorageKind::Memory,
            "redis" if around.has_redis => StorageKind::Redis,
            "redis" => {
                return Err((
                    s.span(),
                    format!("{what}: storage = \"redis\" needs a [redis] section"),
                ))
            }
            other => {
                return Err((
                    s.span(),
                    format!("{what}: storage {other:?}: use \"memory\" or \"redis\""),
                ))
            }
        },
    };
    Ok(CacheSpec {
        settings: CacheSettings {
            ttl: StdDuration::from_secs(ttl),
            max_ttl: StdDuration::from_secs(max_ttl),
            partition,
            methods,
            max_body,
        },
        storage,
    })
}

/// `partition`: an identity needs a verified token to come from.
fn partition(
    section: &Spanned<CacheConfig>,
    what: &str,
    around: &Around,
) -> Result<Partition, Failure> {
    let (parsed, span) = match &section.get_ref().partition {
        None => (Partition::Subject, section.span()),
        Some(p) => (
            Partition::parse(p.get_ref()).ok_or_else(|| {
                (
                    p.span(),
                    format!(
                        "{what}: partition {:?}: use \"subject\", \"client\" or \"shared\"",
                        p.get_ref()
                    ),
                )
            })?,
            p.span(),
        ),
    };
    if parsed != Partition::Shared && !around.has_token_rules {
        return Err((
            span,
            format!(
                "{what}: the route has no token rules, so there is no subject or client to \
                 partition by: set partition = \"shared\" (only public responses are stored)"
            ),
        ));
    }
    Ok(parsed)
}

/// `methods`: GET and HEAD, the methods whose responses RFC 9111 lets a cache reuse
/// without more than this cache does.
fn methods(written: &CacheConfig, what: &str) -> Result<Vec<http::Method>, Failure> {
    let Some(list) = &written.methods else {
        return Ok(vec![http::Method::GET, http::Method::HEAD]);
    };
    if list.get_ref().is_empty() {
        return Err((
            list.span(),
            format!("{what}: methods is empty: leave the section out for no cache"),
        ));
    }
    let mut out = Vec::new();
    for m in list.get_ref() {
        if m.0 != http::Method::GET && m.0 != http::Method::HEAD {
            return Err((
                list.span(),
                format!(
                    "{what}: methods: only GET and HEAD responses are cached, not {}",
                    m.0
                ),
            ));
        }
        if !out.contains(&m.0) {
            out.push(m.0.clone());
        }
    }
    Ok(out)
}
