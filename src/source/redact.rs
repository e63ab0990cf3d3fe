//! Camera URLs without their credentials: what logs, errors, metadata and the status may
//! show of an `rtsp://user:password@host/path` source.
//!
//! It owns splitting the user name and password off a URL (percent-decoded) and the only
//! printable form of such a URL (`rtsp://***@host/path`). It never prints, logs or
//! formats a password, not even in `Debug`.

use std::fmt;

/// An RTSP URL split into the URL without credentials and the credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct RtspUrl {
    /// `rtsp://host[:port]/path[?query]`, credentials removed.
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl RtspUrl {
    pub fn parse(s: &str) -> Result<RtspUrl, String> {
        let rest = if let Some(r) = s.strip_prefix("rtsp://") {
            r
        } else if s.starts_with("rtsps://") {
            return Err(format!(
                "{}: RTSP over TLS (rtsps://) is not supported; use the camera's rtsp:// URL",
                redact_source(s)
            ));
        } else {
            return Err(format!("{}: not an rtsp:// URL", redact_source(s)));
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        let (userinfo, host) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        if host.is_empty() {
            return Err(format!("{}: no host in the URL", redact_source(s)));
        }
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (Some(percent_decode(user)), Some(percent_decode(pass))),
                None => (Some(percent_decode(u)), None),
            },
        };
        let path = if path.is_empty() { "/" } else { path };
        Ok(RtspUrl {
            url: format!("rtsp://{host}{path}"),
            user: user.filter(|u| !u.is_empty()),
            password,
        })
    }

    pub fn has_credentials(&self) -> bool {
        self.user.is_some() || self.password.is_some()
    }
}

/// `rtsp://***@host/path` when the URL carried credentials, else the URL.
impl fmt::Display for RtspUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.has_credentials(), self.url.strip_prefix("rtsp://")) {
            (true, Some(rest)) => write!(f, "rtsp://***@{rest}"),
            _ => f.write_str(&self.url),
        }
    }
}

impl fmt::Debug for RtspUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RtspUrl({self})")
    }
}

/// A `--source` value fit for a message: the user information of a URL replaced by `***`.
pub fn redact_source(s: &str) -> String {
    let Some(scheme_end) = s.find("://") else {
        return s.to_string();
    };
    let after = &s[scheme_end + 3..];
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    match after[..authority_end].rfind('@') {
        Some(at) => format!("{}://***@{}", &s[..scheme_end], &after[at + 1..]),
        None => s.to_string(),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_split_off_and_never_printed() {
        let u = RtspUrl::parse("rtsp://admin:s%40cret:x@10.0.0.5:554/Streaming/Channels/101")
            .expect("parse");
        assert_eq!(u.url, "rtsp://10.0.0.5:554/Streaming/Channels/101");
        assert_eq!(u.user.as_deref(), Some("admin"));
        assert_eq!(u.password.as_deref(), Some("s@cret:x"));
        for shown in [u.to_string(), format!("{u:?}")] {
            assert!(
                !shown.contains("admin") && !shown.contains("cret"),
                "{shown}"
            );
            assert!(
                shown.contains("rtsp://***@10.0.0.5:554/Streaming"),
                "{shown}"
            );
        }
        let plain = RtspUrl::parse("rtsp://cam/cam/realmonitor?channel=1&subtype=0").expect("ok");
        assert!(!plain.has_credentials());
        assert_eq!(
            plain.to_string(),
            "rtsp://cam/cam/realmonitor?channel=1&subtype=0"
        );
        assert_eq!(RtspUrl::parse("rtsp://h").expect("ok").url, "rtsp://h/");
    }

    #[test]
    fn errors_and_redacted_sources_hide_the_password() {
        for bad in ["rtsps://u:pw@h/x", "rtsp://u:pw@/x"] {
            let e = RtspUrl::parse(bad).expect_err(bad);
            assert!(!e.contains("pw"), "{e}");
        }
        assert_eq!(redact_source("rtsp://u:pw@h/p@q"), "rtsp://***@h/p@q");
        assert_eq!(redact_source("file:/a@b"), "file:/a@b");
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}
