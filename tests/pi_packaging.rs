//! What ships around the binary on a Pi, checked without building it: the systemd unit,
//! the Debian package metadata and maintainer scripts, the default configuration, and the
//! Yocto layer (which cannot be built here: its structure and crate list are checked).
//! Building both .debs, installing the amd64 one and `systemd-analyze verify` are in
//! scripts/pi/ci.sh.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use dashcam::config::Config;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

/// `Key=value` assignments of a systemd unit section (comments dropped).
fn unit_values(unit: &str, section: &str, key: &str) -> Vec<String> {
    let mut current = String::new();
    let mut out = Vec::new();
    for line in unit.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            current = s.to_string();
            continue;
        }
        if current != section {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            if k.trim() == key {
                out.push(v.trim().to_string());
            }
        }
    }
    out
}

fn one(unit: &str, section: &str, key: &str) -> String {
    let v = unit_values(unit, section, key);
    assert_eq!(
        v.len(),
        1,
        "[{section}] {key}= set {} times: {v:?}",
        v.len()
    );
    v[0].clone()
}

#[test]
fn unit_is_notify_with_watchdog_restart_mount_dependency_and_hardening() {
    let unit = read("systemd/dashcam.service");
    assert_eq!(one(&unit, "Service", "Type"), "notify");
    assert_eq!(one(&unit, "Service", "Restart"), "always");
    let wd: u32 = one(&unit, "Service", "WatchdogSec")
        .parse()
        .expect("WatchdogSec in seconds");
    // The recorder judges itself stalled after 5 s at least (src/service/health.rs), and
    // pings at a third of the timeout: the timeout must leave room for both.
    assert!((10..=120).contains(&wd), "WatchdogSec={wd}");
    assert_eq!(one(&unit, "Service", "ProtectSystem"), "strict");
    assert_eq!(one(&unit, "Service", "NoNewPrivileges"), "yes");
    assert_eq!(one(&unit, "Service", "PrivateTmp"), "yes");
    assert_eq!(one(&unit, "Service", "DevicePolicy"), "closed");
    assert_eq!(one(&unit, "Service", "User"), "dashcam");
    let devices = unit_values(&unit, "Service", "DeviceAllow");
    for d in ["char-video4linux rw", "char-gpiochip rw"] {
        assert!(devices.iter().any(|x| x == d), "DeviceAllow={d} missing");
    }
    for d in &devices {
        let name = d.split_whitespace().next().unwrap_or("");
        assert!(
            [
                "char-video4linux",
                "char-media",
                "char-dma_heap",
                "char-vchiq",
                "char-gpiochip"
            ]
            .contains(&name),
            "DeviceAllow={d}: only video and GPIO devices"
        );
    }
    let groups = one(&unit, "Service", "SupplementaryGroups");
    assert!(
        groups.contains("video") && groups.contains("gpio"),
        "{groups}"
    );
    assert_eq!(
        one(&unit, "Service", "ExecStart"),
        "/usr/lib/dashcam/dashcam-start"
    );
    assert_eq!(one(&unit, "Install", "WantedBy"), "multi-user.target");

    // The footage directory of the shipped configuration is the one the unit waits for
    // and may write.
    let cfg = Config::from_toml(&read("packaging/dashcam.toml"), "packaging/dashcam.toml")
        .expect("the shipped configuration is valid");
    let dir = cfg.dir.display().to_string();
    assert_eq!(one(&unit, "Unit", "RequiresMountsFor"), dir);
    assert_eq!(one(&unit, "Service", "ReadWritePaths"), dir);
}

