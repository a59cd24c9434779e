//! The last policy the appliance acked, kept on disk so that a restart
//! while the controller is unreachable runs it again.
//!
//! Written atomically: a temporary file in the same directory, fsync,
//! rename over the old one, fsync of the directory. A crash at any point
//! leaves either the old file or the new one, never a mix.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Persisted {
    version: String,
    text: String,
    saved_unix_s: u64,
}

fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut tmp = name.to_os_string();
    tmp.push(format!(".tmp.{}", std::process::id()));
    Ok(path.with_file_name(tmp))
}

/// Saves `text` as policy `version` at `path`, atomically. Creates the
/// directory if needed.
pub fn save(path: &Path, version: &str, text: &str) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir)?;
    let body = serde_json::to_vec(&Persisted {
        version: version.to_owned(),
        text: text.to_owned(),
        saved_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    })?;
    let tmp = temp_path(path)?;
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename itself is durable once the directory is synced.
    File::open(&dir)?.sync_all()
}

/// The persisted policy `(version, text)`, or `None` when there is none or
/// it cannot be read (the reason is logged).
pub fn load(path: &Path) -> Option<(String, String)> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            crate::log::warn(format!(
                "controller: cannot read persisted policy {}: {e}",
                path.display()
            ));
            return None;
        }
    };
    match serde_json::from_slice::<Persisted>(&bytes) {
        Ok(p) => Some((p.version, p.text)),
        Err(e) => {
            crate::log::warn(format!(
                "controller: persisted policy {} is unreadable: {e}",
                path.display()
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sluice-persist-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn saves_load_back_and_replace_whole() {
        let d = dir("roundtrip");
        let p = d.join("sub/last.json");
        assert_eq!(load(&p), None);
        save(&p, "web@1", "version = \"a\"\n").unwrap();
        assert_eq!(load(&p), Some(("web@1".into(), "version = \"a\"\n".into())));
        save(&p, "web@2", "x").unwrap();
        assert_eq!(load(&p), Some(("web@2".into(), "x".into())));
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(d.join("sub")).unwrap().collect();
        assert_eq!(names.len(), 1);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_damaged_file_is_no_policy() {
        let d = dir("damaged");
        fs::create_dir_all(&d).unwrap();
        let p = d.join("last.json");
        fs::write(&p, b"{\"version\": \"x\", \"te").unwrap();
        assert_eq!(load(&p), None);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_write_that_cannot_happen_is_an_error_and_changes_nothing() {
        let d = dir("fail");
        fs::create_dir_all(&d).unwrap();
        // The parent is a file: no directory can be made there, even as root.
        let blocker = d.join("file");
        fs::write(&blocker, b"x").unwrap();
        assert!(save(&blocker.join("last.json"), "v", "t").is_err());
        let p = d.join("last.json");
        save(&p, "v1", "one").unwrap();
        // A directory where the file should be: the rename fails, the temp goes.
        let q = d.join("isdir");
        fs::create_dir_all(q.join("x")).unwrap();
        assert!(save(&q, "v2", "two").is_err());
        let left: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains(".tmp."))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(load(&p), Some(("v1".into(), "one".into())));
        let _ = fs::remove_dir_all(&d);
    }
}
