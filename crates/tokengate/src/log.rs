//! Logs and traces, on `tracing`: events become one JSON object per line on stderr
//! (`tracing-subscriber`'s JSON format, so they can be shipped as they are), and, when
//! `[telemetry] otlp_endpoint` is set, the request and phase spans are exported over
//! OTLP/HTTP (`tracing-opentelemetry`). Nothing secret (tokens, secrets, keys) is ever
//! recorded. docs/operations.md lists the fields.
//!
//! Lines go through `tracing-appender`'s non-blocking writer: a request formats its line and
//! hands it to a writer thread, which writes whatever has gathered with one system call (a
//! buffered stderr, flushed each time the queue runs dry). When stderr does not keep up and
//! [`QUEUED_LINES`] are waiting, further lines are dropped and counted ([`dropped`], and the
//! `tokengate_log_lines_dropped_total` metric); requests never wait for the log.

use std::io::BufWriter;
use std::sync::{Mutex, OnceLock};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

use crate::config::Telemetry;

/// The target of the request and phase spans: traced, never logged.
pub const TRACE_TARGET: &str = gateway::trace::TARGET;
/// The target of access-log events.
pub const ACCESS_TARGET: &str = "tokengate::access";

/// Lines waiting for the writer thread, at most (about 10 MB of access lines).
const QUEUED_LINES: usize = 32 * 1024;

/// Counts the lines the writer dropped; set once logging starts.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// What must outlive the serving: the log writer's thread and the span exporter. Dropping it
/// writes the lines still queued and exports the spans still batched.
pub struct Guard {
    writer: Mutex<Option<WorkerGuard>>,
    tracer: Option<SdkTracerProvider>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer.take() {
            // A collector that is down must not stop the process from exiting: the export
            // error is all there is to say, and there is no log left to say it in.
            let _ = provider.shutdown();
        }
        drop(self.writer.lock().unwrap_or_else(|e| e.into_inner()).take());
    }
}

/// Why logging or tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The OTLP exporter could not be built (its HTTP client).
    #[error("telemetry.otlp_endpoint: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// Starts logging (and tracing, when configured) for this process. Call it outside the async
/// runtime: the OTLP exporter's blocking HTTP client runs its own. A second call (tests that
/// start several servers in one process) keeps the first subscriber.
pub fn init(telemetry: &Telemetry) -> Result<Guard, InitError> {
    let (writer, worker) = NonBlockingBuilder::default()
        .buffered_lines_limit(QUEUED_LINES)
        .lossy(true)
        .thread_name("log-writer")
        .finish(BufWriter::with_capacity(64 * 1024, std::io::stderr()));
    let _ = DROPPED.set(writer.error_counter());
    let logs = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(writer)
        .with_filter(log_filter());
    let tracer = match &telemetry.otlp_endpoint {
        Some(endpoint) => Some(tracer_provider(endpoint.get_ref().as_str(), telemetry)?),
        None => None,
    };
    let spans = tracer.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("tokengate"))
            .with_filter(Targets::new().with_target(TRACE_TARGET, LevelFilter::INFO))
    });
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init();
    Ok(Guard {
        writer: Mutex::new(Some(worker)),
        tracer,
    })
}

/// Ours at `info`, other crates' at `warn` (hyper, sqlx and the like are chatty below it);
/// spans are for tracing only.
fn log_filter() -> Targets {
    Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("tokengate", LevelFilter::INFO)
        .with_target("gateway", LevelFilter::INFO)
        .with_target("oauth", LevelFilter::INFO)
        .with_target("store", LevelFilter::INFO)
        .with_target(TRACE_TARGET, LevelFilter::OFF)
}

/// Spans batched and exported over OTLP/HTTP with protobuf bodies (the collector's port 4318),
/// sampled at `sample_ratio` unless the client's `traceparent` already decided.
fn tracer_provider(endpoint: &str, telemetry: &Telemetry) -> Result<SdkTracerProvider, InitError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(traces_url(endpoint))
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(telemetry.service_name.clone())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            telemetry.sample_ratio,
        ))))
        .with_resource(resource)
        .build())
}

/// The traces URL for a collector's base URL: `/v1/traces` appended, as the OTLP
/// specification does for `OTEL_EXPORTER_OTLP_ENDPOINT`, unless the path already names it.
fn traces_url(endpoint: &str) -> String {
    if endpoint.trim_end_matches('/').ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    }
}

/// Lines dropped since logging started because stderr did not keep up.
pub fn dropped() -> u64 {
    DROPPED
        .get()
        .map_or(0, |counter| counter.dropped_lines() as u64)
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(
            traces_url("http://collector:4318"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://otel.example/v1/traces"),
            "https://otel.example/v1/traces"
        );
    }
}
