//! Exit codes, in one place: what a failed command tells a script.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | error: the command failed or was refused (not found, conflict, invalid request, I/O error, bad configuration, bad input); the message says which |
//! | 2 | usage: the command line is wrong (unknown flag, missing or contradictory arguments) |
//! | 3 | the footage drive is unavailable (gone, read-only, not writable): fix the drive, then try again |
//! | 4 | busy: the running recorder did not answer in time: try again |
//!
//! The README's "Exit codes" lists the same. It owns only the mapping; the kinds come from
//! the footage core ([`ErrorKind`]).

use argh::TopLevelCommand;

use crate::storage::error::{ErrorKind, FootageError};

pub const ERROR: i32 = 1;
pub const USAGE: i32 = 2;
pub const UNAVAILABLE: i32 = 3;
pub const BUSY: i32 = 4;

/// A command line that cannot be right (exit code [`USAGE`]).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code of a command that failed with `e` (the first typed error in its chain).
pub fn code_of(e: &anyhow::Error) -> i32 {
    for cause in e.chain() {
        if cause.is::<UsageError>() {
            return USAGE;
        }
        if let Some(f) = cause.downcast_ref::<FootageError>() {
            return code_of_kind(f.kind);
        }
    }
    ERROR
}

fn code_of_kind(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::NotFound | ErrorKind::Conflict | ErrorKind::Invalid | ErrorKind::Io => ERROR,
        ErrorKind::Unavailable => UNAVAILABLE,
        ErrorKind::Busy => BUSY,
    }
}

/// Parse the command line like `argh::from_env`, but exit with [`USAGE`] on a bad one.
pub fn parse_args<T: TopLevelCommand>() -> T {
    let strings: Vec<String> = std::env::args_os()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let name = strings
        .first()
        .and_then(|s| std::path::Path::new(s).file_name())
        .map_or_else(
            || "dashcam".to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
    let args: Vec<&str> = strings.iter().skip(1).map(String::as_str).collect();
    T::from_args(&[name.as_str()], &args).unwrap_or_else(|early| match early.status {
        Ok(()) => {
            println!("{}", early.output);
            std::process::exit(0)
        }
        Err(()) => {
            eprintln!("{}\nRun {name} --help for more information.", early.output);
            std::process::exit(USAGE)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn kinds_map_to_codes() {
        let code = |k| code_of(&FootageError::new(k, "x").into());
        assert_eq!(code(ErrorKind::NotFound), ERROR);
        assert_eq!(code(ErrorKind::Conflict), ERROR);
        assert_eq!(code(ErrorKind::Invalid), ERROR);
        assert_eq!(code(ErrorKind::Io), ERROR);
        assert_eq!(code(ErrorKind::Unavailable), UNAVAILABLE);
        assert_eq!(code(ErrorKind::Busy), BUSY);
        // Through context, and for untyped errors.
        let wrapped: anyhow::Result<()> = Err(FootageError::busy("late")).context("--from");
        assert_eq!(code_of(&wrapped.expect_err("err")), BUSY);
        assert_eq!(code_of(&UsageError("both".into()).into()), USAGE);
        assert_eq!(code_of(&anyhow::anyhow!("other")), ERROR);
    }
}
