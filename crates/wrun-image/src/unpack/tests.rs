//! Tests of the layer unpacker, against archives built here with `tar::Builder` (and raw headers
//! for the hostile names the builder refuses to write).

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cap_std::fs::Dir;
use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

use super::{Compression, UnpackError, UnpackOptions, Unpacked, unpack_layer};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A temp dir laid out as `TMP/a/dest`, so `..` and `../..` from `dest` both land inside `TMP`,
/// where an escape would be seen (and could do no harm).
struct Sandbox {
    tmp: tempfile::TempDir,
    dest_path: PathBuf,
    dest: Dir,
}

impl Sandbox {
    fn new() -> io::Result<Self> {
        let tmp = tempfile::tempdir()?;
        let dest_path = tmp.path().join("a").join("dest");
        fs::create_dir_all(&dest_path)?;
        let dest = Dir::open_ambient_dir(&dest_path, cap_std::ambient_authority())?;
        Ok(Self {
            tmp,
            dest_path,
            dest,
        })
    }

    fn unpack(&self, tar: &[u8], opts: &UnpackOptions) -> Result<Unpacked, UnpackError> {
        unpack_layer(tar, Compression::None, &self.dest, opts)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dest_path.join(rel)
    }

    /// Asserts that nothing exists in the temp dir outside `a/dest`.
    fn assert_nothing_outside(&self) -> TestResult {
        let names = |p: &Path| -> io::Result<Vec<String>> {
            let mut v: Vec<String> = fs::read_dir(p)?
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<Result<_, _>>()?;
            v.sort();
            Ok(v)
        };
        assert_eq!(
            names(self.tmp.path())?,
            ["a"],
            "something escaped into the temp dir"
        );
        assert_eq!(
            names(&self.tmp.path().join("a"))?,
            ["dest"],
            "something escaped next to dest"
        );
        Ok(())
    }
}

fn root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Whether a test needing root can run: prints the skip reason if not, and fails instead when
/// `WRUN_REQUIRE_PRIVILEGED=1` (as in CI), so a skip never passes silently there.
fn root_or_skip(what: &str) -> bool {
    if root() {
        return true;
    }
    if std::env::var_os("WRUN_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1") {
        panic!("{what} needs root, and WRUN_REQUIRE_PRIVILEGED=1 forbids skipping");
    }
    eprintln!("skipped: {what} needs root");
    false
}

fn privileged() -> UnpackOptions {
    let mut opts = UnpackOptions::new();
    opts.privileged(true);
    opts
}

fn unprivileged() -> UnpackOptions {
    let mut opts = UnpackOptions::new();
    opts.privileged(false);
    opts
}

/// A header with `path` written byte for byte (no checks, no normalisation).
fn raw_header(path: &[u8], entry_type: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.as_old_mut().name[..path.len()].copy_from_slice(path);
    h.set_entry_type(entry_type);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    h
}

/// A builder that writes entries with raw names.
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.raw(path.as_bytes(), EntryType::Regular, mode, None, data)
    }

    fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.raw(path.as_bytes(), EntryType::Directory, mode, None, b"")
    }

    fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(
            path.as_bytes(),
            EntryType::Symlink,
            0o777,
            Some(target.as_bytes()),
            b"",
        )
    }

    fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(
            path.as_bytes(),
            EntryType::Link,
            0o644,
            Some(target.as_bytes()),
            b"",
        )
    }

    fn raw(
        &mut self,
        path: &[u8],
        ty: EntryType,
        mode: u32,
        link: Option<&[u8]>,
        data: &[u8],
    ) -> &mut Self {
        let mut h = raw_header(path, ty, mode, data.len() as u64);
        if let Some(link) = link {
            h.set_link_name_literal(link).expect("link name fits");
            h.set_cksum();
        }
        self.0.append(&h, data).expect("append to a Vec");
        self
    }

    fn header(&mut self, h: &Header, data: &[u8]) -> &mut Self {
        self.0.append(h, data).expect("append to a Vec");
        self
    }

    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        self.0
            .append_pax_extensions(records.iter().copied())
            .expect("append to a Vec");
        self
    }

    fn finish(&mut self) -> Vec<u8> {
        self.0.finish().expect("finish a Vec");
        self.0.get_ref().clone()
    }
}

fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data)?;
    enc.finish()
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn expect_err(result: Result<Unpacked, UnpackError>) -> UnpackError {
    match result {
        Ok(u) => panic!("unpack succeeded ({u:?}) but should have failed"),
        Err(e) => e,
    }
}

/// A small tree with every ordinary kind of entry.
fn sample_tree() -> Vec<u8> {
    Tar::new()
        .dir("./", 0o755)
        .dir("bin/", 0o755)
        .file("bin/busybox", 0o4755, b"\x7fELF pretend")
        .symlink("bin/sh", "/bin/busybox")
        .symlink("bin/rel", "busybox")
        .hardlink("bin/ls", "bin/busybox")
        .dir("etc/", 0o700)
        .file("etc/passwd", 0o644, b"root:x:0:0::/root:/bin/sh\n")
        .file("deep/missing/parents/f", 0o600, b"x")
        .dir("tmp/", 0o1777)
        .dir("ro/", 0o555)
        .file("ro/inner", 0o444, b"read only")
        .finish()
}

fn check_sample_tree(sb: &Sandbox) -> TestResult {
    let busybox = fs::symlink_metadata(sb.path("bin/busybox"))?;
    assert!(busybox.is_file());
    assert_eq!(busybox.mode() & 0o7777, 0o4755, "setuid bit kept");
    assert_eq!(busybox.mtime(), 1_600_000_000);
    assert_eq!(fs::read(sb.path("bin/busybox"))?, b"\x7fELF pretend");

    assert_eq!(fs::read_link(sb.path("bin/sh"))?, Path::new("/bin/busybox"));
    assert_eq!(fs::read_link(sb.path("bin/rel"))?, Path::new("busybox"));
    assert_eq!(
        fs::symlink_metadata(sb.path("bin/sh"))?.mtime(),
        1_600_000_000
    );

    let ls = fs::symlink_metadata(sb.path("bin/ls"))?;
    assert_eq!(ls.ino(), busybox.ino(), "hard link shares the inode");

    let etc = fs::metadata(sb.path("etc"))?;
    assert_eq!(etc.permissions().mode() & 0o7777, 0o700);
    assert_eq!(
        etc.mtime(),
        1_600_000_000,
        "directory mtime set after its children"
    );
    assert_eq!(
        fs::metadata(sb.path("tmp"))?.mode() & 0o7777,
        0o1777,
        "sticky bit kept"
    );
    assert_eq!(fs::metadata(sb.path("ro"))?.mode() & 0o7777, 0o555);
    assert_eq!(fs::read(sb.path("ro/inner"))?, b"read only");

    for implicit in ["deep", "deep/missing", "deep/missing/parents"] {
        let m = fs::symlink_metadata(sb.path(implicit))?;
        assert!(m.is_dir());
        assert_eq!(m.mode() & 0o7777, 0o755, "{implicit} created 0755");
    }
    assert_eq!(
        fs::metadata(sb.path("deep/missing/parents/f"))?.mode() & 0o7777,
        0o600
    );
    assert_eq!(
        fs::metadata(&sb.dest_path)?.mtime(),
        1_600_000_000,
        "root entry applied"
    );
    Ok(())
}

#[test]
fn media_types() -> TestResult {
    for (media_type, want) in [
        ("application/vnd.oci.image.layer.v1.tar", Compression::None),
        (
            "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Gzip,
        ),
        (
            "application/vnd.oci.image.layer.v1.tar+zstd",
            Compression::Zstd,
        ),
        (
            "application/vnd.oci.image.layer.nondistributable.v1.tar",
            Compression::None,
        ),
        (
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            Compression::Gzip,
        ),
        (
            "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
            Compression::Zstd,
        ),
        (
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            Compression::Gzip,
        ),
        (
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            Compression::Gzip,
        ),
    ] {
        assert_eq!(
            Compression::from_media_type(media_type)?,
            want,
            "{media_type}"
        );
    }
    let err = Compression::from_media_type("application/wasm").expect_err("not a tar layer");
    assert_eq!(
        err.to_string(),
        r#"unsupported layer media type "application/wasm""#
    );
    Ok(())
}

