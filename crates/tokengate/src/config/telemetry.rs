//! `[telemetry]`: exporting traces over OTLP. Off unless `otlp_endpoint` is set; read at
//! start (a reload does not change it).

use serde::de::{Deserializer, Error as _};
use serde::Deserialize;
use toml::Spanned;
use url::Url;

/// Where and how spans are exported.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    /// The OTLP/HTTP collector's base URL (`http://collector:4318`); `/v1/traces` is
    /// appended unless the path already ends with it. None: no spans are exported.
    #[serde(default, deserialize_with = "collector_url")]
    pub otlp_endpoint: Option<Spanned<Url>>,
    /// `service.name` of the exported spans.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Share of new traces recorded, 0.0 to 1.0; a client's `traceparent` decides for the
    /// traces it continues (its sampled flag).
    #[serde(default = "one", deserialize_with = "ratio")]
    pub sample_ratio: f64,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            otlp_endpoint: None,
            service_name: default_service_name(),
            sample_ratio: one(),
        }
    }
}

fn default_service_name() -> String {
    "tokengate".into()
}

fn one() -> f64 {
    1.0
}

fn collector_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Spanned<Url>>, D::Error> {
    let url = Spanned::<Url>::deserialize(d)?;
    match url.get_ref().scheme() {
        "http" | "https" => Ok(Some(url)),
        other => Err(D::Error::custom(format!(
            "otlp_endpoint must be an http or https URL (OTLP over HTTP), not {other}:"
        ))),
    }
}

fn ratio<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let value = f64::deserialize(d)?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(D::Error::custom(format!(
            "sample_ratio must be between 0.0 and 1.0, not {value}"
        )))
    }
}
