//! The broker's address (`mqtt://HOST[:PORT]`, `mqtts://HOST[:PORT]`) and the credentials
//! file (`user:password` on its first line).
//!
//! Pure parsing, with messages that say what is allowed; reading the credentials file is
//! the only I/O ([`read_credentials`]).

use std::path::Path;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    /// Host name or address, without brackets for IPv6.
    pub host: String,
    pub port: u16,
}

impl BrokerUrl {
    pub fn parse(url: &str) -> Result<BrokerUrl, String> {
        let allowed =
            "allowed: mqtt://HOST[:PORT] or mqtts://HOST[:PORT], e.g. \"mqtt://127.0.0.1:1883\"";
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else {
            return Err(format!("is {url:?}; {allowed}"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '@', '?', '#', ' ']) {
            return Err(format!(
                "is {url:?}; {allowed} (credentials go in mqtt.credentials_file)"
            ));
        }
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let Some((h, after)) = v6.split_once(']') else {
                return Err(format!("is {url:?}; {allowed}"));
            };
            match after {
                "" => (h, None),
                p => match p.strip_prefix(':') {
                    Some(p) => (h, Some(p)),
                    None => return Err(format!("is {url:?}; {allowed}")),
                },
            }
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port = match port {
            None => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("has port {p:?}; allowed: 1 to 65535")),
            },
        };
        if host.is_empty() {
            return Err(format!("is {url:?}; {allowed}"));
        }
        Ok(BrokerUrl {
            tls,
            host: host.to_string(),
            port,
        })
    }

    /// `host:port` for connecting (IPv6 in brackets).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ****)", self.username)
    }
}

/// `user:password` (the first `:` splits; the password may contain more).
pub fn parse_credentials(text: &str) -> Result<Credentials, String> {
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    match line.split_once(':') {
        Some((u, p)) if !u.is_empty() => Ok(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        }),
        _ => Err("its first line must be USER:PASSWORD".into()),
    }
}

pub fn read_credentials(path: &Path) -> Result<Credentials, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the MQTT credentials file {}: {e}",
            path.display()
        )
    })?;
    parse_credentials(&text).map_err(|e| format!("MQTT credentials file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = BrokerUrl::parse("mqtt://127.0.0.1:1884").expect("ok");
        assert_eq!((u.tls, u.host.as_str(), u.port), (false, "127.0.0.1", 1884));
        assert_eq!(u.address(), "127.0.0.1:1884");
        let u = BrokerUrl::parse("mqtts://broker.lan/").expect("ok");
        assert_eq!((u.tls, u.port), (true, 8883));
        let u = BrokerUrl::parse("mqtt://[::1]").expect("ok");
        assert_eq!(u.address(), "[::1]:1883");
        for bad in [
            "",
            "tcp://x",
            "mqtt://",
            "mqtt://u:p@h",
            "mqtt://h:0",
            "mqtt://h:x",
            "mqtt://h/t",
        ] {
            assert!(BrokerUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials() {
        let c = parse_credentials("cam:pa:ss\nignored\n").expect("ok");
        assert_eq!((c.username.as_str(), c.password.as_str()), ("cam", "pa:ss"));
        assert!(parse_credentials("nocolon").is_err());
        assert!(parse_credentials(":p").is_err());
        assert!(
            !format!("{c:?}").contains("pa:ss"),
            "the password is never logged"
        );
    }
}
