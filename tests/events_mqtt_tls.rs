//! `mqtts://` against mosquitto with a TLS listener and a certificate authority made here
//! by openssl: the broker's certificate is checked against `mqtt.ca_file`; a broker whose
//! certificate that authority did not sign is refused with a clear error. Only in a build
//! with the cargo feature `mqtt-tls` (`cargo test --features mqtt-tls --test
//! events_mqtt_tls`); without it, `mqtts://` is a configuration error (checked here too).

#[path = "common/broker.rs"]
mod broker;
mod common;

#[cfg(feature = "mqtt-tls")]
use std::path::Path;
#[cfg(feature = "mqtt-tls")]
use std::process::Command;

use common::*;

#[cfg(feature = "mqtt-tls")]
fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        text(&out.stderr)
    );
}

#[cfg(feature = "mqtt-tls")]
/// A CA and a server certificate for `localhost` signed by it, in `dir`.
fn make_pki(dir: &Path, name: &str) {
    std::fs::create_dir_all(dir).expect("pki dir");
    let ca = format!("{name}-ca");
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={ca}"),
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
        ],
        dir,
    );
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
        dir,
    );
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost\n").expect("ext");
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
        dir,
    );
}

#[test]
fn mqtts_without_the_feature_is_a_configuration_error() {
    if cfg!(feature = "mqtt-tls") {
        return;
    }
    let tmp = tmpdir("mqtts-config");
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "[mqtt]\nurl = \"mqtts://broker.lan\"\n").expect("config");
    let mut cmd = dashcam();
    cmd.arg("check-config").arg(&cfg);
    let out = run_to_end(cmd, scaled(30.0));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("mqtt.url") && err.contains("mqtt-tls"),
        "{err}"
    );
    assert!(err.contains("line 2"), "{err}");
}

#[cfg(feature = "mqtt-tls")]
#[test]
fn mqtts_checks_the_broker_certificate() {
    if !broker::available() {
        eprintln!("mosquitto not installed: skipped");
        return;
    }
    let tmp = tmpdir("mqtts");
    let pki = tmp.path().join("pki");
    make_pki(&pki, "good");
    // Another authority, which did not sign the broker's certificate.
    make_pki(&tmp.path().join("other"), "other");
    let broker = broker::Broker::start_tls(
        &tmp.path().join("broker"),
        &pki.join("good-ca.pem"),
        &pki.join("server.pem"),
        &pki.join("server.key"),
    );
    let run = |ca: &Path, tag: &str| {
        let cfg = tmp.path().join(format!("{tag}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[mqtt]\nurl = \"mqtts://localhost:{}\"\nca_file = \"{}\"\nclient_id = \"dc-{tag}\"\n",
                broker.port,
                ca.display()
            ),
        )
        .expect("config");
        let mut cmd = dashcam();
        cmd.arg("run")
            .arg("--source")
            .arg(format!("file:{}", input("headers_once.h264").display()))
            .arg("--fast")
            .arg("--dir")
            .arg(tmp.path().join(tag))
            .arg("--config")
            .arg(&cfg);
        let out = run_to_end(cmd, scaled(60.0));
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stderr)
    };
    let ok = run(&pki.join("good-ca.pem"), "good");
    assert!(ok.contains("MQTT: connected to localhost"), "{ok}");
    assert!(ok.contains("status offline"), "{ok}");
    let bad = run(&tmp.path().join("other").join("other-ca.pem"), "bad");
    assert!(bad.contains("TLS handshake with localhost"), "{bad}");
    assert!(!bad.contains("MQTT: connected"), "{bad}");
}
