//! The command line: `dashcam run | list | check-config | lock | unlock | clip | recover |
//! password`.
//!
//! It owns argument parsing (argh), merging flags over the config file, logging set-up and
//! turning errors into messages and exit codes ([`exit`]). It holds no recording logic.

use std::path::PathBuf;

use anyhow::Result;
use argh::FromArgs;

use crate::config::Config;

mod exit;
mod password;
mod storage;

use crate::storage::catalog::{self, Folder};

/// dashcam: a crash-safe rolling recorder for the Raspberry Pi Zero.
#[derive(FromArgs, Debug)]
pub struct Args {
    #[argh(subcommand)]
    pub command: Command,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    Run(RunArgs),
    List(ListArgs),
    CheckConfig(CheckConfigArgs),
    Lock(storage::LockArgs),
    Unlock(storage::UnlockArgs),
    Clip(storage::ClipArgs),
    Recover(storage::RecoverArgs),
    Password(password::PasswordArgs),
    Cameras(CamerasArgs),
}

/// List the cameras: V4L2 devices with their formats, sizes and rates, and the Pi camera.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "cameras")]
pub struct CamerasArgs {}

/// Record: read the source and write rolling segment files.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "run")]
pub struct RunArgs {
    /// config file (default /etc/dashcam/dashcam.toml when present)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// source: "test", "file:PATH" (.h264/.264 or .mjpeg/.mjpg), "-" for standard input,
    /// "rpicam", "v4l2:/dev/videoN" or "rtsp://[user@]host/path"
    #[argh(option)]
    pub source: Option<String>,
    /// footage directory (default ./footage)
    #[argh(option)]
    pub dir: Option<PathBuf>,
    /// target segment length in seconds (default 60)
    #[argh(option)]
    pub segment_seconds: Option<u32>,
    /// read file input as fast as possible instead of at its native rate
    #[argh(switch)]
    pub fast: bool,
    /// frame rate of input without timing information (default 30)
    #[argh(option)]
    pub fps: Option<u32>,
    /// seconds between a frame's capture and its fdatasync at most (default 1)
    #[argh(option)]
    pub sync_interval: Option<f64>,
    /// seconds without a frame before the segment is closed (default 10)
    #[argh(option)]
    pub idle_timeout: Option<f64>,
    /// footage kept at most, e.g. 28G (default: no limit but min_free)
    #[argh(option)]
    pub max_size: Option<String>,
    /// free space kept on the drive, e.g. 500M or 5% (default 5% or 500M, the larger)
    #[argh(option)]
    pub min_free: Option<String>,
}

/// List the segments in the footage directory with their metadata.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
pub struct ListArgs {
    /// footage directory (default: from the config, else ./footage)
    #[argh(option)]
    pub dir: Option<PathBuf>,
    /// config file
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// print JSON
    #[argh(switch)]
    pub json: bool,
}

/// Validate a configuration file and print the effective settings.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "check-config")]
pub struct CheckConfigArgs {
    /// the TOML file to check
    #[argh(positional)]
    pub file: PathBuf,
}

/// Entry point; returns the process exit code.
pub fn main() -> i32 {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args: Args = exit::parse_args();
    let result = match args.command {
        Command::Run(a) => run(a),
        Command::List(a) => list(a).map(|()| 0),
        Command::CheckConfig(a) => check_config(a).map(|()| 0),
        Command::Lock(a) => storage::lock(a),
        Command::Unlock(a) => storage::unlock(a),
        Command::Clip(a) => storage::clip(a),
        Command::Recover(a) => storage::recover(a),
        Command::Password(a) => password::password(a),
        Command::Cameras(_) => {
            print!("{}", crate::source::v4l2::list::listing());
            Ok(0)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dashcam: error: {e:#}");
            exit::code_of(&e)
        }
    }
}

fn run(a: RunArgs) -> Result<i32> {
    let mut config = Config::load(a.config.as_deref())?;
    if let Some(s) = a.source {
        config.source = s;
    }
    if let Some(d) = a.dir {
        config.dir = d;
    }
    if let Some(s) = a.segment_seconds {
        config.segment_seconds = s;
    }
    if a.fast {
        config.fast = true;
    }
    if let Some(f) = a.fps {
        config.fps = f;
    }
    if let Some(s) = a.sync_interval {
        config.sync_interval = s;
    }
    if let Some(s) = a.idle_timeout {
        config.idle_timeout = s;
    }
    if let Some(s) = a.max_size {
        config.max_size = Some(crate::config::SizeValue::Text(s));
    }
    if let Some(s) = a.min_free {
        config.min_free = Some(crate::config::SizeValue::Text(s));
    }
    config
        .validate()
        .map_err(|(key, msg)| anyhow::anyhow!("command line: {key} {msg}"))?;
    // The runs (again after a GPIO park or record off) with the web role kept throughout.
    let outcome = crate::app::session::record(&config)?;
    Ok(outcome.exit_code())
}

fn list(a: ListArgs) -> Result<()> {
    let (_config, layout) = storage::setup(a.dir, a.config)?;
    // Loop segments and locked ones, together in sequence order.
    let entries = catalog::list_segments(&layout)?;
    if a.json {
        let rows: Vec<serde_json::Value> = entries
            .iter()
            .map(|(folder, e)| {
                serde_json::json!({
                    "file": e.path.file_name().map(|n| n.to_string_lossy().into_owned()),
                    "folder": folder,
                    "sequence": e.sequence,
                    "bytes": e.bytes,
                    "metadata": e.meta,
                    "metadata_error": e.meta_error,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<35} {:>6} {:>9} {:>7} {:>12} {:>10} {:>7} {:>7}  note",
        "file", "codec", "size", "fps", "duration_s", "bytes", "frames", "dropped"
    );
    for (folder, e) in &entries {
        let mut file = e
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if *folder == Folder::Locked {
            file = format!("{}/{file}", crate::disk::layout::LOCKED);
        }
        match &e.meta {
            Some(m) => println!(
                "{:<35} {:>6} {:>9} {:>7.2} {:>12.3} {:>10} {:>7} {:>7}  {}",
                file,
                m.codec.name(),
                format!("{}x{}", m.width, m.height),
                m.fps,
                m.duration_s,
                m.bytes,
                m.frames,
                m.dropped_frames,
                if m.partial {
                    format!("partial ({:?})", m.close_reason)
                } else {
                    String::new()
                }
            ),
            None => println!(
                "{:<35} {:>6} {:>9} {:>7} {:>12} {:>10} {:>7} {:>7}  {}",
                file,
                "?",
                "?",
                "?",
                "?",
                e.bytes,
                "?",
                "?",
                e.meta_error
                    .as_deref()
                    .unwrap_or("no metadata (open, or cut by a crash)")
            ),
        }
    }
    Ok(())
}

fn check_config(a: CheckConfigArgs) -> Result<()> {
    let mut config = Config::load(Some(&a.file))?;
    config.source = crate::source::redact::redact_source(&config.source);
    println!("{}: ok", a.file.display());
    println!("{config:#?}");
    Ok(())
}