#[test]
fn unpack_plain_tree_with_metadata() -> TestResult {
    let sb = Sandbox::new()?;
    let tar = sample_tree();
    let unpacked = sb.unpack(&tar, &UnpackOptions::new())?;
    assert_eq!(unpacked.entries, 12);
    assert_eq!(unpacked.size, tar.len() as u64);
    assert_eq!(unpacked.diff_id, sha256(&tar));
    check_sample_tree(&sb)?;
    sb.assert_nothing_outside()
}

#[test]
fn unpack_gzip_and_zstd() -> TestResult {
    let tar = sample_tree();
    for (compression, blob) in [
        (Compression::Gzip, gzip(&tar)?),
        (Compression::Zstd, zstd::encode_all(&tar[..], 3)?),
    ] {
        let sb = Sandbox::new()?;
        let unpacked = unpack_layer(&blob[..], compression, &sb.dest, &UnpackOptions::new())?;
        assert_eq!(
            unpacked.diff_id,
            sha256(&tar),
            "{compression}: diff_id is the sha256 of the tar"
        );
        assert_eq!(unpacked.size, tar.len() as u64);
        check_sample_tree(&sb)?;
    }
    Ok(())
}

#[test]
fn unpack_multi_member_gzip() -> TestResult {
    // `cat a.gz b.gz` is a valid gzip stream of the concatenation.
    let tar = sample_tree();
    let (head, tail) = tar.split_at(1000);
    let blob = [gzip(head)?, gzip(tail)?].concat();
    let sb = Sandbox::new()?;
    let unpacked = unpack_layer(
        &blob[..],
        Compression::Gzip,
        &sb.dest,
        &UnpackOptions::new(),
    )?;
    assert_eq!(unpacked.diff_id, sha256(&tar));
    check_sample_tree(&sb)
}

#[test]
fn diff_id_covers_padding_after_end_marker() -> TestResult {
    // Layers are often padded to a 10 KiB record; the diff ID covers those bytes too.
    let mut tar = Tar::new().file("f", 0o644, b"hello").finish();
    tar.resize(tar.len() + 8192, 0);
    let sb = Sandbox::new()?;
    let unpacked = sb.unpack(&tar, &UnpackOptions::new())?;
    assert_eq!(unpacked.diff_id, sha256(&tar));
    assert_eq!(unpacked.size, tar.len() as u64);
    assert_eq!(unpacked.entries, 1);
    Ok(())
}

#[test]
fn large_file_spanning_many_chunks() -> TestResult {
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 17)
        .map(|i: u32| (i % 251) as u8)
        .collect();
    let tar = Tar::new().file("big", 0o644, &data).finish();
    let sb = Sandbox::new()?;
    let unpacked = unpack_layer(
        &gzip(&tar)?[..],
        Compression::Gzip,
        &sb.dest,
        &UnpackOptions::new(),
    )?;
    assert_eq!(unpacked.diff_id, sha256(&tar));
    assert!(fs::read(sb.path("big"))? == data, "contents differ");
    Ok(())
}

#[test]
fn long_names_and_pax_records() -> TestResult {
    let long = format!("{}/file", "d".repeat(150));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o640);
    h.set_mtime(1);
    h.set_entry_type(EntryType::Regular);
    b.append_data(&mut h, &long, &b"hi"[..])?; // GNU long name
    b.append_pax_extensions([
        ("mtime", &b"1700000000.25"[..]),
        ("SCHILY.xattr.user.wrun", &b"yes"[..]),
    ])?;
    let mut h = Header::new_ustar();
    h.set_size(0);
    h.set_mode(0o644);
    h.set_entry_type(EntryType::Regular);
    b.append_data(&mut h, "pax", io::empty())?;
    let tar = b.into_inner()?;

    let sb = Sandbox::new()?;
    let unpacked = sb.unpack(&tar, &UnpackOptions::new())?;
    assert_eq!(unpacked.entries, 2);
    assert_eq!(fs::read(sb.path(&long))?, b"hi");
    let pax = fs::metadata(sb.path("pax"))?;
    assert_eq!(
        (pax.mtime(), pax.mtime_nsec()),
        (1_700_000_000, 250_000_000)
    );
    if root() {
        let mut value = [0u8; 16];
        let n = rustix::fs::getxattr(sb.path("pax"), "user.wrun", &mut value)?;
        assert_eq!(&value[..n], b"yes");
    }
    Ok(())
}

