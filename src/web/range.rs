//! Conditional and partial GETs (RFC 9110 §13–14): which bytes of a file to send for a
//! `Range` header, whether `If-Range` still allows it, entity tags, HTTP dates and the
//! `multipart/byteranges` framing.
//!
//! Pure: numbers and header text in, a plan out; no file or socket. Hand-written because
//! no small crate does Range + If-Range for a plain file server (tiny_http has no Range
//! support at all, issue #12), and the rules fit in this file with their tests.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

/// More ranges than this in one request are ignored (the whole file is sent): a guard
/// against requests for thousands of tiny overlapping pieces.
pub const MAX_RANGES: usize = 16;

/// What to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangePlan {
    /// 200 with the whole file.
    Full,
    /// 206 with these inclusive byte ranges (one: a single part; more: multipart).
    Partial(Vec<(u64, u64)>),
    /// 416: none of the ranges overlaps the file.
    Unsatisfiable,
}

/// A strong entity tag for a file of `len` bytes, identified by device and inode, last
/// modified at `modified`: it changes whenever the file grows or is replaced.
pub fn etag(identity: (u64, u64), len: u64, modified: SystemTime) -> String {
    let nanos = modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("\"{:x}-{:x}-{len:x}-{nanos:x}\"", identity.0, identity.1)
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn http_date(t: SystemTime) -> String {
    let dt: DateTime<Utc> = t.into();
    dt.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Seconds since the epoch of an HTTP date (IMF-fixdate, as we send it).
fn parse_http_date(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc2822(text.trim())
        .ok()
        .map(|d| d.timestamp())
}

fn secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `If-None-Match` (or, without it, `If-Modified-Since`) says the client's copy is
/// current: answer 304.
pub fn not_modified(
    if_none_match: Option<&str>,
    if_modified_since: Option<&str>,
    etag: &str,
    modified: SystemTime,
) -> bool {
    if let Some(inm) = if_none_match {
        let tag = etag.trim_start_matches("W/");
        return inm.trim() == "*"
            || inm
                .split(',')
                .any(|t| t.trim().trim_start_matches("W/") == tag);
    }
    match if_modified_since.and_then(parse_http_date) {
        Some(since) => secs(modified) <= since,
        None => false,
    }
}

/// Plan the answer to a GET of a file of `len` bytes with the given `Range` and
/// `If-Range` headers.
pub fn plan(
    range: Option<&str>,
    if_range: Option<&str>,
    len: u64,
    etag: &str,
    modified: SystemTime,
) -> RangePlan {
    let Some(range) = range else {
        return RangePlan::Full;
    };
    if let Some(cond) = if_range.map(str::trim) {
        let still_valid = if cond.starts_with('"') || cond.starts_with("W/") {
            // Strong comparison: a weak tag never matches.
            cond == etag
        } else {
            parse_http_date(cond).is_some_and(|d| d == secs(modified))
        };
        if !still_valid {
            return RangePlan::Full;
        }
    }
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return RangePlan::Full;
    };
    let mut ranges = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((a, b)) = part.split_once('-') else {
            return RangePlan::Full;
        };
        let (a, b) = (a.trim(), b.trim());
        let num = |s: &str| s.parse::<u64>().ok();
        let r = match (a.is_empty(), b.is_empty()) {
            // -N: the last N bytes.
            (true, false) => {
                let Some(n) = num(b) else {
                    return RangePlan::Full;
                };
                if n == 0 || len == 0 {
                    None
                } else {
                    Some((len - n.min(len), len - 1))
                }
            }
            // A-: from A to the end.
            (false, true) => {
                let Some(s) = num(a) else {
                    return RangePlan::Full;
                };
                (s < len).then(|| (s, len - 1))
            }
            (false, false) => {
                let (Some(s), Some(e)) = (num(a), num(b)) else {
                    return RangePlan::Full;
                };
                if e < s {
                    return RangePlan::Full;
                }
                (s < len).then(|| (s, e.min(len - 1)))
            }
            (true, true) => return RangePlan::Full,
        };
        ranges.extend(r);
        if ranges.len() > MAX_RANGES {
            return RangePlan::Full;
        }
    }
    if ranges.is_empty() {
        return RangePlan::Unsatisfiable;
    }
    RangePlan::Partial(coalesce(ranges))
}

