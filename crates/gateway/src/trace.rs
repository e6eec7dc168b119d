//! W3C Trace Context (`traceparent`, `tracestate`): the trace a request belongs to, continued
//! from the client when it sent a valid `traceparent`, started here otherwise, and always
//! sent to the upstream, so its spans join the client's trace whether or not this node
//! exports its own.

use http::{HeaderMap, HeaderName, HeaderValue};

/// The target of the request's and the phases' spans: exported when tracing is on, never
/// logged.
pub const TARGET: &str = "tokengate::trace";

/// The `traceparent` request field.
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// The `tracestate` request field, forwarded only beside a valid `traceparent`.
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Most list members and characters of a `tracestate` (W3C Trace Context level 1, 3.3.1).
const TRACESTATE_MEMBERS: usize = 32;
const TRACESTATE_LENGTH: usize = 512;

/// A `traceparent` received from the client: version `00` and valid ids only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming {
    /// The trace the client's request belongs to.
    pub trace_id: [u8; 16],
    /// The client's span (the parent of this node's).
    pub parent_id: [u8; 8],
    /// The client's trace flags (bit 0: sampled).
    pub flags: u8,
}

impl Incoming {
    /// The request's `traceparent`, if exactly one was sent and it is valid (W3C Trace
    /// Context level 1, section 3.2: a trace or parent id of all zeros, upper-case hex and
    /// version `ff` are invalid; a later version is read by its version-00 prefix).
    pub fn from_headers(headers: &HeaderMap) -> Option<Incoming> {
        let mut values = headers.get_all(&TRACEPARENT).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        parse(value.to_str().ok()?)
    }

    /// Whether the client sampled its span.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

fn parse(text: &str) -> Option<Incoming> {
    let mut parts = text.splitn(5, '-');
    let version = hex_bytes::<1>(parts.next()?)?[0];
    let trace_id = hex_bytes::<16>(parts.next()?)?;
    let parent_id = hex_bytes::<8>(parts.next()?)?;
    let flags = hex_bytes::<1>(parts.next()?)?[0];
    let rest = parts.next();
    let well_formed = match version {
        0 => rest.is_none(),
        // A future version may append fields after a dash; none other may differ.
        0xff => false,
        _ => rest.is_none_or(|_| text.as_bytes().get(55) == Some(&b'-')),
    };
    let ids_valid = trace_id != [0; 16] && parent_id != [0; 8];
    (well_formed && ids_valid).then_some(Incoming {
        trace_id,
        parent_id,
        flags,
    })
}

/// `N` bytes from exactly `2N` lower-case hex digits.
fn hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let [high, low] = pair else { return None };
        *byte = (nibble(*high)? << 4) | nibble(*low)?;
    }
    Some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// This node's place in a trace: the trace id, the span id the upstream gets as its parent,
/// the flags and the vendor state it passes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace: the client's, or a new one.
    pub trace_id: [u8; 16],
    /// The upstream's parent span.
    pub span_id: [u8; 8],
    /// Trace flags sent on: only bit 0 (sampled) is defined, the others are sent as zero.
    pub flags: u8,
    /// The client's `tracestate`, when its `traceparent` was continued and the state is
    /// well formed ([`tracestate`]).
    pub tracestate: Option<HeaderValue>,
}

