//! Logs and traces, on `tracing`: events become one JSON object per line on stderr
//! (`tracing-subscriber`'s JSON format, so they can be shipped as they are), and, when
//! `[telemetry] otlp_endpoint` is set, the request and phase spans are exported over
//! OTLP/HTTP (`tracing-opentelemetry`). Nothing secret (tokens, secrets, keys) is ever
//! recorded. docs/operations.md lists the fields.
//!
//! Lines go through `tracing-appender`'s non-blocking writer: a request formats its line and
//! hands it to a writer thread, which writes whatever has gathered with one system call
//! ([`Gathered`]). When stderr does not keep up and [`QUEUED_LINES`] are waiting, further
//! lines are dropped and counted ([`dropped`], and the `tokengate_log_lines_dropped_total`
//! metric); requests never wait for the log.

use std::io::BufWriter;
use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use std::io::Write as _;

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter as _;
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

/// How long the writer thread lets lines gather after each write: the most a line waits.
const GATHER: std::time::Duration = std::time::Duration::from_millis(20);

/// stderr as the writer thread sees it: buffered, and resting [`GATHER`] after each flush
/// (which tracing-appender calls whenever its queue runs dry). Without the rest, a gateway
/// at a few thousand requests a second would wake the parked writer thread for nearly every
/// line: a futex wake on the request's thread, then a context switch and a `write` on the
/// same cores. While it rests, senders only enqueue, and the lines that gathered go out in
/// one `write`. (Not measured apart from the other changes of docs/benchmarks.md's issue #12
/// runs; the hand-written writer it replaces did the same.)
struct Gathered(BufWriter<std::io::Stderr>);

impl std::io::Write for Gathered {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.0.write(line)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let written = self.0.flush();
        std::thread::sleep(GATHER);
        written
    }
}

/// Counts the lines the writer dropped; set once logging starts.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// The log writer, for the lines written without a `tracing` event ([`access_line`]).
static WRITER: OnceLock<NonBlocking> = OnceLock::new();

/// Writes one line, `line` serialised as a JSON object, through the same writer as the
/// `tracing` events; nothing before logging starts (the in-process tests).
pub fn access_line(line: &impl serde::Serialize) {
    let Some(writer) = WRITER.get() else { return };
    let mut text = Vec::with_capacity(384);
    if serde_json::to_writer(&mut text, line).is_ok() {
        text.push(b'\n');
        // A full queue drops the line and counts it (the writer is lossy), like any other.
        let _ = writer.make_writer().write_all(&text);
    }
}

/// Now, serialised as tracing-subscriber writes it on the other lines (RFC 3339, UTC).
pub struct Timestamp;

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        LAST_SECOND.with_borrow_mut(|(second, text)| {
            if *second != now.as_secs() || text.is_empty() {
                *second = now.as_secs();
                *text = second_prefix(now.as_secs());
            }
            let prefix_len = text.len();
            push_micros(text, now.subsec_micros());
            let written = serializer.serialize_str(text);
            text.truncate(prefix_len);
            written
        })
    }
}

thread_local! {
    /// The last second an access line was stamped with on this thread, and its text up to
    /// the fraction (`2026-12-06T05:00:00.`): formatted once a second, not on every line
    /// (formatting the whole timestamp through `fmt` was about a tenth of the access line's
    /// cost; docs/benchmarks.md).
    static LAST_SECOND: std::cell::RefCell<(u64, String)> =
        const { std::cell::RefCell::new((0, String::new())) };
}

