//! Running the configured shutdown command (e.g. `systemctl poweroff`).
//!
//! It owns spawning it and reporting how it ended. It never decides when: that is the
//! caller's (a long press, or the ignition off for `shutdown_delay`), and it never runs a
//! shell: the command is a program path and its arguments.

use std::process::{Command, Stdio};

/// Run `argv` to completion; the result in words for the log and STATUS=.
pub fn run_shutdown_command(argv: &[String]) -> Result<String, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("no shutdown command configured".into());
    };
    log::warn!("running the shutdown command: {}", argv.join(" "));
    let out = Command::new(program)
        .args(args)
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(format!("{program} exited 0"))
    } else {
        Err(format!(
            "{program} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_reports() {
        assert!(run_shutdown_command(&[]).is_err());
        assert!(run_shutdown_command(&["/bin/true".into()]).is_ok());
        let e = run_shutdown_command(&["/bin/false".into()]).expect_err("fails");
        assert!(e.contains("/bin/false"), "{e}");
        let e = run_shutdown_command(&["/nonexistent/x".into()]).expect_err("missing");
        assert!(e.contains("cannot run"), "{e}");
    }
}