impl TraceContext {
    /// The `traceparent` value that names this node's span as the upstream's parent.
    pub fn traceparent(&self) -> HeaderValue {
        let mut text = Vec::with_capacity(55);
        text.extend_from_slice(b"00-");
        text.extend_from_slice(&hex::<16, 32>(&self.trace_id));
        text.push(b'-');
        text.extend_from_slice(&hex::<8, 16>(&self.span_id));
        text.push(b'-');
        text.extend_from_slice(&hex::<1, 2>(&[self.flags & 1]));
        // Only lower-case hex digits and dashes: always a valid field value.
        HeaderValue::from_maybe_shared(bytes::Bytes::from(text))
            .unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The trace id as 32 hex digits (for the access log).
    pub fn trace_id_hex(&self) -> TraceIdHex {
        TraceIdHex(hex::<16, 32>(&self.trace_id))
    }
}

/// A trace id as 32 lower-case hex digits, made without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceIdHex([u8; 32]);

impl TraceIdHex {
    /// The digits.
    pub fn as_str(&self) -> &str {
        // Hex digits only: always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// `bytes` as lower-case hex digits (`M` must be twice `N`; a shorter `M` keeps the first
/// bytes' digits only).
fn hex<const N: usize, const M: usize>(bytes: &[u8; N]) -> [u8; M] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digit = |n: u8| DIGITS.get(usize::from(n)).copied().unwrap_or(b'0');
    let mut out = [b'0'; M];
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        if let [high, low] = pair {
            *high = digit(b >> 4);
            *low = digit(b & 0xf);
        }
    }
    out
}

/// Replaces the client's trace fields with this node's: a `traceparent` naming the
/// upstream's parent span, and the client's `tracestate` only as [`TraceContext`] kept it.
pub fn set_upstream_fields(headers: &mut HeaderMap, trace: &TraceContext) {
    headers.insert(TRACEPARENT.clone(), trace.traceparent());
    match &trace.tracestate {
        Some(state) => headers.insert(TRACESTATE.clone(), state.clone()),
        None => headers.remove(&TRACESTATE),
    };
}

/// The request's `tracestate`, its field values joined, if it is a well-formed list of at
/// most 32 `key=value` members and 512 characters (W3C Trace Context level 1, 3.3); `None`
/// otherwise: vendors act on these values, so a malformed or oversized one is not passed on.
pub fn tracestate(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut joined = String::new();
    for value in headers.get_all(&TRACESTATE) {
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(value.to_str().ok()?);
    }
    let members: Vec<&str> = joined
        .split(',')
        .map(|m| m.trim_matches([' ', '\t']))
        .filter(|m| !m.is_empty())
        .collect();
    let well_formed = !members.is_empty()
        && members.len() <= TRACESTATE_MEMBERS
        && members.iter().all(|m| is_list_member(m))
        // A key twice: which value the vendor meant is unknown (3.3.1.1).
        && members
            .iter()
            .enumerate()
            .all(|(i, m)| !members.iter().skip(i + 1).any(|o| member_key(o) == member_key(m)));
    let text = members.join(",");
    (well_formed && text.len() <= TRACESTATE_LENGTH)
        .then(|| HeaderValue::from_str(&text).ok())
        .flatten()
}

/// `key=value` (W3C Trace Context level 1, 3.3.1.3): a key `simple` (a lower-case letter
/// first, at most 256) or `tenant@system` (tenant: a lower-case letter or digit first, at
/// most 241; system: a lower-case letter first, at most 14), of lower-case letters, digits
/// and `_-*/`; a value of 1 to 256 printable characters other than `,` and `=`.
fn is_list_member(member: &str) -> bool {
    let Some((key, value)) = member.split_once('=') else {
        return false;
    };
    let key_ok = match key.split_once('@') {
        None => is_key_part(key, 256, false),
        Some((tenant, system)) => is_key_part(tenant, 241, true) && is_key_part(system, 14, false),
    };
    let value_ok = (1..=256).contains(&value.len())
        && value
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=');
    key_ok && value_ok
}

/// A list member's key (what comes before its `=`).
fn member_key(member: &str) -> Option<&str> {
    member.split_once('=').map(|(key, _)| key)
}

fn is_key_part(part: &str, max: usize, digit_first: bool) -> bool {
    let bytes = part.as_bytes();
    (1..=max).contains(&bytes.len())
        && bytes
            .first()
            .is_some_and(|c| c.is_ascii_lowercase() || (digit_first && c.is_ascii_digit()))
        && bytes.iter().all(|&c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'*' | b'/')
        })
}

