//! File-system facts: capacity and free space (statvfs), whether a directory is on a mounted
//! drive, byte sizes as people write them ("28G", "500M", "5%").
//!
//! Pure queries: it never creates, writes or deletes anything.

use std::path::Path;

/// Size and free space of a file system, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsSpace {
    pub total: u64,
    /// Available to an unprivileged writer (f_bavail).
    pub avail: u64,
}

/// statvfs of the file system holding `path`.
pub fn fs_space(path: &Path) -> std::io::Result<FsSpace> {
    let st = rustix::fs::statvfs(path).map_err(std::io::Error::from)?;
    let unit = if st.f_frsize > 0 {
        st.f_frsize
    } else {
        st.f_bsize
    };
    Ok(FsSpace {
        total: st.f_blocks.saturating_mul(unit),
        avail: st.f_bavail.saturating_mul(unit),
    })
}

/// Whether `dir` (or, when it does not exist yet, its nearest existing ancestor) lies on a
/// different file system than `/`: i.e. a drive is mounted there. A bare mount-point
/// directory on the root file system (the drive did not mount) answers false.
pub fn on_mounted_drive(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(root) = std::fs::metadata("/") else {
        return false;
    };
    let mut p = Some(dir);
    while let Some(d) = p {
        if let Ok(m) = std::fs::metadata(d) {
            return m.dev() != root.dev();
        }
        p = d.parent();
    }
    false
}

/// A size limit: absolute bytes or a share of the file system.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SizeSpec {
    Bytes(u64),
    Percent(f64),
}

impl SizeSpec {
    /// Bytes on a file system of `total` bytes.
    pub fn bytes_of(self, total: u64) -> u64 {
        match self {
            SizeSpec::Bytes(b) => b,
            SizeSpec::Percent(p) => (total as f64 * p / 100.0) as u64,
        }
    }
}

/// Parse "28G", "500M", "1.5T", "4096", "64K" (powers of 1024; an optional trailing "B" or
/// "iB"), or with `allow_percent` "5%".
pub fn parse_size(text: &str, allow_percent: bool) -> Result<SizeSpec, String> {
    let t = text.trim();
    if let Some(p) = t.strip_suffix('%') {
        if !allow_percent {
            return Err(format!("{text:?}: a percentage is not allowed here"));
        }
        return match p.trim().parse::<f64>() {
            Ok(v) if (0.0..=100.0).contains(&v) => Ok(SizeSpec::Percent(v)),
            _ => Err(format!("{text:?}: expected a percentage from 0% to 100%")),
        };
    }
    let upper = t.to_ascii_uppercase();
    let number = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (digits, unit) = match number.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&number[..i], Some(c)),
        _ => (number, None),
    };
    let shift = match unit {
        None => 0,
        Some('K') => 10,
        Some('M') => 20,
        Some('G') => 30,
        Some('T') => 40,
        Some(_) => return Err(format!("{text:?}: unknown unit (use K, M, G or T)")),
    };
    match digits.trim().parse::<f64>() {
        Ok(v) if v >= 0.0 && v.is_finite() => {
            let bytes = v * (1u64 << shift) as f64;
            if bytes > u64::MAX as f64 / 2.0 {
                Err(format!("{text:?}: too large"))
            } else {
                Ok(SizeSpec::Bytes(bytes as u64))
            }
        }
        _ => Err(format!(
            "{text:?}: expected a size such as \"28G\", \"500M\" or a number of bytes"
        )),
    }
}

/// Bytes in a human form for messages ("1.5 GiB").
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("28G", false), Ok(SizeSpec::Bytes(28 << 30)));
        assert_eq!(parse_size("500M", false), Ok(SizeSpec::Bytes(500 << 20)));
        assert_eq!(parse_size("500MB", false), Ok(SizeSpec::Bytes(500 << 20)));
        assert_eq!(parse_size("1.5GiB", false), Ok(SizeSpec::Bytes(3 << 29)));
        assert_eq!(parse_size("4096", false), Ok(SizeSpec::Bytes(4096)));
        assert_eq!(parse_size("5%", true), Ok(SizeSpec::Percent(5.0)));
        assert!(parse_size("5%", false).is_err());
        assert!(parse_size("12X", false).is_err());
        assert!(parse_size("-1G", false).is_err());
        assert!(parse_size("", false).is_err());
    }

    #[test]
    fn statvfs_and_mount() {
        let s = fs_space(Path::new("/")).expect("statvfs /");
        assert!(s.total > 0 && s.avail <= s.total);
        assert!(!on_mounted_drive(Path::new("/")));
    }
}
