//! Who may use the page: the optional password (an Argon2id hash in `[web] password_file`,
//! written by `dashcam password`), sessions (a random cookie, `HttpOnly`,
//! `SameSite=Strict`) with a CSRF token each, the same-origin rule for every request that
//! changes something, and the `Host` check against DNS rebinding.
//!
//! Decisions are pure functions of the request and the stored hash; the only state is the
//! session table and the login limiter, both in memory (a restart logs everyone out). It
//! never stores or logs a password in clear.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::http::Request;

/// The session cookie's name.
pub const COOKIE: &str = "dashcam_session";
/// The header that carries the CSRF token on POST and DELETE.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session unused this long ends (a phone stays logged in for a month of trips).
const SESSION_IDLE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Sessions kept at most; the least recently used goes first.
const MAX_SESSIONS: usize = 32;
/// Failed logins allowed per window before logins are refused until it passes.
const MAX_FAILURES: u32 = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Argon2id cost for new hashes: 4 MiB, 3 passes, 1 lane. About 10 ms on one x86-64 core;
/// estimated 0.2–0.4 s on a Pi Zero's ARM1176 (64-bit BLAKE2b on a 32-bit core), well
/// under a second. Stored in the hash, so a file made with other costs still verifies.
const M_COST_KIB: u32 = 4096;
const T_COST: u32 = 3;
const P_COST: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the password file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the password file {0} does not hold an Argon2 hash (write it with `dashcam password`)"
    )]
    NotAHash(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("no random numbers from the kernel: {0}")]
    Random(String),
}

/// `n` random bytes from the kernel.
fn random_bytes(n: usize) -> Result<Vec<u8>, AuthError> {
    let mut bytes = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        match rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(k) => filled += k,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(AuthError::Random(e.to_string())),
        }
    }
    Ok(bytes)
}

/// `n` random bytes from the kernel, as lowercase hex.
pub fn random_hex(n: usize) -> Result<String, AuthError> {
    Ok(random_bytes(n)?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A salted Argon2id hash of `password` in the PHC string format.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt =
        SaltString::encode_b64(&random_bytes(16)?).map_err(|e| AuthError::Hash(e.to_string()))?;
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None)
        .map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC `hash`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

struct Session {
    csrf: String,
    last_used: Instant,
}

#[derive(Default)]
struct Limiter {
    window_start: Option<Instant>,
    failures: u32,
}

/// What a login attempt gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Login {
    /// The session cookie's value and the CSRF token.
    Ok {
        token: String,
        csrf: String,
    },
    Wrong,
    /// Too many failures lately: wait this long.
    Limited(Duration),
    NoPassword,
}

pub struct Auth {
    hash: Option<String>,
    sessions: Mutex<HashMap<String, Session>>,
    limiter: Mutex<Limiter>,
    /// Held while a hash is checked: one at a time (CPU and 4 MiB each on a Pi Zero).
    checking: Mutex<()>,
}

impl Auth {
    /// No password: every request with a good Host and origin is allowed.
    pub fn open() -> Auth {
        Auth::with_hash(None)
    }

    fn with_hash(hash: Option<String>) -> Auth {
        Auth {
            hash,
            sessions: Mutex::new(HashMap::new()),
            limiter: Mutex::new(Limiter::default()),
            checking: Mutex::new(()),
        }
    }

    /// Read the password file (`None`: no password).
    pub fn load(path: Option<&Path>) -> Result<Auth, AuthError> {
        let Some(path) = path else {
            return Ok(Auth::open());
        };
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let hash = text.trim().to_string();
        if PasswordHash::new(&hash).is_err() {
            return Err(AuthError::NotAHash(path.display().to_string()));
        }
        Ok(Auth::with_hash(Some(hash)))
    }

    pub fn password_required(&self) -> bool {
        self.hash.is_some()
    }

