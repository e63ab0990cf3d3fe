//! The web role: the phone page and its JSON API, served over HTTP/1.1 by a small pool of
//! threads beside the recorder.
//!
//! A phone on the Pi's hotspot sees whether it records, locks an incident, starts and
//! stops recording, lists, plays, downloads and deletes footage, cuts clips and sets the
//! clock. Everything it needs from the rest of the program comes through one interface,
//! [`backend::WebBackend`]. Recording has priority: the web threads run niced, status
//! reads are snapshots, footage operations wait a bounded time, and a failure to start
//! the server is logged and never stops a recording.
//!
//! Files: [`config`] (`[web]`), [`server`] (accept, limits, workers), [`conn`] (one
//! request on the wire), [`http`] (messages), [`routes`] (the gate and the URL table),
//! [`api`] (JSON handlers), [`files`] and [`range`] (footage with Range/ETag), [`replay`]
//! (MJPEG replay of AVI), [`auth`] (password, sessions, CSRF, origin and Host checks),
//! [`metrics`] (Prometheus text), [`assets`] (the page, built in), [`live`] (the live
//! view: fMP4 over a WebSocket, HLS, MJPEG, fed by the recorder's live tap), [`sse`]
//! (`GET /api/events`: the recorder's events as Server-Sent Events).

pub(crate) mod api;
pub(crate) mod assets;
pub mod auth;
pub mod backend;
pub mod config;
mod conn;
pub(crate) mod files;
pub(crate) mod http;
pub(crate) mod live;
pub(crate) mod metrics;
pub(crate) mod range;
pub(crate) mod replay;
pub(crate) mod routes;
pub(crate) mod server;
pub(crate) mod sse;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

pub use backend::WebBackend;
pub use config::WebConfig;

use crate::state::live::LiveTap;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("web: cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("web: {0}")]
    Auth(#[from] auth::AuthError),
    #[error("web: cannot start its threads: {0}")]
    Threads(std::io::Error),
}

/// The running web role.
pub struct WebServer {
    server: server::Server,
    live: Option<Arc<live::LiveView>>,
    events: Arc<sse::EventStreams>,
}

impl WebServer {
    /// Bind `config.listen` and serve `backend`; the live view from `tap` when `[web] live`
    /// is on (the recorder's writer offers its frames to the same tap).
    pub fn start(
        config: &WebConfig,
        backend: Arc<dyn WebBackend>,
        tap: Option<Arc<LiveTap>>,
    ) -> Result<WebServer, WebError> {
        let auth = auth::Auth::load(config.password_file.as_deref())?;
        let addr = config.listen_addr().ok_or_else(|| WebError::Listen {
            addr: config.listen.clone(),
            source: std::io::Error::other("not an address and port"),
        })?;
        let listener = TcpListener::bind(addr).map_err(|source| WebError::Listen {
            addr: config.listen.clone(),
            source,
        })?;
        let live = match tap.filter(|_| config.live) {
            Some(tap) => Some(
                live::LiveView::start(
                    tap,
                    live::LiveSettings {
                        max_viewers: config.max_viewers,
                        preview_fps: config.preview_fps,
                    },
                    backend.clone(),
                )
                .map_err(WebError::Threads)?,
            ),
            None => None,
        };
        let app = routes::App::new(
            backend,
            auth,
            auth::local_names(&config.allowed_hosts),
            config.public_metrics,
            config.max_streams,
        )
        .with_live(live.clone());
        let events = app.event_streams();
        let server = server::Server::start(
            listener,
            server::Limits {
                workers: config.workers,
                max_connections: config.max_connections,
                header_timeout: config.header_timeout(),
                io_timeout: config.io_timeout(),
            },
            Arc::new(app),
        )
        .map_err(WebError::Threads)?;
        Ok(WebServer {
            server,
            live,
            events,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Stop serving: open connections (live viewers and event streams too) are shut down,
    /// threads joined.
    pub fn stop(self) {
        if let Some(l) = &self.live {
            l.hub()
                .stop
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        self.server.stop();
        self.events.stop();
        if let Some(l) = self.live {
            l.stop();
        }
    }
}