#[test]
fn owners_and_capabilities_when_root() -> TestResult {
    if !root_or_skip("setting owners and security.capability") {
        return Ok(());
    }
    // A v2 file capability: cap_net_bind_service (bit 10) permitted + effective.
    let cap: [u8; 20] = [0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut t = Tar::new();
    let mut dir = raw_header(b"owned/", EntryType::Directory, 0o2750, 0);
    dir.set_uid(1234);
    dir.set_gid(5678);
    dir.set_cksum();
    t.header(&dir, b"");
    t.pax(&[("SCHILY.xattr.security.capability", &cap[..])]);
    let mut file = raw_header(b"owned/ping", EntryType::Regular, 0o4755, 3);
    file.set_uid(1234);
    file.set_gid(5678);
    file.set_cksum();
    t.header(&file, b"elf");
    let mut link = raw_header(b"owned/link", EntryType::Symlink, 0o777, 0);
    link.set_link_name_literal(b"/nowhere")?;
    link.set_uid(4321);
    link.set_gid(8765);
    link.set_cksum();
    t.header(&link, b"");
    let tar = t.finish();

    let sb = Sandbox::new()?;
    sb.unpack(&tar, &privileged())?;
    let d = fs::symlink_metadata(sb.path("owned"))?;
    assert_eq!((d.uid(), d.gid(), d.mode() & 0o7777), (1234, 5678, 0o2750));
    let f = fs::symlink_metadata(sb.path("owned/ping"))?;
    assert_eq!((f.uid(), f.gid()), (1234, 5678));
    assert_eq!(f.mode() & 0o7777, 0o4755, "setuid survives the chown");
    let mut value = [0u8; 32];
    let n = rustix::fs::getxattr(sb.path("owned/ping"), "security.capability", &mut value)?;
    assert_eq!(&value[..n], &cap[..], "capability survives the chown");
    let l = fs::symlink_metadata(sb.path("owned/link"))?;
    assert_eq!((l.uid(), l.gid()), (4321, 8765), "lchown semantics");
    Ok(())
}

#[test]
fn replaces_existing_entries() -> TestResult {
    let tar = Tar::new()
        .file("f", 0o644, b"first")
        .file("f", 0o600, b"second")
        .symlink("s", "f")
        .file("s", 0o644, b"no longer a link")
        .dir("d/", 0o755)
        .file("d/inner", 0o644, b"x")
        .dir("d/", 0o700)
        .file("x", 0o644, b"file")
        .dir("x/", 0o755)
        .dir("gone/", 0o755)
        .file("gone/inner", 0o644, b"x")
        .symlink("gone", "f")
        .finish();
    let sb = Sandbox::new()?;
    sb.unpack(&tar, &UnpackOptions::new())?;
    assert_eq!(fs::read(sb.path("f"))?, b"second");
    assert_eq!(fs::metadata(sb.path("f"))?.mode() & 0o777, 0o600);
    assert!(fs::symlink_metadata(sb.path("s"))?.is_file());
    assert_eq!(
        fs::read(sb.path("d/inner"))?,
        b"x",
        "directory over directory keeps contents"
    );
    assert_eq!(fs::metadata(sb.path("d"))?.mode() & 0o777, 0o700);
    assert!(fs::symlink_metadata(sb.path("x"))?.is_dir());
    assert_eq!(fs::read_link(sb.path("gone"))?, Path::new("f"));
    Ok(())
}

/// Unpacks `tar` and asserts it fails naming `entry`, with nothing created outside `dest`.
fn assert_rejected(tar: &[u8], entry: &str) -> Result<UnpackError, Box<dyn std::error::Error>> {
    let sb = Sandbox::new()?;
    let err = expect_err(sb.unpack(tar, &UnpackOptions::new()));
    let message = err.to_string();
    assert!(
        message.contains(&format!("{entry:?}")),
        "{message:?} does not name {entry:?}"
    );
    sb.assert_nothing_outside()?;
    Ok(err)
}

#[test]
fn rejects_parent_dir_entry() -> TestResult {
    let tar = Tar::new().file("../x", 0o644, b"escaped").finish();
    let err = assert_rejected(&tar, "../x")?;
    assert!(matches!(err, UnpackError::UnsafePath { .. }), "{err:?}");
    Ok(())
}

#[test]
fn rejects_absolute_entry() -> TestResult {
    let sb_path = Sandbox::new()?;
    // An absolute path into a temp dir of ours: harmless even if it were honoured.
    let target = sb_path.tmp.path().join("abs");
    let name = target.to_str().ok_or("utf-8 temp path")?;
    let tar = Tar::new().file(name, 0o644, b"escaped").finish();
    let err = assert_rejected(&tar, name)?;
    assert!(matches!(err, UnpackError::UnsafePath { .. }), "{err:?}");
    assert!(!target.exists());
    let tar = Tar::new().file("/abs", 0o644, b"escaped").finish();
    assert_rejected(&tar, "/abs")?;
    Ok(())
}

#[test]
fn rejects_dotdot_in_the_middle() -> TestResult {
    let tar = Tar::new()
        .dir("a/", 0o755)
        .file("a/../../x", 0o644, b"escaped")
        .finish();
    let err = assert_rejected(&tar, "a/../../x")?;
    assert!(matches!(err, UnpackError::UnsafePath { .. }), "{err:?}");
    Ok(())
}

#[test]
fn rejects_writing_through_absolute_symlink() -> TestResult {
    // `x -> /` then `x/<our temp dir>/escaped`: followed, this would land in the temp dir.
    let sb = Sandbox::new()?;
    let inside = sb.tmp.path().strip_prefix("/")?.join("escaped");
    let entry = format!("x/{}", inside.to_str().ok_or("utf-8 temp path")?);
    let tar = Tar::new()
        .symlink("x", "/")
        .file(&entry, 0o644, b"escaped")
        .finish();
    let err = expect_err(sb.unpack(&tar, &UnpackOptions::new()));
    assert!(matches!(err, UnpackError::ThroughSymlink { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("{entry:?}")), "{err}");
    sb.assert_nothing_outside()?;
    assert_eq!(
        fs::read_link(sb.path("x"))?,
        Path::new("/"),
        "the symlink itself is kept"
    );
    // And the classic shape, checked only for the error: nothing is written anyway.
    let tar = Tar::new()
        .symlink("x", "/")
        .file("x/etc/passwd", 0o644, b"pwned")
        .finish();
    let err = assert_rejected(&tar, "x/etc/passwd")?;
    assert!(matches!(err, UnpackError::ThroughSymlink { .. }), "{err:?}");
    Ok(())
}

#[test]
fn rejects_writing_through_relative_symlink() -> TestResult {
    let tar = Tar::new()
        .symlink("x", "../..")
        .file("x/y", 0o644, b"escaped")
        .finish();
    let err = assert_rejected(&tar, "x/y")?;
    assert!(matches!(err, UnpackError::ThroughSymlink { .. }), "{err:?}");
    // A directory symlink deeper in the path, and a directory entry through it.
    let tar = Tar::new()
        .dir("d/", 0o755)
        .symlink("d/l", "..")
        .dir("d/l/sub/", 0o755)
        .finish();
    assert_rejected(&tar, "d/l/sub/")?;
    // A directory the unpacker has just written into, replaced by a symlink, then written
    // through: the cached parent chain must not let the old directory stand in for it.
    let tar = Tar::new()
        .dir("d/", 0o755)
        .file("d/f", 0o644, b"x")
        .symlink("d", "../..")
        .file("d/escaped", 0o644, b"x")
        .finish();
    let err = assert_rejected(&tar, "d/escaped")?;
    assert!(matches!(err, UnpackError::ThroughSymlink { .. }), "{err:?}");
    Ok(())
}

#[test]
fn rejects_hostile_hard_links() -> TestResult {
    let tar = Tar::new().hardlink("pw", "../../etc/passwd").finish();
    let err = assert_rejected(&tar, "pw")?;
    assert!(
        matches!(err, UnpackError::UnsafeLinkTarget { .. }),
        "{err:?}"
    );

    let tar = Tar::new().hardlink("pw", "/etc/passwd").finish();
    let err = assert_rejected(&tar, "pw")?;
    assert!(
        matches!(err, UnpackError::UnsafeLinkTarget { .. }),
        "{err:?}"
    );

    let tar = Tar::new().hardlink("pw", "not/here").finish();
    let err = assert_rejected(&tar, "pw")?;
    assert!(
        matches!(err, UnpackError::MissingLinkTarget { .. }),
        "{err:?}"
    );

    // A target reached through a symlink is refused too, even one that stays inside.
    let tar = Tar::new()
        .dir("real/", 0o755)
        .file("real/f", 0o644, b"x")
        .symlink("via", "real")
        .hardlink("pw", "via/f")
        .finish();
    let err = assert_rejected(&tar, "pw")?;
    assert!(
        matches!(err, UnpackError::MissingLinkTarget { .. }),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn rejects_hostile_whiteout_names() -> TestResult {
    for name in [".wh..", ".wh...", "d/.wh.", "d/.wh..."] {
        let tar = Tar::new().file(name, 0o644, b"").finish();
        let sb = Sandbox::new()?;
        let err = expect_err(sb.unpack(&tar, &privileged()));
        assert!(
            matches!(err, UnpackError::InvalidEntry { .. }),
            "{name}: {err:?}"
        );
        sb.assert_nothing_outside()?;
    }
    Ok(())
}

#[test]
fn rejects_overlay_xattrs() -> TestResult {
    let mut t = Tar::new();
    t.pax(&[("SCHILY.xattr.trusted.overlay.redirect", &b"/etc"[..])]);
    t.dir("d/", 0o755);
    let tar = t.finish();
    let err = assert_rejected(&tar, "d/")?;
    assert!(matches!(err, UnpackError::InvalidEntry { .. }), "{err:?}");
    Ok(())
}

#[test]
fn whiteouts_become_overlay_whiteouts() -> TestResult {
    if !root_or_skip("creating overlayfs whiteouts (mknod, trusted.* xattrs)") {
        return Ok(());
    }
    let tar = Tar::new()
        .dir("etc/", 0o755)
        .file("etc/.wh.motd", 0o644, b"")
        .dir("var/cache/", 0o755)
        .file("var/cache/.wh..wh..opq", 0o644, b"")
        .file("var/cache/new", 0o644, b"n")
        .file(".wh..wh.plnk", 0o644, b"")
        .finish();
    let sb = Sandbox::new()?;
    let unpacked = sb.unpack(&tar, &privileged())?;
    assert_eq!(unpacked.entries, 6);
    let motd = fs::symlink_metadata(sb.path("etc/motd"))?;
    assert!(
        motd.file_type().is_char_device(),
        "whiteout is a character device"
    );
    assert_eq!(motd.rdev(), 0, "whiteout is device 0:0");
    assert!(!sb.path("etc/.wh.motd").exists(), "no .wh. file is created");
    let mut value = [0u8; 4];
    let n = rustix::fs::getxattr(sb.path("var/cache"), "trusted.overlay.opaque", &mut value)?;
    assert_eq!(&value[..n], b"y");
    assert!(!sb.path("var/cache/.wh..wh..opq").exists());
    assert_eq!(fs::read(sb.path("var/cache/new"))?, b"n");
    assert!(
        !sb.path(".wh..wh.plnk").exists(),
        "aufs metadata is skipped"
    );
    assert!(!sb.path(".wh.plnk").exists() && !sb.path("plnk").exists());
    Ok(())
}

#[test]
fn devices_and_fifos_when_root() -> TestResult {
    if !root_or_skip("mknod") {
        return Ok(());
    }
    let mut t = Tar::new();
    let mut null = raw_header(b"dev/null", EntryType::Char, 0o666, 0);
    null.set_device_major(1)?;
    null.set_device_minor(3)?;
    null.set_cksum();
    t.header(&null, b"");
    t.raw(b"dev/fifo", EntryType::Fifo, 0o600, None, b"");
    let tar = t.finish();
    let sb = Sandbox::new()?;
    sb.unpack(&tar, &privileged())?;
    let null = fs::symlink_metadata(sb.path("dev/null"))?;
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666, "mode set despite the umask");
    assert!(
        fs::symlink_metadata(sb.path("dev/fifo"))?
            .file_type()
            .is_fifo()
    );
    Ok(())
}

#[test]
fn unprivileged_refuses_special_entries() -> TestResult {
    for (name, ty, what) in [
        ("dev/null", EntryType::Char, "character device"),
        ("dev/sda", EntryType::Block, "block device"),
        ("dev/fifo", EntryType::Fifo, "fifo"),
        ("etc/.wh.motd", EntryType::Regular, "whiteout"),
        ("etc/.wh..wh..opq", EntryType::Regular, "opaque whiteout"),
    ] {
        let mut t = Tar::new();
        t.raw(name.as_bytes(), ty, 0o644, None, b"");
        let sb = Sandbox::new()?;
        let err = expect_err(sb.unpack(&t.finish(), &unprivileged()));
        match &err {
            UnpackError::NeedsPrivilege { path, what: w } => {
                assert_eq!((path.as_path(), *w), (Path::new(name), what));
            }
            other => panic!("{name}: {other:?}"),
        }
        assert!(!sb.path(name).exists());
    }
    Ok(())
}

#[test]
fn corrupt_gzip_is_a_decompression_error() -> TestResult {
    let tar = sample_tree();
    let mut blob = gzip(&tar)?;
    let middle = blob.len() / 2;
    for b in &mut blob[middle..middle + 16] {
        *b ^= 0x5a;
    }
    let sb = Sandbox::new()?;
    let err = expect_err(unpack_layer(
        &blob[..],
        Compression::Gzip,
        &sb.dest,
        &UnpackOptions::new(),
    ));
    assert!(
        matches!(
            err,
            UnpackError::Decompress {
                compression: Compression::Gzip,
                ..
            }
        ),
        "{err:?}"
    );

    // A gzip stream cut short is a decompression error too, not a "truncated tar".
    let blob = gzip(&tar)?;
    let err = expect_err(unpack_layer(
        &blob[..blob.len() - 20],
        Compression::Gzip,
        &sb.dest,
        &UnpackOptions::new(),
    ));
    assert!(matches!(err, UnpackError::Decompress { .. }), "{err:?}");

    let err = expect_err(unpack_layer(
        &b"not gzip at all"[..],
        Compression::Gzip,
        &sb.dest,
        &UnpackOptions::new(),
    ));
    assert!(matches!(err, UnpackError::Decompress { .. }), "{err:?}");

    // With a content checksum the corruption is caught even if it decodes. The whole layer
    // fits in one chunk, so the decompressor meets the error before the extractor sees a byte.
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 3)?;
    enc.include_checksum(true)?;
    enc.write_all(&tar)?;
    let mut blob = enc.finish()?;
    let middle = blob.len() / 2;
    for b in &mut blob[middle..middle + 16] {
        *b ^= 0x5a;
    }
    let err = expect_err(unpack_layer(
        &blob[..],
        Compression::Zstd,
        &Sandbox::new()?.dest,
        &UnpackOptions::new(),
    ));
    assert!(
        matches!(
            err,
            UnpackError::Decompress {
                compression: Compression::Zstd,
                ..
            }
        ),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn truncated_tar_is_an_error() -> TestResult {
    let data = vec![7u8; 10_000];
    let tar = Tar::new()
        .file("a", 0o644, b"first")
        .file("big", 0o644, &data)
        .finish();

    // Cut in the middle of `big`'s contents.
    let sb = Sandbox::new()?;
    let err = expect_err(sb.unpack(&tar[..3000], &UnpackOptions::new()));
    assert!(matches!(err, UnpackError::TruncatedEntry { .. }), "{err:?}");
    assert!(err.to_string().contains("\"big\""), "{err}");

    // Cut at an entry boundary: no end-of-archive marker.
    let sb = Sandbox::new()?;
    let err = expect_err(sb.unpack(&tar[..1024], &UnpackOptions::new()));
    assert!(matches!(err, UnpackError::Truncated), "{err:?}");

    // Cut inside a header.
    let sb = Sandbox::new()?;
    let err = expect_err(sb.unpack(&tar[..1100], &UnpackOptions::new()));
    assert!(matches!(err, UnpackError::Truncated), "{err:?}");

    // Nothing at all.
    let sb = Sandbox::new()?;
    let err = expect_err(sb.unpack(&[], &UnpackOptions::new()));
    assert!(matches!(err, UnpackError::Truncated), "{err:?}");

    // Garbage instead of a header.
    let sb = Sandbox::new()?;
    let err = expect_err(sb.unpack(&[0x41; 2048], &UnpackOptions::new()));
    assert!(matches!(err, UnpackError::Tar { .. }), "{err:?}");
    Ok(())
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[test]
fn failing_extractor_stops_the_decompressor() -> TestResult {
    // A hostile first entry followed by a gigabyte of (lazily generated) stream: the error must
    // come back after reading a few chunks, not after the whole stream.
    const GIB: u64 = 1 << 30;
    let head = raw_header(b"../evil", EntryType::Regular, 0o644, GIB);
    let count = Arc::new(AtomicU64::new(0));
    let reader = Counting {
        inner: head.as_bytes().chain(io::repeat(0).take(GIB)),
        count: Arc::clone(&count),
    };
    let sb = Sandbox::new()?;
    let err = expect_err(unpack_layer(
        reader,
        Compression::None,
        &sb.dest,
        &UnpackOptions::new(),
    ));
    assert!(matches!(err, UnpackError::UnsafePath { .. }), "{err:?}");
    let read = count.load(Ordering::Relaxed);
    assert!(
        read < 16 << 20,
        "read {read} bytes after the extractor failed"
    );
    Ok(())
}

#[test]
fn error_messages_name_the_entry_once() -> TestResult {
    let sb = Sandbox::new()?;
    let tar = Tar::new()
        .symlink("x", "/")
        .file("x/y", 0o644, b"")
        .finish();
    let err = expect_err(sb.unpack(&tar, &UnpackOptions::new()));
    assert_eq!(
        err.to_string(),
        r#"entry "x/y": "x" is a symlink or not a directory; refusing to write through it"#
    );
    Ok(())
}

#[test]
fn old_style_directory_and_odd_entries() -> TestResult {
    let mut t = Tar::new();
    // A NUL type flag with a trailing slash: a directory in pre-POSIX archives.
    let mut old = raw_header(b"olddir/", EntryType::Regular, 0o750, 0);
    old.as_old_mut().linkflag[0] = 0;
    old.set_cksum();
    t.header(&old, b"");
    t.file("olddir/f", 0o644, b"f");
    let tar = t.finish();
    let sb = Sandbox::new()?;
    sb.unpack(&tar, &UnpackOptions::new())?;
    let m = fs::symlink_metadata(sb.path("olddir"))?;
    assert!(m.is_dir());
    assert_eq!(m.mode() & 0o7777, 0o750);

    let deep = format!("{}f", "d/".repeat(300));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_size(0);
    h.set_mode(0o644);
    h.set_entry_type(EntryType::Regular);
    b.append_data(&mut h, &deep, io::empty())?;
    let err = expect_err(Sandbox::new()?.unpack(&b.into_inner()?, &UnpackOptions::new()));
    assert!(matches!(err, UnpackError::InvalidEntry { .. }), "{err:?}");

    let tar = Tar::new().hardlink("l", "./").finish();
    let err = expect_err(Sandbox::new()?.unpack(&tar, &UnpackOptions::new()));
    assert!(matches!(err, UnpackError::InvalidEntry { .. }), "{err:?}");

    let tar = Tar::new().file("./", 0o644, b"").finish();
    let err = expect_err(Sandbox::new()?.unpack(&tar, &UnpackOptions::new()));
    assert!(matches!(err, UnpackError::InvalidEntry { .. }), "{err:?}");
    Ok(())
}
