//! A real MQTT broker for the tests: Debian's `mosquitto` on a free loopback port, with
//! persistence (so a subscriber's session and retained messages survive a SIGKILL of the
//! broker), optional password file; and a real subscriber (`mosquitto_sub`) whose lines
//! are collected as they come.
//!
//! Include with `#[path = "common/broker.rs"] mod broker;` beside `mod common;`.
#![allow(dead_code)] // each test uses part of it

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Whether mosquitto and its clients are installed (scripts/test.sh installs them).
pub fn available() -> bool {
    [
        "mosquitto",
        "mosquitto_sub",
        "mosquitto_pub",
        "mosquitto_passwd",
    ]
    .iter()
    .all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t} || test -x /usr/sbin/{t}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn mosquitto_bin() -> String {
    if Path::new("/usr/sbin/mosquitto").exists() {
        "/usr/sbin/mosquitto".into()
    } else {
        "mosquitto".into()
    }
}

pub struct Broker {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Broker {
    /// Start a broker keeping its files in `dir`; `users`: `(name, password)` pairs
    /// (none: anonymous clients allowed).
    pub fn start(dir: &Path, users: &[(&str, &str)]) -> Broker {
        std::fs::create_dir_all(dir).expect("broker dir");
        let port = free_port();
        let mut conf = format!(
            "listener {port} 127.0.0.1\npersistence true\npersistence_location {}/\nautosave_interval 1\nlog_dest stderr\n",
            dir.display()
        );
        // As root, mosquitto would switch to its own user, which cannot write `dir`.
        if is_root() {
            conf.push_str("user root\n");
        }
        if users.is_empty() {
            conf.push_str("allow_anonymous true\n");
        } else {
            let pw = dir.join("passwd");
            for (i, (u, p)) in users.iter().enumerate() {
                let mut cmd = Command::new("mosquitto_passwd");
                if i == 0 {
                    cmd.arg("-c");
                }
                let st = cmd
                    .arg("-b")
                    .arg(&pw)
                    .arg(u)
                    .arg(p)
                    .status()
                    .expect("mosquitto_passwd");
                assert!(st.success(), "mosquitto_passwd failed");
            }
            conf.push_str(&format!(
                "allow_anonymous false\npassword_file {}\n",
                pw.display()
            ));
        }
        std::fs::write(dir.join("mosquitto.conf"), conf).expect("conf");
        let mut b = Broker {
            port,
            dir: dir.to_path_buf(),
            child: None,
        };
        b.restart();
        b
    }

    /// A broker with a TLS listener only (certificate and key in PEM).
    pub fn start_tls(dir: &Path, ca: &Path, cert: &Path, key: &Path) -> Broker {
        std::fs::create_dir_all(dir).expect("broker dir");
        let port = free_port();
        let mut conf = format!(
            "listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nallow_anonymous true\nlog_dest stderr\n",
            ca.display(),
            cert.display(),
            key.display()
        );
        if is_root() {
            conf.push_str("user root\n");
        }
        std::fs::write(dir.join("mosquitto.conf"), conf).expect("conf");
        let mut b = Broker {
            port,
            dir: dir.to_path_buf(),
            child: None,
        };
        b.restart();
        b
    }

    /// (Re)start on the same port and files.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("broker.log"))
            .expect("log");
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL the broker (no clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }

    /// A persistent-session subscriber to `topic` at QoS 1, printing `RETAIN TOPIC PAYLOAD`.
    pub fn subscribe(&self, topic: &str, id: &str) -> Subscriber {
        let mut child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-t", topic, "-q", "1", "-c", "-i", id, "-F", "%r %t %p"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("stdout");
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(out).lines().map_while(Result::ok) {
                    lines.lock().expect("lines").push(l);
                }
            });
        }
        Subscriber { child, lines }
    }

    /// The retained message of `topic` now, read by a fresh client.
    pub fn retained(&self, topic: &str) -> Option<String> {
        let out = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-t", topic, "-C", "1", "-W", "3", "--retained-only"])
            .output()
            .expect("mosquitto_sub");
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (!s.is_empty()).then_some(s)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub struct Subscriber {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

/// One message as the subscriber printed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Msg {
    pub retained: bool,
    pub topic: String,
    pub payload: String,
}

impl Subscriber {
    pub fn messages(&self) -> Vec<Msg> {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .filter_map(|l| {
                let (r, rest) = l.split_once(' ')?;
                let (t, p) = rest.split_once(' ').unwrap_or((rest, ""));
                Some(Msg {
                    retained: r == "1",
                    topic: t.to_string(),
                    payload: p.to_string(),
                })
            })
            .collect()
    }

    /// Wait until `f` holds for the messages so far.
    pub fn wait_for(&self, limit: Duration, mut f: impl FnMut(&[Msg]) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if f(&self.messages()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
