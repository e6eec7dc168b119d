//! `[audit]`: the tamper-evident audit log's checkpoints and its copy to a SIEM.

use serde::{Deserialize, Deserializer};
use std::path::PathBuf;

use super::Duration;

/// `[audit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// How often a node signs a checkpoint when events were added (and once at shutdown).
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: Duration,
    /// The log's name (its checkpoints' origin line and its keys' name) when a new log is
    /// created; by default the issuer without its scheme, then `/audit`. A log keeps the
    /// name it was created with.
    #[serde(default)]
    pub origin: Option<String>,
    /// Where every event and checkpoint is copied as JSON lines (the export's format):
    /// `"stdout"` or a file path (appended to, reopened on SIGHUP for log rotation).
    #[serde(default, deserialize_with = "sink")]
    pub sink: Option<Sink>,
}

impl Default for AuditSection {
    fn default() -> Self {
        AuditSection {
            checkpoint_every: default_checkpoint_every(),
            origin: None,
            sink: None,
        }
    }
}

fn default_checkpoint_every() -> Duration {
    Duration(10)
}

/// Where `[audit] sink` copies the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// The process's standard output.
    Stdout,
    /// A file, appended to.
    File(PathBuf),
}

fn sink<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Sink>, D::Error> {
    let text = String::deserialize(d)?;
    match text.as_str() {
        "" => Err(serde::de::Error::custom(
            "audit.sink is \"stdout\" or a file path",
        )),
        "stdout" => Ok(Some(Sink::Stdout)),
        path => Ok(Some(Sink::File(PathBuf::from(path)))),
    }
}

impl AuditSection {
    /// Checkpoints between 1 s and 1 h apart; an origin a signed note can carry.
    pub(super) fn validate(&self) -> Result<(), String> {
        if !(1..=3600).contains(&self.checkpoint_every.0) {
            return Err("audit.checkpoint_every must be between 1s and 1h".into());
        }
        if let Some(origin) = &self.origin {
            if origin.is_empty() || origin.contains('+') || origin.chars().any(char::is_whitespace)
            {
                return Err("audit.origin must be non-empty, without spaces or '+'".into());
            }
        }
        Ok(())
    }
}
