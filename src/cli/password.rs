//! `dashcam password`: write the phone page's password hash (`[web] password_file`).
//!
//! It reads the password from the terminal without echo (twice), or one line from
//! standard input when that is not a terminal, and writes only the salted Argon2id hash,
//! atomically, readable by the owner alone. It owns the prompt and the file; the hash is
//! the web role's ([`crate::web::auth`]).

use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use argh::FromArgs;

use crate::config::Config;

/// Set the phone page's password: writes its hash to [web] password_file.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "password")]
pub struct PasswordArgs {
    /// where to write the hash (default: [web] password_file of the config)
    #[argh(option)]
    pub file: Option<PathBuf>,
    /// config file
    #[argh(option)]
    pub config: Option<PathBuf>,
}

/// Read a line from the terminal with echo off.
fn prompt_hidden(prompt: &str) -> Result<String> {
    let stdin = std::io::stdin();
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let old = rustix::termios::tcgetattr(&stdin).context("cannot read the terminal settings")?;
    let mut quiet = old.clone();
    quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
    rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet)
        .context("cannot turn the echo off")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &old);
    eprintln!();
    read.context("cannot read the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub fn password(a: PasswordArgs) -> Result<i32> {
    let file = match a.file {
        Some(f) => f,
        None => Config::load(a.config.as_deref())?
            .web
            .password_file
            .context("no --file given and [web] password_file is not set in the config")?,
    };
    let password = if std::io::stdin().is_terminal() {
        let first = prompt_hidden("New password for the phone page: ")?;
        let again = prompt_hidden("Again: ")?;
        if first != again {
            bail!("the two passwords differ; nothing written");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.chars().count() < 8 {
        bail!("the password must have at least 8 characters; nothing written");
    }
    let hash = crate::web::auth::hash_password(&password)?;
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    crate::disk::durable::write_atomic(&file, format!("{hash}\n").as_bytes())
        .with_context(|| format!("cannot write {}", file.display()))?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", file.display()))?;
    eprintln!(
        "wrote the password hash to {}; restart dashcam to use it",
        file.display()
    );
    Ok(0)
}