/// Whether a trace is recorded at `ratio`, decided by its id alone (as OpenTelemetry's
/// `TraceIdRatioBased` does), so every node sampling at the same ratio agrees.
pub fn sampled_at(trace_id: &[u8; 16], ratio: f64) -> bool {
    let mut low = [0u8; 8];
    low.copy_from_slice(trace_id.get(8..).unwrap_or(&[0; 8]));
    let bound = (ratio.clamp(0.0, 1.0) * (1u64 << 63) as f64) as u64;
    (u64::from_be_bytes(low) >> 1) < bound
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(TRACEPARENT.clone(), HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn reads_the_specs_example() {
        let got = Incoming::from_headers(&headers(&[VALID])).unwrap();
        assert_eq!(got.trace_id[0], 0x4b);
        assert_eq!(got.trace_id[15], 0x36);
        assert_eq!(
            got.parent_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(got.flags, 1);
        assert!(got.sampled());
    }

    #[test]
    fn refuses_what_the_spec_calls_invalid() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        ] {
            assert_eq!(Incoming::from_headers(&headers(&[bad])), None, "{bad:?}");
        }
        // Two values: which one the client meant is unknown.
        assert_eq!(Incoming::from_headers(&headers(&[VALID, VALID])), None);
        assert_eq!(Incoming::from_headers(&HeaderMap::new()), None);
    }

    #[test]
    fn a_later_version_is_read_by_its_prefix() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        let got = Incoming::from_headers(&headers(&[later])).unwrap();
        assert_eq!(got.flags, 1);
        let glued = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x";
        assert_eq!(Incoming::from_headers(&headers(&[glued])), None);
    }

    #[test]
    fn writes_this_nodes_span_as_the_parent() {
        let trace = TraceContext {
            trace_id: Incoming::from_headers(&headers(&[VALID])).unwrap().trace_id,
            span_id: [0xa1, 0, 0, 0, 0, 0, 0, 0x0f],
            flags: 0,
            tracestate: None,
        };
        assert_eq!(
            trace.traceparent(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-a10000000000000f-00"
        );
        assert_eq!(
            trace.trace_id_hex().as_str(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let mut map = headers(&[VALID]);
        map.insert(
            TRACESTATE.clone(),
            HeaderValue::from_static("congo=t61rcWkgMzE"),
        );
        let kept = TraceContext {
            tracestate: tracestate(&map),
            ..trace.clone()
        };
        set_upstream_fields(&mut map, &kept);
        assert_eq!(map.get_all(&TRACEPARENT).iter().count(), 1);
        assert_eq!(map[&TRACEPARENT], trace.traceparent());
        assert_eq!(map[&TRACESTATE], "congo=t61rcWkgMzE");
        set_upstream_fields(&mut map, &trace);
        assert!(map.get(&TRACESTATE).is_none());
        // Undefined flag bits are sent as zero.
        let odd = TraceContext {
            flags: 0xff,
            ..trace
        };
        assert!(odd.traceparent().to_str().unwrap().ends_with("-01"));
    }

    fn state(values: &[&str]) -> Option<String> {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(TRACESTATE.clone(), HeaderValue::from_str(v).unwrap());
        }
        tracestate(&map).map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn tracestate_is_passed_on_only_when_well_formed() {
        assert_eq!(
            state(&["rojo=00f067aa0ba902b7", " congo=t61rcWkgMzE "]).as_deref(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
        assert_eq!(
            state(&["tenant@vendor=x,,a-b*c/d=1 2"]).as_deref(),
            Some("tenant@vendor=x,a-b*c/d=1 2")
        );
        let long_tenant = format!("{}@v=1", "t".repeat(242));
        for bad in [
            "Upper=1",
            "novalue",
            "k=",
            "k=a,b",
            "k=v=w",
            "a@b@c=1",
            "k=\u{e9}",
            "",
            "foo@=1",
            "t@1v=1",
            "t@-v=1",
            "t@vvvvvvvvvvvvvvv=1",
            &long_tenant,
            "1abc=x",
            "foo=1,foo=2",
        ] {
            assert_eq!(state(&[bad]), None, "{bad:?}");
        }
        let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert_eq!(state(&[&many.join(",")]), None, "33 members");
        let long = format!("k={}", "v".repeat(256));
        assert_eq!(state(&[&long, &long]), None, "over 512 characters");
        assert_eq!(state(&[]), None);
        assert_eq!(
            state(&["foo=1", "foo=2"]),
            None,
            "a key twice across fields"
        );
        assert_eq!(
            state(&["1tenant@vendor=x,t@v14charslong_=y"]).as_deref(),
            Some("1tenant@vendor=x,t@v14charslong_=y")
        );
    }

    #[test]
    fn sampling_by_ratio_follows_the_trace_id() {
        let mut id = [0u8; 16];
        assert!(
            sampled_at(&id, 0.5),
            "the lowest id is under any positive bound"
        );
        assert!(!sampled_at(&id, 0.0));
        id[8] = 0xff;
        assert!(!sampled_at(&id, 0.5));
        assert!(sampled_at(&id, 1.0));
    }
}
