//! The storage commands: `dashcam lock | unlock | clip | recover`.
//!
//! When a recorder runs on the directory (it holds the directory lock), lock and unlock go
//! to its storage keeper as request files; otherwise they are done here with a one-off
//! keeper that checks the locked quota but deletes nothing else. Clips are cut here
//! directly (the async variant asks the running recorder to cut once the segment in
//! progress has closed). It owns argument handling and messages only.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use argh::FromArgs;

use crate::config::Config;
use crate::disk::layout::Layout;
use crate::storage::clip::{self, ClipRequest};
use crate::storage::keeper::{self, KeeperSettings};
use crate::storage::recovery;
use crate::storage::requests::{self, Reply, Request};

/// How long a command waits for the running recorder's answer.
const ANSWER_WAIT: Duration = Duration::from_secs(15);

/// Lock segments out of loop deletion (into locked/).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "lock")]
pub struct LockArgs {
    /// event lock: the segment being recorded, the previous one, and the next one when the
    /// event is in the last post_event_seconds (needs a running recorder)
    #[argh(switch)]
    pub now: bool,
    /// segment to lock: file name, stem or sequence number
    #[argh(positional)]
    pub name: Option<String>,
    /// footage directory (default: from the config, else ./footage)
    #[argh(option)]
    pub dir: Option<PathBuf>,
    /// config file
    #[argh(option)]
    pub config: Option<PathBuf>,
}

/// Unlock a segment: back into the loop (deleted oldest first again).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "unlock")]
pub struct UnlockArgs {
    /// segment to unlock: file name, stem or sequence number
    #[argh(positional)]
    pub name: String,
    /// footage directory (default: from the config, else ./footage)
    #[argh(option)]
    pub dir: Option<PathBuf>,
    /// config file
    #[argh(option)]
    pub config: Option<PathBuf>,
}

/// Cut one file covering a time range (remux, no re-encode) into saved/.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "clip")]
pub struct ClipArgs {
    /// start, local time YYYY-MM-DDTHH:MM:SS (the clip starts at the keyframe at or before)
    #[argh(option)]
    pub from: String,
    /// end, local time YYYY-MM-DDTHH:MM:SS (the clip ends at or after it)
    #[argh(option)]
    pub to: String,
    /// output file (default saved/clip_FROM_TO.mp4 or .avi)
    #[argh(option, short = 'o')]
    pub output: Option<PathBuf>,
    /// a string stored in the clip's .json
    #[argh(option)]
    pub metadata: Option<String>,
    /// return at once; the running recorder cuts the clip when the segment in progress
    /// has closed
    #[argh(switch, long = "async")]
    pub asynchronous: bool,
    /// footage directory (default: from the config, else ./footage)
    #[argh(option)]
    pub dir: Option<PathBuf>,
    /// config file
    #[argh(option)]
    pub config: Option<PathBuf>,
}

/// Repair the footage directory after a crash (what `run` does at start).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "recover")]
pub struct RecoverArgs {
    /// footage directory (default: from the config, else ./footage)
    #[argh(option)]
    pub dir: Option<PathBuf>,
    /// config file
    #[argh(option)]
    pub config: Option<PathBuf>,
}

fn setup(dir: Option<PathBuf>, config: Option<PathBuf>) -> Result<(Config, Layout)> {
    let mut config = Config::load(config.as_deref())?;
    if let Some(d) = dir {
        config.dir = d;
    }
    if !config.dir.is_dir() {
        bail!("footage directory {} does not exist", config.dir.display());
    }
    let layout = Layout::new(&config.dir);
    Ok((config, layout))
}

fn print_reply(reply: Reply) -> i32 {
    if reply.ok {
        println!("{}", reply.message);
        0
    } else {
        eprintln!("dashcam: error: {}", reply.message);
        1
    }
}

