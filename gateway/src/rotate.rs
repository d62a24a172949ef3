//! Where access-log lines go: stdout, or a file rotated by size
//! (`file` → `file.1` → … → `file.<keep>`, the oldest removed).

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};

/// A destination for whole lines; only the writer thread calls it.
pub trait Sink: Send {
    fn write_line(&mut self, line: &[u8]) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
}

/// Standard output, locked per line so lines never interleave with other output.
pub struct Stdout;

impl Sink for Stdout {
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        io::stdout().lock().write_all(line)
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()
    }
}

pub struct Rotating {
    path: PathBuf,
    /// 0: never rotate.
    max_bytes: u64,
    keep: u32,
    file: BufWriter<File>,
    size: u64,
}

fn open(path: &Path) -> io::Result<(BufWriter<File>, u64)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok((BufWriter::new(file), size))
}

/// `path` with `.n` appended: `access.log.1`.
pub fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Renames `from` to `to`; a missing `from` (fewer old files so far) is fine.
fn shift(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

impl Rotating {
    /// Opens (appends to) `path`; its current size counts towards `max_bytes`.
    pub fn open(path: PathBuf, max_bytes: u64, keep: u32) -> io::Result<Self> {
        let (file, size) = open(&path)?;
        Ok(Rotating {
            path,
            max_bytes,
            keep,
            file,
            size,
        })
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        for n in (1..self.keep).rev() {
            shift(&numbered(&self.path, n), &numbered(&self.path, n + 1))?;
        }
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            shift(&self.path, &numbered(&self.path, 1))?;
        }
        (self.file, self.size) = open(&self.path)?;
        Ok(())
    }
}

impl Sink for Rotating {
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let len = line.len() as u64;
        if self.max_bytes > 0 && self.size > 0 && self.size + len > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.size += len;
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    #[test]
    fn rotates_by_size_keeping_the_newest_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let mut r = Rotating::open(path.clone(), 25, 2).unwrap();
        // 10-byte lines: two fit in 25 bytes, the third starts a new file.
        for i in 0..9 {
            r.write_line(format!("line {i:03}\n").as_bytes()).unwrap();
        }
        r.flush().unwrap();
        assert_eq!(read(&path), "line 008\n");
        assert_eq!(read(&numbered(&path, 1)), "line 006\nline 007\n");
        assert_eq!(read(&numbered(&path, 2)), "line 004\nline 005\n");
        assert!(!numbered(&path, 3).exists(), "only `keep` old files stay");
    }

    #[test]
    fn reopening_counts_the_existing_size_and_keep_zero_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "0123456789\n").unwrap();
        let mut r = Rotating::open(path.clone(), 16, 0).unwrap();
        r.write_line(b"abcdefghij\n").unwrap();
        r.flush().unwrap();
        assert_eq!(read(&path), "abcdefghij\n");
        assert!(!numbered(&path, 1).exists());
        let mut never = Rotating::open(path.clone(), 0, 3).unwrap();
        never.write_line(&[b'x'; 100]).unwrap();
        never.flush().unwrap();
        assert_eq!(read(&path).len(), 111, "max_bytes 0 never rotates");
    }
}
