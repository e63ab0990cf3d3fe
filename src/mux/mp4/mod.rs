//! Fragmented MP4 (H.264): the one home of the format, writing, reading and repairing it.
//!
//! - [`boxes`]: every box's layout, once (size, write, read), pure code;
//! - [`write`]: the crash-safe segment writer ([`write::Fmp4Writer`]);
//! - [`read`]: reading a segment back, torn or not, from a file or bytes ([`read()`]);
//! - [`repair`]: finishing a segment a power loss cut ([`repair()`]).
//!
//! Nothing outside this folder knows a box layout. It never names, renames or deletes
//! segment files and never writes metadata.

pub(crate) mod boxes;
pub(crate) mod read;
pub(crate) mod repair;
pub(crate) mod write;

use std::fs::File;
use std::os::unix::fs::FileExt;

use boxes::{Edts, Mehd, MoovLayout, Mp4Box};

pub use read::{read, Mp4File};
pub(crate) use repair::repair;

/// Write the real duration into a `moov` (mvhd, tkhd, mdhd, the edit list when there is
/// one) and turn its `mehd` placeholder into a `mehd`: the last step of finishing a
/// segment, for the writer and for a repair alike. Not synced.
pub(crate) fn write_durations(
    file: &File,
    layout: &MoovLayout,
    edit_list: bool,
    duration: u64,
) -> std::io::Result<()> {
    let d = duration.to_be_bytes();
    for pos in [
        layout.mvhd_duration,
        layout.tkhd_duration,
        layout.mdhd_duration,
    ] {
        file.write_all_at(&d, pos)?;
    }
    if let (true, Some(edts)) = (edit_list, layout.edts) {
        file.write_all_at(&d, edts + Edts::DURATION_AT)?;
    }
    if let Some(at) = layout.mehd {
        let mut mehd = Vec::with_capacity(Mehd::SIZE as usize);
        Mehd {
            fragment_duration: duration,
        }
        .write(&mut mehd);
        file.write_all_at(&mehd, at)?;
    }
    Ok(())
}
