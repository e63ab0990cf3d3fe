//! `mqtts://`: TLS over the broker connection with rustls (ring as the crypto provider),
//! the broker's certificate checked against `ca_file` or the system's roots.
//!
//! Only with the cargo feature `mqtt-tls` (off by default and in the Pi build: it adds
//! several hundred kilobytes to a binary that must stay under 2 MB). It owns the
//! handshake and nothing else; MQTT runs over the stream it returns as over TCP.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConnection, StreamOwned};

use super::Stream;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

struct TlsStream(StreamOwned<ClientConnection, TcpStream>);

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Stream for TlsStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.0.sock.set_read_timeout(t)
    }
}

fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(p) => {
            let certs = CertificateDer::pem_file_iter(p)
                .map_err(|e| format!("cannot read mqtt.ca_file {}: {e}", p.display()))?;
            for c in certs {
                let c = c.map_err(|e| format!("mqtt.ca_file {}: {e}", p.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("mqtt.ca_file {}: {e}", p.display()))?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    if roots.is_empty() {
        return Err(
            "no certificate authority to check the broker against (set mqtt.ca_file)".into(),
        );
    }
    Ok(roots)
}

/// TLS over `tcp` to `host`, the handshake done (so a bad certificate is reported here).
pub(super) fn wrap(
    tcp: TcpStream,
    host: &str,
    ca_file: Option<&Path>,
) -> Result<Box<dyn Stream>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots(ca_file)?)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| format!("TLS: {host:?} is not a server name: {e}"))?;
    let conn = ClientConnection::new(Arc::new(config), name).map_err(|e| format!("TLS: {e}"))?;
    tcp.set_read_timeout(Some(HANDSHAKE_TIMEOUT))
        .map_err(|e| format!("TLS: {e}"))?;
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| format!("TLS handshake with {host}: {e}"))?;
    }
    Ok(Box::new(TlsStream(tls)))
}