#[test]
fn shipped_configuration_is_valid_commented_and_gpio_is_off() {
    let text = read("packaging/dashcam.toml");
    let cfg = Config::from_toml(&text, "packaging/dashcam.toml").expect("valid");
    assert!(!cfg.gpio.enabled, "GPIO must be off by default");
    assert_eq!(
        cfg.source, "rpicam",
        "under systemd dashcam starts and supervises rpicam-vid itself"
    );
    // Commented: more comment lines than settings, and each GPIO key shown.
    let comments = text
        .lines()
        .filter(|l| l.trim_start().starts_with('#'))
        .count();
    let settings = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
        .count();
    assert!(
        comments > 3 * settings,
        "{comments} comment lines, {settings} settings"
    );
    for key in [
        "button_line",
        "led_line",
        "ignition_line",
        "long_press_seconds",
        "stop_delay",
        "shutdown_delay",
        "shutdown_command",
        "debounce_ms",
    ] {
        assert!(text.contains(&format!("#{key} =")), "{key} not shown");
    }
    // Uncommenting the GPIO example gives a valid configuration too.
    let enabled: String = text
        .lines()
        .map(|l| {
            let t = l.trim_start();
            let uncommented = t
                .strip_prefix('#')
                .filter(|r| r.split('=').next().is_some_and(|k| !k.trim().contains(' ')))
                .filter(|r| r.contains('='));
            match uncommented {
                Some(r) => r.split(" #").next().unwrap_or(r).to_string(),
                None => l.replace("enabled = false", "enabled = true"),
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let cfg = Config::from_toml(&enabled, "uncommented").expect("uncommented example valid");
    assert!(cfg.gpio.enabled);
    assert_eq!(cfg.gpio.button_line, Some(17));
    assert_eq!(
        cfg.gpio.shutdown_command,
        vec!["/usr/bin/systemctl".to_string(), "poweroff".to_string()]
    );
}

#[test]
fn debian_package_metadata_assets_exist_and_scripts_create_the_user() {
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).expect("Cargo.toml");
    let deb = manifest
        .get("package")
        .and_then(|p| p.get("metadata"))
        .and_then(|m| m.get("deb"))
        .expect("[package.metadata.deb]");
    let assets = deb
        .get("assets")
        .and_then(|a| a.as_array())
        .expect("assets");
    let mut dests = BTreeSet::new();
    for a in assets {
        let a = a.as_array().expect("asset triple");
        let src = a[0].as_str().expect("source");
        let dest = a[1].as_str().expect("dest");
        if !src.starts_with("target/") {
            assert!(repo().join(src).is_file(), "asset {src} missing");
        }
        let full = if dest.ends_with('/') {
            format!(
                "/{dest}{}",
                Path::new(src).file_name().unwrap().to_string_lossy()
            )
        } else {
            format!("/{dest}")
        };
        dests.insert(full);
    }
    for want in [
        "/usr/bin/dashcam",
        "/lib/systemd/system/dashcam.service",
        "/etc/dashcam/dashcam.toml",
        "/usr/lib/dashcam/dashcam-start",
        "/etc/default/dashcam",
    ] {
        assert!(dests.contains(want), "{want} not installed: {dests:?}");
    }
    for c in deb
        .get("conf-files")
        .and_then(|c| c.as_array())
        .expect("conf-files")
    {
        let c = c.as_str().expect("path");
        assert!(dests.contains(c), "conf-file {c} is not an asset");
    }
    let scripts = deb
        .get("maintainer-scripts")
        .and_then(|s| s.as_str())
        .expect("maintainer-scripts");
    let postinst = read(&format!("{scripts}postinst"));
    assert!(
        postinst.contains("adduser --system"),
        "postinst creates no system user"
    );
    assert!(postinst.contains("adduser --quiet dashcam video"));
    assert!(postinst.contains("adduser --quiet dashcam gpio"));
    assert!(postinst.contains("deb-systemd-helper enable dashcam.service"));
    use std::os::unix::fs::PermissionsExt;
    for s in ["postinst", "prerm", "postrm"] {
        let p = repo().join(scripts).join(s);
        let mode = fs::metadata(&p).expect("script").permissions().mode();
        assert!(mode & 0o111 != 0, "{s} is not executable");
        let st = std::process::Command::new("sh")
            .arg("-n")
            .arg(&p)
            .status()
            .expect("sh -n");
        assert!(st.success(), "{s}: sh -n fails");
    }
    let start = repo().join("packaging/dashcam-start");
    assert!(
        fs::metadata(&start)
            .expect("dashcam-start")
            .permissions()
            .mode()
            & 0o111
            != 0,
        "dashcam-start is not executable"
    );
    assert!(std::process::Command::new("sh")
        .arg("-n")
        .arg(&start)
        .status()
        .expect("sh -n")
        .success());
    // dashcam is the unit's main process (it supervises the camera itself).
    assert!(read("packaging/dashcam-start").contains("exec /usr/bin/dashcam run"));
    assert_eq!(
        one(&read("systemd/dashcam.service"), "Service", "NotifyAccess"),
        "main"
    );
}

const LAYER: &str = "yocto-layer/meta-dashcam";
const RECIPE_DIR: &str = "yocto-layer/meta-dashcam/recipes-multimedia/dashcam";

#[test]
fn yocto_layer_conf_declares_the_collection() {
    let conf = read(&format!("{LAYER}/conf/layer.conf"));
    for needle in [
        "BBPATH .= \":${LAYERDIR}\"",
        "BBFILES += \"${LAYERDIR}/recipes-*/*/*.bb",
        "BBFILE_COLLECTIONS += \"dashcam\"",
        "BBFILE_PATTERN_dashcam = \"^${LAYERDIR}/\"",
        "BBFILE_PRIORITY_dashcam = ",
        "LAYERDEPENDS_dashcam = \"core\"",
        "LAYERSERIES_COMPAT_dashcam = \"",
    ] {
        assert!(conf.contains(needle), "layer.conf lacks {needle}");
    }
    let readme = read("yocto-layer/README.md");
    assert!(
        readme.contains("has not been built"),
        "the layer's README must say plainly that it was not built"
    );
}

#[test]
fn yocto_recipe_uses_cargo_and_systemd_enables_the_unit_and_installs_existing_files() {
    let recipes: Vec<_> = fs::read_dir(repo().join(RECIPE_DIR))
        .expect("recipe dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bb"))
        .collect();
    assert_eq!(recipes.len(), 1, "{recipes:?}");
    // The recipe's version is the crate's.
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(recipes[0], format!("dashcam_{version}.bb"));
    let bb = read(&format!("{RECIPE_DIR}/{}", recipes[0]));
    let inherits: BTreeSet<&str> = bb
        .lines()
        .filter_map(|l| l.trim().strip_prefix("inherit "))
        .flat_map(str::split_whitespace)
        .collect();
    for class in ["cargo", "systemd", "useradd"] {
        assert!(inherits.contains(class), "recipe does not inherit {class}");
    }
    for needle in [
        "require dashcam-crates.inc",
        "SYSTEMD_SERVICE:${PN} = \"dashcam.service\"",
        "SYSTEMD_AUTO_ENABLE:${PN} = \"enable\"",
        "--groups video,gpio dashcam",
        "LIC_FILES_CHKSUM",
        "CONFFILES:${PN}",
    ] {
        assert!(bb.contains(needle), "recipe lacks {needle}");
    }
    // Every ${S}/path the recipe installs exists in the repository.
    let mut installed = 0;
    for part in bb.split("${S}/").skip(1) {
        let path: String = part.chars().take_while(|c| !c.is_whitespace()).collect();
        assert!(
            repo().join(&path).is_file(),
            "recipe installs missing {path}"
        );
        installed += 1;
    }
    assert!(installed >= 6, "only {installed} files installed");
}

#[test]
fn yocto_crate_list_matches_cargo_lock() {
    let lock: toml::Value = toml::from_str(&read("Cargo.lock")).expect("Cargo.lock");
    let mut want = BTreeSet::new();
    for p in lock
        .get("package")
        .and_then(|p| p.as_array())
        .expect("packages")
    {
        let field = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("");
        if field("source").starts_with("registry+") {
            want.insert((
                field("name").to_string(),
                field("version").to_string(),
                field("checksum").to_string(),
            ));
        }
    }
    assert!(want.len() > 10);
    let inc = read(&format!("{RECIPE_DIR}/dashcam-crates.inc"));
    let mut uris = BTreeSet::new();
    let mut sums = BTreeSet::new();
    for line in inc.lines() {
        let t = line.trim().trim_end_matches('\\').trim();
        if let Some(rest) = t.strip_prefix("crate://crates.io/") {
            let (n, v) = rest.split_once('/').expect("name/version");
            uris.insert((n.to_string(), v.to_string()));
        } else if let Some(rest) = t.strip_prefix("SRC_URI[") {
            let (key, val) = rest.split_once("] = ").expect("checksum line");
            let key = key.strip_suffix(".sha256sum").expect("sha256sum");
            sums.insert((key.to_string(), val.trim_matches('"').to_string()));
        }
    }
    let want_uris: BTreeSet<_> = want
        .iter()
        .map(|(n, v, _)| (n.clone(), v.clone()))
        .collect();
    let want_sums: BTreeSet<_> = want
        .iter()
        .map(|(n, v, c)| (format!("{n}-{v}"), c.clone()))
        .collect();
    assert_eq!(
        uris, want_uris,
        "dashcam-crates.inc is out of date: run scripts/pi/yocto-crates.py"
    );
    assert_eq!(
        sums, want_sums,
        "dashcam-crates.inc checksums differ from Cargo.lock: run scripts/pi/yocto-crates.py"
    );
}
