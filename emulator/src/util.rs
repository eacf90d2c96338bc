//! Small helpers shared by the services: ids, secret values, times, query strings, responses.

use std::collections::HashMap;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use rand::Rng;
use rand::distr::Alphanumeric;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A random GUID (lowercase, hyphenated).
pub fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A Key Vault version id: 32 lowercase hex digits.
pub fn hex32() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A secret in Entra's client-secret form: 40 characters, `xxx8Q~` then 34 of `[A-Za-z0-9~._-]`.
/// The first three characters are the credential's hint.
pub fn entra_secret_text() -> String {
    let mut rng = rand::rng();
    let mut s: String = (&mut rng)
        .sample_iter(&Alphanumeric)
        .take(3)
        .map(char::from)
        .collect();
    s.push_str("8Q~");
    const TAIL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~._-";
    for _ in 0..34 {
        s.push(TAIL[rng.random_range(0..TAIL.len())] as char);
    }
    s
}

/// A random opaque string of `n` alphanumerics.
pub fn random_alnum(n: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// Now, truncated to whole seconds (the emulator's times are second-precise).
pub fn now() -> OffsetDateTime {
    let n = OffsetDateTime::now_utc();
    n.replace_nanosecond(0).unwrap_or(n)
}

/// Truncate to whole seconds.
pub fn secs(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

/// RFC 3339 (`2025-01-02T03:04:05Z`).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Graph's time format: UTC, seven fractional digits (100 ns ticks) when the time has a
/// fraction (`2025-01-02T03:04:05.1234567Z`), none when it is whole seconds.
pub fn graph_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let ticks = t.nanosecond() / 100;
    let whole = t.replace_nanosecond(0).unwrap_or(t);
    let base = rfc3339(whole);
    if ticks == 0 {
        return base;
    }
    format!("{}.{ticks:07}Z", base.trim_end_matches('Z'))
}

/// Truncated to Graph's precision (100 ns ticks).
pub fn ticks(t: OffsetDateTime) -> OffsetDateTime {
    let n = t.nanosecond() / 100 * 100;
    t.replace_nanosecond(n).unwrap_or(t)
}

/// Parse a Graph/ISO time.
pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Decoded query string; the last value wins for repeated keys.
pub fn query_map(q: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Percent-decoded path segments (no leading empty segment; a trailing slash yields a trailing "").
pub fn segments(path: &str) -> Vec<String> {
    let p = path.strip_prefix('/').unwrap_or(path);
    if p.is_empty() {
        return Vec::new();
    }
    p.split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

/// A JSON response.
pub fn json(status: StatusCode, v: &serde_json::Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// An empty response.
pub fn empty(status: StatusCode) -> Response {
    status.into_response()
}

/// Base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Standard base64 with padding.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decode base64 in any of the usual alphabets, padded or not.
pub fn b64_decode_any(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let s = s.trim();
    STANDARD
        .decode(s)
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
        .or_else(|_| URL_SAFE.decode(s))
        .ok()
}

/// SHA-1 of bytes.
pub fn sha1(bytes: &[u8]) -> [u8; 20] {
    use sha1::Digest;
    let mut h = sha1::Sha1::new();
    h.update(bytes);
    h.finalize().into()
}

/// Uppercase hex.
pub fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Parse hex into bytes.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn secret_text_has_entra_shape() {
        let s = entra_secret_text();
        assert_eq!(s.len(), 40);
        assert_eq!(&s[3..6], "8Q~");
        assert_ne!(entra_secret_text(), s);
    }

    #[test]
    fn graph_times_are_utc_with_seven_digits() {
        let t = parse_rfc3339("2025-03-04T05:06:07.123456789+02:00").unwrap();
        assert_eq!(graph_time(t), "2025-03-04T03:06:07.1234567Z");
        let t = parse_rfc3339("2025-03-04T05:06:07Z").unwrap();
        assert_eq!(graph_time(t), "2025-03-04T05:06:07Z");
        let t = parse_rfc3339("2025-03-04T05:06:07.5-01:00").unwrap();
        assert_eq!(graph_time(t), "2025-03-04T06:06:07.5000000Z");
    }

    #[test]
    fn segments_keep_trailing_slash() {
        assert_eq!(segments("/secrets/a/"), vec!["secrets", "a", ""]);
        assert_eq!(segments("/secrets"), vec!["secrets"]);
        assert!(segments("/").is_empty());
        assert_eq!(segments("/a%20b"), vec!["a b"]);
    }
}
