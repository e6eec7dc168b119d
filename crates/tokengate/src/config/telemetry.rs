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
    /// Share of traces recorded, 0.0 to 1.0, decided by trace id; also the sampled flag
    /// sent upstream when nothing is exported.
    #[serde(default = "one", deserialize_with = "ratio")]
    pub sample_ratio: f64,
    /// Whether a client's `traceparent` sampled flag decides for the traces it continues
    /// (for a tokengate behind another traced proxy); by default `sample_ratio` decides.
    #[serde(default)]
    pub trust_client_sampling: bool,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            otlp_endpoint: None,
            service_name: default_service_name(),
            sample_ratio: one(),
            trust_client_sampling: false,
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
    let u = url.get_ref();
    if !matches!(u.scheme(), "http" | "https") {
        return Err(D::Error::custom(format!(
            "otlp_endpoint must be an http or https URL (OTLP over HTTP), not {}:",
            u.scheme()
        )));
    }
    // The path gets `/v1/traces`; credentials would be printed by `config check` and logged.
    if u.query().is_some()
        || u.fragment().is_some()
        || !u.username().is_empty()
        || u.password().is_some()
    {
        return Err(D::Error::custom(
            "otlp_endpoint takes no query, fragment, user name or password",
        ));
    }
    Ok(Some(url))
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