    /// The CSRF token of the request's session, when it has a live one.
    pub fn session(&self, request: &Request) -> Option<String> {
        let token = cookie(request, COOKIE)?;
        let mut sessions = self.sessions.lock().ok()?;
        let now = Instant::now();
        sessions.retain(|_, s| now.duration_since(s.last_used) < SESSION_IDLE);
        let s = sessions.get_mut(token)?;
        s.last_used = now;
        Some(s.csrf.clone())
    }

    pub fn login(&self, password: &str) -> Login {
        let Some(hash) = &self.hash else {
            return Login::NoPassword;
        };
        let now = Instant::now();
        if let Ok(mut l) = self.limiter.lock() {
            if l.window_start
                .is_none_or(|t| now.duration_since(t) >= FAILURE_WINDOW)
            {
                l.window_start = Some(now);
                l.failures = 0;
            }
            if l.failures >= MAX_FAILURES {
                let wait = l.window_start.map_or(FAILURE_WINDOW, |t| {
                    FAILURE_WINDOW.saturating_sub(now.duration_since(t))
                });
                return Login::Limited(wait);
            }
        }
        let ok = {
            let _one = self.checking.lock();
            verify_password(hash, password)
        };
        if !ok {
            if let Ok(mut l) = self.limiter.lock() {
                l.failures += 1;
            }
            return Login::Wrong;
        }
        let (Ok(token), Ok(csrf)) = (random_hex(32), random_hex(32)) else {
            return Login::Wrong;
        };
        if let Ok(mut sessions) = self.sessions.lock() {
            while sessions.len() >= MAX_SESSIONS {
                let oldest = sessions
                    .iter()
                    .min_by_key(|(_, s)| s.last_used)
                    .map(|(k, _)| k.clone());
                match oldest {
                    Some(k) => sessions.remove(&k),
                    None => break,
                };
            }
            sessions.insert(
                token.clone(),
                Session {
                    csrf: csrf.clone(),
                    last_used: now,
                },
            );
        }
        Login::Ok { token, csrf }
    }

    pub fn logout(&self, request: &Request) {
        if let (Some(token), Ok(mut sessions)) = (cookie(request, COOKIE), self.sessions.lock()) {
            sessions.remove(token);
        }
    }
}

/// The `Set-Cookie` value for a new session (or, with `None`, one that ends it).
pub fn set_cookie(token: Option<&str>) -> String {
    match token {
        Some(t) => format!(
            "{COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
            SESSION_IDLE.as_secs()
        ),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    }
}

/// A cookie's value from the request.
fn cookie<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .filter(|(n, _)| n == "cookie")
        .flat_map(|(_, v)| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Compare secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The names this machine answers to besides IP addresses: `localhost`, its host name
/// and `NAME.local` (mDNS), and the configured extra names; all lower case.
pub fn local_names(extra: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_string()];
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let host = host.trim().to_ascii_lowercase();
    if !host.is_empty() {
        names.push(format!("{host}.local"));
        names.push(host);
    }
    names.extend(extra.iter().map(|h| h.to_ascii_lowercase()));
    names
}

/// Whether a `Host` header names this machine: an IP address (a rebinding attack needs a
/// name), or one of `names`. A port may follow.
pub fn host_allowed(host: &str, names: &[String]) -> bool {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest.split_once(']').is_some_and(|(ip, port)| {
            ip.parse::<std::net::Ipv6Addr>().is_ok()
                && (port.is_empty() || valid_port(port.strip_prefix(':').unwrap_or("x")))
        });
    }
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    if port.is_some_and(|p| !valid_port(p)) {
        return false;
    }
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.parse::<IpAddr>().is_ok() || names.contains(&name)
}

fn valid_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