/// `YYYY-MM-DDTHH:MM:SS.` of a Unix time in UTC, as tracing-subscriber writes its own.
fn second_prefix(unix: u64) -> String {
    let at = i64::try_from(unix)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// Appends the six digits of the microseconds and the `Z`.
fn push_micros(text: &mut String, micros: u32) {
    for place in [100_000, 10_000, 1_000, 100, 10, 1] {
        text.push(char::from(
            b'0' + u8::try_from(micros / place % 10).unwrap_or(0),
        ));
    }
    text.push('Z');
}

/// How traces are sampled; set once logging starts (the defaults before).
static SAMPLING: OnceLock<Sampling> = OnceLock::new();

#[derive(Debug, Clone, Copy)]
struct Sampling {
    ratio: f64,
    trust_client: bool,
}

/// Whether a trace is sampled: by the client's flag when `[telemetry]
/// trust_client_sampling` says so and the client sent one, else by `sample_ratio` over the
/// trace id (the exporter's own rule, so logs, upstreams and exported spans agree).
pub fn sampled(trace_id: &[u8; 16], client_sampled: Option<bool>) -> bool {
    let policy = SAMPLING.get().copied().unwrap_or(Sampling {
        ratio: 1.0,
        trust_client: false,
    });
    match client_sampled {
        Some(flag) if policy.trust_client => flag,
        _ => gateway::trace::sampled_at(trace_id, policy.ratio),
    }
}

/// What must outlive the serving: the log writer's thread and the span exporter. Dropping it
/// writes the lines still queued and exports the spans still batched.
pub struct Guard {
    writer: Option<WorkerGuard>,
    tracer: Option<SdkTracerProvider>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer.take() {
            // A collector that is down must not stop the process from exiting: the export
            // error is all there is to say, and there is no log left to say it in.
            let _ = provider.shutdown();
        }
        // Waits (up to a second, tracing-appender's bound) for the queued lines.
        drop(self.writer.take());
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
        .finish(Gathered(BufWriter::with_capacity(
            256 * 1024,
            std::io::stderr(),
        )));
    let _ = DROPPED.set(writer.error_counter());
    let _ = WRITER.set(writer.clone());
    let _ = SAMPLING.set(Sampling {
        ratio: telemetry.sample_ratio,
        trust_client: telemetry.trust_client_sampling,
    });
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
    // Two subscribers rather than an `Option` layer: a `None` layer still counts as
    // interested in every span, and the request and phase spans would then be built (and
    // entered, and closed) on every request for nothing (docs/benchmarks.md).
    let registry = tracing_subscriber::registry().with(logs);
    let _ = match &tracer {
        Some(provider) => registry
            .with(
                tracing_opentelemetry::layer()
                    .with_tracer(provider.tracer("tokengate"))
                    .with_filter(Targets::new().with_target(TRACE_TARGET, LevelFilter::INFO)),
            )
            .try_init(),
        None => registry.try_init(),
    };
    Ok(Guard {
        writer: Some(worker),
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
/// sampled as [`sampled`] says: by trace id at `sample_ratio`, or, with
/// `trust_client_sampling`, by the client's flag when it sent one. tokengate is usually the
/// edge: by default a client can neither make it record every request (a cost lever on the
/// collector) nor keep its own requests out of the traces.
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
        .with_sampler(if telemetry.trust_client_sampling {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(telemetry.sample_ratio)))
        } else {
            Sampler::TraceIdRatioBased(telemetry.sample_ratio)
        })
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
    use super::{push_micros, second_prefix, traces_url, Timestamp};
    use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};

    #[test]
    fn access_lines_are_stamped_as_the_other_log_lines() {
        assert_eq!(second_prefix(0), "1970-01-01T00:00:00.");
        assert_eq!(second_prefix(1_796_515_199), "2026-12-05T23:59:59.");
        let mut text = String::from("x.");
        push_micros(&mut text, 42);
        assert_eq!(text, "x.000042Z");
        text.truncate(2);
        push_micros(&mut text, 999_999);
        assert_eq!(text, "x.999999Z");
        let ours = serde_json::to_value(Timestamp).unwrap();
        let ours = ours.as_str().unwrap();
        let mut theirs = String::new();
        SystemTime
            .format_time(&mut tracing_subscriber::fmt::format::Writer::new(
                &mut theirs,
            ))
            .unwrap();
        assert_eq!(ours.len(), theirs.len(), "{ours} / {theirs}");
        // Same day (or the next, at midnight), same shape.
        assert_eq!(ours.get(..8), theirs.get(..8), "{ours} / {theirs}");
        assert!(ours.ends_with('Z') && ours.as_bytes().get(19) == Some(&b'.'));
    }

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