/// Ask the running recorder, or do it here with a one-off keeper.
fn keeper_request(config: &Config, layout: &Layout, request: Request) -> Result<i32> {
    if requests::recorder_running(layout) {
        let reply = requests::submit(layout, &request, ANSWER_WAIT)?;
        return Ok(print_reply(reply));
    }
    let settings = KeeperSettings {
        layout: layout.clone(),
        quota: crate::app::pipeline::quota_settings(config),
        post_event: Duration::from_secs_f64(config.post_event_seconds),
        enforce: false,
    };
    let (link, handle) =
        keeper::spawn(settings, None).context("cannot start the storage keeper")?;
    let reply = link.request(request, ANSWER_WAIT);
    link.stop();
    let _ = handle.join();
    Ok(print_reply(reply))
}

pub fn lock(a: LockArgs) -> Result<i32> {
    let (config, layout) = setup(a.dir, a.config)?;
    let request = match (a.now, a.name) {
        (true, None) => {
            if !requests::recorder_running(&layout) {
                bail!(
                    "no recorder is running on {}: `lock --now` locks around the segment being recorded; name a segment instead (`dashcam lock NAME`)",
                    layout.root.display()
                );
            }
            Request::LockNow
        }
        (false, Some(name)) => Request::Lock { name },
        (true, Some(_)) => bail!("give either --now or a segment name, not both"),
        (false, None) => bail!("give --now (event lock) or a segment name"),
    };
    keeper_request(&config, &layout, request)
}

pub fn unlock(a: UnlockArgs) -> Result<i32> {
    let (config, layout) = setup(a.dir, a.config)?;
    keeper_request(&config, &layout, Request::Unlock { name: a.name })
}

pub fn clip(a: ClipArgs) -> Result<i32> {
    let (_config, layout) = setup(a.dir, a.config)?;
    let from = clip::parse_local(&a.from).context("--from")?;
    let to = clip::parse_local(&a.to).context("--to")?;
    if from > to {
        bail!("--from {} is after --to {}", a.from, a.to);
    }
    if a.asynchronous && requests::recorder_running(&layout) {
        let output = match a.output {
            Some(p) => Some(
                std::path::absolute(&p)
                    .with_context(|| format!("output {}", p.display()))?
                    .display()
                    .to_string(),
            ),
            None => None,
        };
        let reply = requests::submit(
            &layout,
            &Request::Clip {
                from: a.from,
                to: a.to,
                output,
                metadata: a.metadata,
            },
            ANSWER_WAIT,
        )?;
        if reply.ok {
            for f in &reply.files {
                println!("{f}");
            }
            eprintln!("{}", reply.message);
            return Ok(0);
        }
        return Ok(print_reply(reply));
    }
    let info = clip::make_clip(
        &layout,
        &ClipRequest {
            from,
            to,
            output: a.output,
            metadata: a.metadata,
        },
        None,
    )?;
    println!("{}", info.path.display());
    eprintln!(
        "{} frames, {:.3} s from {} ({} segment(s)), starting {}",
        info.frames,
        info.duration_s,
        info.segments.join(", "),
        info.segments.len(),
        info.start_wall
    );
    Ok(0)
}

pub fn recover(a: RecoverArgs) -> Result<i32> {
    let (_config, layout) = setup(a.dir, a.config)?;
    let Some(_lock) = requests::DirLock::try_acquire(&layout)
        .with_context(|| format!("cannot lock {}", layout.lock_file().display()))?
    else {
        bail!(
            "a recorder is running on {}: it recovered the directory when it started",
            layout.root.display()
        );
    };
    let report = recovery::recover(&layout)?;
    println!("{}", report.summary());
    for line in report
        .repaired
        .iter()
        .map(|r| format!("repaired {r}"))
        .chain(report.corrupt.iter().map(|c| format!("to corrupt/: {c}")))
        .chain(report.orphans.iter().cloned())
    {
        println!("  {line}");
    }
    Ok(0)
}