/// A request that changes something must come from the page itself: its `Origin` (or
/// `Referer`) must be this very host, and `Sec-Fetch-Site` must not say another site.
/// Clients that send none of these (curl, scripts) are not browsers driven by another
/// page, and pass.
pub fn same_origin(request: &Request) -> Result<(), String> {
    let host = request.header("host").unwrap_or("");
    if let Some(site) = request.header("sec-fetch-site") {
        if site == "cross-site" || site == "same-site" {
            return Err(format!(
                "a request from another site ({site}) may not change anything"
            ));
        }
    }
    let origin_of = |url: &str| -> Option<String> {
        let rest = url.strip_prefix("http://")?;
        Some(rest.split('/').next().unwrap_or("").to_ascii_lowercase())
    };
    let host_lc = host.to_ascii_lowercase();
    if let Some(origin) = request.header("origin") {
        return match origin_of(origin) {
            Some(o) if o == host_lc => Ok(()),
            _ => Err(format!(
                "origin {origin} is not this dashcam (http://{host}): refused"
            )),
        };
    }
    if let Some(referer) = request.header("referer") {
        return match origin_of(referer) {
            Some(o) if o == host_lc => Ok(()),
            _ => Err("the referring page is not this dashcam: refused".into()),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Request {
        Request {
            method: "POST".into(),
            path: "/api/lock".into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            ..Request::default()
        }
    }

    #[test]
    fn hash_and_verify() {
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=4096,t=3,p=1$"), "{h}");
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "correct horse "));
        assert!(!verify_password("not a hash", "x"));
        assert_ne!(h, hash_password("correct horse").expect("hash"), "salted");
    }

    #[test]
    fn sessions_and_limits() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("pass");
        std::fs::write(&file, hash_password("pw").expect("hash") + "\n").expect("write");
        let auth = Auth::load(Some(&file)).expect("load");
        assert!(auth.password_required());
        let Login::Ok { token, csrf } = auth.login("pw") else {
            panic!("login")
        };
        let cookie_header = format!("other=1; {COOKIE}={token}");
        let r = req(&[("cookie", &cookie_header)]);
        assert_eq!(auth.session(&r).as_deref(), Some(csrf.as_str()));
        assert_eq!(
            auth.session(&req(&[("cookie", "dashcam_session=forged")])),
            None
        );
        auth.logout(&r);
        assert_eq!(auth.session(&r), None);
        for _ in 0..MAX_FAILURES {
            assert_eq!(auth.login("nope"), Login::Wrong);
        }
        assert!(matches!(auth.login("pw"), Login::Limited(_)));
        std::fs::write(&file, "hunter2\n").expect("write");
        assert!(matches!(
            Auth::load(Some(&file)),
            Err(AuthError::NotAHash(_))
        ));
        assert_eq!(Auth::open().login("x"), Login::NoPassword);
    }

    #[test]
    fn cookie_attributes() {
        let c = set_cookie(Some("abc"));
        for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(c.contains(part), "{c}");
        }
        assert!(set_cookie(None).contains("Max-Age=0"));
    }

    #[test]
    fn hosts() {
        let names = vec![
            "localhost".to_string(),
            "dashcam".into(),
            "dashcam.local".into(),
        ];
        for ok in [
            "10.42.0.1",
            "10.42.0.1:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "[fe80::1]",
            "localhost:8080",
            "DashCam.local",
            "dashcam.",
        ] {
            assert!(host_allowed(ok, &names), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "dashcam.evil.example",
            "10.42.0.1:80x",
            "[::1",
            "",
        ] {
            assert!(!host_allowed(bad, &names), "{bad}");
        }
    }

    #[test]
    fn origins() {
        assert!(same_origin(&req(&[("host", "10.42.0.1:8080")])).is_ok());
        assert!(same_origin(&req(&[
            ("host", "10.42.0.1:8080"),
            ("origin", "http://10.42.0.1:8080")
        ]))
        .is_ok());
        assert!(same_origin(&req(&[
            ("host", "10.42.0.1:8080"),
            ("origin", "http://evil.example")
        ]))
        .is_err());
        assert!(same_origin(&req(&[("host", "10.42.0.1:8080"), ("origin", "null")])).is_err());
        assert!(same_origin(&req(&[
            ("host", "10.42.0.1:8080"),
            ("referer", "http://evil.example/x")
        ]))
        .is_err());
        assert!(same_origin(&req(&[
            ("host", "10.42.0.1:8080"),
            ("sec-fetch-site", "cross-site")
        ]))
        .is_err());
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
    }
}