/// Merge overlapping and adjacent ranges (in ascending order).
fn coalesce(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    if ranges.len() < 2 {
        return ranges;
    }
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match out.last_mut() {
            Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// The `Content-Range` value of a part.
pub fn content_range(start: u64, end: u64, len: u64) -> String {
    format!("bytes {start}-{end}/{len}")
}

/// The framing of a `multipart/byteranges` body: each part's header (with the slice it
/// introduces) and the closing delimiter.
pub fn multipart_parts(
    ranges: &[(u64, u64)],
    len: u64,
    content_type: &str,
    boundary: &str,
) -> (Vec<super::http::RangePart>, Vec<u8>) {
    let parts = ranges
        .iter()
        .map(|&(s, e)| {
            let header = format!(
                "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {}\r\n\r\n",
                content_range(s, e, len)
            );
            (header.into_bytes(), s, e - s + 1)
        })
        .collect();
    (parts, format!("\r\n--{boundary}--\r\n").into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_000_000)
    }

    fn p(range: &str, len: u64) -> RangePlan {
        plan(Some(range), None, len, "\"x\"", t0())
    }

    #[test]
    fn single_ranges_of_every_form() {
        assert_eq!(p("bytes=0-9", 100), RangePlan::Partial(vec![(0, 9)]));
        assert_eq!(p("bytes=90-", 100), RangePlan::Partial(vec![(90, 99)]));
        assert_eq!(p("bytes=-10", 100), RangePlan::Partial(vec![(90, 99)]));
        assert_eq!(p("bytes=-1000", 100), RangePlan::Partial(vec![(0, 99)]));
        assert_eq!(p("bytes=50-5000", 100), RangePlan::Partial(vec![(50, 99)]));
        assert_eq!(p("bytes=99-99", 100), RangePlan::Partial(vec![(99, 99)]));
        assert_eq!(
            p("bytes = 0-0", 100),
            RangePlan::Full,
            "not the bytes= form"
        );
    }

    #[test]
    fn unsatisfiable_and_invalid() {
        assert_eq!(p("bytes=100-", 100), RangePlan::Unsatisfiable);
        assert_eq!(p("bytes=200-300", 100), RangePlan::Unsatisfiable);
        assert_eq!(p("bytes=-0", 100), RangePlan::Unsatisfiable);
        assert_eq!(p("bytes=0-", 0), RangePlan::Unsatisfiable);
        // Invalid syntax: the Range header is ignored.
        assert_eq!(p("bytes=9-0", 100), RangePlan::Full);
        assert_eq!(p("bytes=a-b", 100), RangePlan::Full);
        assert_eq!(p("bytes=-", 100), RangePlan::Full);
        assert_eq!(p("items=0-1", 100), RangePlan::Full);
        assert_eq!(plan(None, None, 100, "\"x\"", t0()), RangePlan::Full);
    }

    #[test]
    fn several_ranges_are_coalesced_and_capped() {
        assert_eq!(
            p("bytes=0-9,20-29", 100),
            RangePlan::Partial(vec![(0, 9), (20, 29)])
        );
        assert_eq!(
            p("bytes=20-29,0-9,5-15,16-17", 100),
            RangePlan::Partial(vec![(0, 17), (20, 29)])
        );
        assert_eq!(
            p("bytes=0-9,500-600", 100),
            RangePlan::Partial(vec![(0, 9)])
        );
        let many: Vec<String> = (0..=MAX_RANGES).map(|i| format!("{i}-{i}")).collect();
        assert_eq!(
            p(&format!("bytes={}", many.join(",")), 100),
            RangePlan::Full
        );
    }

    #[test]
    fn if_range_with_tags_and_dates() {
        let tag = etag((1, 2), 100, t0());
        let date = http_date(t0());
        let r = Some("bytes=0-9");
        assert_eq!(
            plan(r, Some(&tag), 100, &tag, t0()),
            RangePlan::Partial(vec![(0, 9)])
        );
        assert_eq!(plan(r, Some("\"other\""), 100, &tag, t0()), RangePlan::Full);
        assert_eq!(
            plan(r, Some(&format!("W/{tag}")), 100, &tag, t0()),
            RangePlan::Full,
            "weak tags never match"
        );
        assert_eq!(
            plan(r, Some(&date), 100, &tag, t0()),
            RangePlan::Partial(vec![(0, 9)])
        );
        let later = http_date(t0() + Duration::from_secs(1));
        assert_eq!(plan(r, Some(&later), 100, &tag, t0()), RangePlan::Full);
        assert_eq!(plan(r, Some("garbage"), 100, &tag, t0()), RangePlan::Full);
    }

    #[test]
    fn tags_change_when_the_file_grows() {
        assert_ne!(etag((1, 2), 100, t0()), etag((1, 2), 101, t0()));
        assert_ne!(
            etag((1, 2), 100, t0()),
            etag((1, 2), 100, t0() + Duration::from_nanos(1))
        );
        assert_ne!(etag((1, 2), 100, t0()), etag((1, 3), 100, t0()));
    }

    #[test]
    fn dates_round_trip_and_conditional_gets() {
        let d = http_date(t0());
        assert!(d.ends_with(" GMT"), "{d}");
        assert_eq!(parse_http_date(&d), Some(1_795_000_000));
        let tag = etag((1, 2), 5, t0());
        assert!(not_modified(Some(&tag), None, &tag, t0()));
        assert!(not_modified(
            Some(&format!("\"a\", {tag}")),
            None,
            &tag,
            t0()
        ));
        assert!(not_modified(Some("*"), None, &tag, t0()));
        assert!(!not_modified(Some("\"a\""), None, &tag, t0()));
        assert!(not_modified(None, Some(&d), &tag, t0()));
        assert!(!not_modified(
            None,
            Some(&http_date(t0() - Duration::from_secs(5))),
            &tag,
            t0()
        ));
        assert!(!not_modified(None, None, &tag, t0()));
    }

    #[test]
    fn multipart_framing_lengths_add_up() {
        let (parts, tail) = multipart_parts(&[(0, 9), (20, 29)], 100, "video/mp4", "B");
        assert_eq!(parts.len(), 2);
        let head = String::from_utf8(parts[1].0.clone()).expect("text");
        assert!(head.contains("Content-Range: bytes 20-29/100"), "{head}");
        assert_eq!((parts[1].1, parts[1].2), (20, 10));
        assert_eq!(tail, b"\r\n--B--\r\n".to_vec());
    }
}
