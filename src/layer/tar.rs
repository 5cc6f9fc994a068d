//! Tar headers written by hand from fixed fields, so nothing of the writing machine (owner,
//! times, umask, tar library defaults) can reach the bytes.
//!
//! Format: GNU headers for every member, always. Names longer than the 100-byte header field
//! get a GNU `././@LongLink` member before them (type `L` for the name, `K` for a link
//! target). No PAX headers are written at all, so no access or change times can sneak in.

use std::io::{self, Write};

use tar::{EntryType, Header};

const BLOCK: usize = 512;

/// The kind of member a header introduces.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Member<'a> {
    Dir,
    File { size: u64 },
    Symlink { target: &'a str },
}

/// Writes the header (and any long-name members it needs) for one member.
///
/// `path` has no leading `/` and no trailing `/`; directories get the trailing `/` that tar
/// readers expect. The caller writes the data and then [`write_padding`] for files.
pub(crate) fn write_header(
    w: &mut impl Write,
    path: &str,
    member: Member<'_>,
    mode: u32,
    mtime: u64,
) -> io::Result<()> {
    let name = match member {
        Member::Dir => format!("{path}/"),
        _ => path.to_string(),
    };

    let mut header = Header::new_gnu();
    header.set_mode(mode);
    // Trap: the writer's uid/gid and user names would otherwise differ per machine.
    header.set_uid(0);
    header.set_gid(0);
    // Trap: file times from disk differ per checkout, download and unpack; every member takes
    // the one time the options give.
    header.set_mtime(mtime);

    match member {
        Member::Dir => {
            header.set_entry_type(EntryType::Directory);
            header.set_size(0);
        }
        Member::File { size } => {
            header.set_entry_type(EntryType::Regular);
            header.set_size(size);
        }
        Member::Symlink { target } => {
            header.set_entry_type(EntryType::Symlink);
            header.set_size(0);
            if target.len() > 100 {
                write_long_name(w, EntryType::GNULongLink, target)?;
            }
            copy_truncated(&mut header.as_old_mut().linkname, target);
        }
    }

    if name.len() > 100 {
        write_long_name(w, EntryType::GNULongName, &name)?;
    }
    copy_truncated(&mut header.as_old_mut().name, &name);

    header.set_cksum();
    w.write_all(header.as_bytes())
}

/// Pads a member's data to the next 512-byte block.
pub(crate) fn write_padding(w: &mut impl Write, size: u64) -> io::Result<()> {
    let rest = (size % BLOCK as u64) as usize;
    if rest != 0 {
        w.write_all(&[0; BLOCK][..BLOCK - rest])?;
    }
    Ok(())
}

/// Ends the archive with the two zero blocks tar readers look for.
pub(crate) fn write_end(w: &mut impl Write) -> io::Result<()> {
    w.write_all(&[0; 2 * BLOCK])
}

/// A GNU long-name member: a fixed header, then the name and a NUL as data.
fn write_long_name(w: &mut impl Write, kind: EntryType, name: &str) -> io::Result<()> {
    let mut header = Header::new_gnu();
    copy_truncated(&mut header.as_old_mut().name, "././@LongLink");
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(kind);
    let size = name.len() as u64 + 1;
    header.set_size(size);
    header.set_cksum();

    w.write_all(header.as_bytes())?;
    w.write_all(name.as_bytes())?;
    w.write_all(&[0])?;
    write_padding(w, size)
}

/// Fills a fixed header field with the start of `value`; the rest stays NUL.
fn copy_truncated(field: &mut [u8], value: &str) {
    let bytes = value.as_bytes();
    let n = bytes.len().min(field.len());
    field[..n].copy_from_slice(&bytes[..n]);
}
