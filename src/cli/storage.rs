//! The storage commands: `dashcam lock | unlock | clip | recover`.
//!
//! When a recorder runs on the directory (it holds the directory lock), lock, unlock and
//! `clip --async` go to its footage core as request files; otherwise this process takes
//! the directory lock and opens the footage core itself for the one command (no thread;
//! it checks the locked quota but deletes no loop segment). Clips without `--async` are
//! cut here directly. Errors keep their kind, which [`super::exit`] turns into the exit
//! code. It owns argument handling and messages only.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use argh::FromArgs;

use super::exit::UsageError;
use crate::app::pipeline::footage_settings;
use crate::config::Config;
use crate::disk::layout::Layout;
use crate::storage::clip::{self, ClipRequest};
use crate::storage::error::FootageError;
use crate::storage::footage::Footage;
use crate::storage::recovery;
use crate::storage::requests::{self, DirLock, Outcome, Request};

/// How long a command waits for the running recorder's answer.
const ANSWER_WAIT: Duration = Duration::from_secs(15);

/// Lock segments out of loop deletion (into locked/).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "lock")]
pub struct LockArgs {
    /// event lock: the previous segment now, the segment being written when it closes,
    /// and every following segment that starts within post_event_seconds of the event
    /// (needs a running recorder)
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

/// The configuration (with `--dir` over it) and its footage directory, which must exist.
pub(super) fn setup(dir: Option<PathBuf>, config: Option<PathBuf>) -> Result<(Config, Layout)> {
    let mut config = Config::load(config.as_deref())?;
    if let Some(d) = dir {
        config.dir = d;
    }
    let dir = &config.dir;
    if !dir.exists() {
        return Err(FootageError::not_found(format!(
            "footage directory {} does not exist",
            dir.display()
        ))
        .into());
    }
    if !dir.is_dir() {
        return Err(FootageError::invalid(format!("{} is not a directory", dir.display())).into());
    }
    let layout = Layout::new(dir);
    Ok((config, layout))
}

/// Ask the running recorder, or do it here with the footage core (holding the directory
/// lock meanwhile, so that no recorder starts in between).
fn footage_request(config: &Config, layout: &Layout, request: Request) -> Result<Outcome> {
    let lock =
        DirLock::try_acquire(layout).map_err(|e| FootageError::io(&layout.lock_file(), &e))?;
    let Some(_lock) = lock else {
        return Ok(requests::submit(layout, &request, ANSWER_WAIT)?);
    };
    if request == Request::LockNow {
        return Err(FootageError::conflict(format!(
            "no recorder is running on {}: `lock --now` locks around the segment being recorded; name a segment instead (`dashcam lock NAME`)",
            layout.root.display()
        ))
        .into());
    }
    let mut footage = Footage::open(footage_settings(config, false));
    Ok(footage.handle(request, SystemTime::now())?)
}

pub fn lock(a: LockArgs) -> Result<i32> {
    let request = match (a.now, a.name) {
        (true, None) => Request::LockNow,
        (false, Some(name)) => Request::Lock { name },
        (true, Some(_)) => {
            return Err(UsageError("give either --now or a segment name, not both".into()).into())
        }
        (false, None) => {
            return Err(UsageError("give --now (event lock) or a segment name".into()).into())
        }
    };
    let (config, layout) = setup(a.dir, a.config)?;
    let outcome = footage_request(&config, &layout, request)?;
    println!("{}", outcome.message);
    Ok(0)
}

pub fn unlock(a: UnlockArgs) -> Result<i32> {
    let (config, layout) = setup(a.dir, a.config)?;
    let outcome = footage_request(&config, &layout, Request::Unlock { name: a.name })?;
    println!("{}", outcome.message);
    Ok(0)
}

pub fn clip(a: ClipArgs) -> Result<i32> {
    let (config, layout) = setup(a.dir, a.config)?;
    let from = clip::parse_local(&a.from).context("--from")?;
    let to = clip::parse_local(&a.to).context("--to")?;
    clip::check_range(from, to)?;
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
        let outcome = requests::submit(
            &layout,
            &Request::Clip {
                from: a.from,
                to: a.to,
                output,
                metadata: a.metadata,
            },
            ANSWER_WAIT,
        )?;
        for f in &outcome.files {
            println!("{f}");
        }
        eprintln!("{}", outcome.message);
        return Ok(0);
    }
    let footage = Footage::open(footage_settings(&config, false));
    let info = footage.cut_clip(ClipRequest {
        from,
        to,
        output: a.output,
        metadata: a.metadata,
    })?;
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
    let lock =
        DirLock::try_acquire(&layout).map_err(|e| FootageError::io(&layout.lock_file(), &e))?;
    let Some(_lock) = lock else {
        return Err(FootageError::conflict(format!(
            "a recorder is running on {}: it recovered the directory when it started",
            layout.root.display()
        ))
        .into());
    };
    let report = recovery::recover(&layout).map_err(FootageError::from)?;
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
