//! The studio page end to end: the real `atelier serve` binary on a free loopback port with a
//! token and the staged `classic` and `filters` plugins, driven in Debian's chromium by
//! `tests/e2e/studio.py` (Playwright, by labels and roles). The recipe the page saves is then run
//! by the real binary with `atelier run`, and its first stage's pick must be the very pixels the
//! page showed.
//!
//! Needs python3 with `playwright` and /usr/bin/chromium. Without them the test prints SKIPPED,
//! unless CI is set, where it fails with the install commands.

mod common;

use common::Serve;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;


const TOKEN: &str = "studio-token-0123456789abcdef";
const INSTALL: &str = "apt-get update && apt-get install -y chromium && pip install playwright (never `playwright install`: the test uses /usr/bin/chromium)";

fn chromium() -> PathBuf {
    std::env::var_os("ATELIER_CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// What is missing to drive a browser, if anything.
fn missing_tools() -> Option<String> {
    let py = Command::new("python3").args(["-c", "import playwright.sync_api"]).output();
    match py {
        Err(e) => return Some(format!("python3 cannot be run ({e})")),
        Ok(o) if !o.status.success() => return Some(format!("python3 has no playwright module ({})", String::from_utf8_lossy(&o.stderr).trim())),
        Ok(_) => {}
    }
    let c = chromium();
    if !c.is_file() {
        return Some(format!("{} is missing", c.display()));
    }
    None
}

/// `atelier serve --listen 127.0.0.1:0`, and the address it printed.
fn start_server(dir: &Path) -> (Serve, String) {
    let token_file = dir.join("caller.token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let config = dir.join("atelier.toml");
    std::fs::write(&config, format!("[server]\ntokens = {{ studio = \"file:{}\" }}\n", token_file.display())).unwrap();
    let mut cmd = Command::new(common::bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(dir.join("state"))
        .env("ATELIER_PLUGINS", plugin_path())
        .env("ATELIER_CACHE_DIR", common::root().join("target/test-cache"))
        .env("ATELIER_CONFIG", &config);
    Serve::start(cmd)
}

fn plugin_path() -> String {
    common::plugin_dirs(&["classic", "filters"]).iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":")
}

/// A plain HTTP/1.1 GET: (status, headers, body).
fn get(addr: &str, path: &str, token: Option<&str>) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// examples/photos/coffee.png (600×400) stored turned a quarter left (400×600) in a JPEG whose
/// EXIF orientation 6 says to turn it right again for display.
fn exif_rotated_photo(dir: &Path) -> PathBuf {
    let img = image::open(common::root().join("examples/photos/coffee.png")).unwrap().into_rgb8();
    let stored = image::imageops::rotate270(&img);
    let mut jpg = std::io::Cursor::new(Vec::new());
    stored.write_to(&mut jpg, image::ImageFormat::Jpeg).unwrap();
    let jpg = jpg.into_inner();
    // APP1 "Exif" with a big-endian TIFF holding one IFD entry: Orientation (0x0112) = 6.
    let mut app1 = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0".to_vec();
    let len = (app1.len() + 2) as u16;
    app1.splice(0..0, [0xff, 0xe1, (len >> 8) as u8, len as u8]);
    let out = [&jpg[..2], &app1[..], &jpg[2..]].concat();
    let path = dir.join("coffee-on-its-side.jpg");
    std::fs::write(&path, out).unwrap();
    path
}

#[test]
fn studio_explore_edit_animate_and_replay_the_recipe() {
    if let Some(why) = missing_tools() {
        if std::env::var_os("CI").is_some() {
            panic!("the studio test needs a browser: {why}; install with: {INSTALL}");
        }
        println!("SKIPPED: studio end-to-end test: {why}; install with: {INSTALL}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_server, addr) = start_server(tmp.path());

    // The page's files load without a token and may load nothing from elsewhere; its API does not.
    let (status, head, body) = get(&addr, "/studio/", None);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-security-policy: default-src 'none'"), "{head}");
    for name in ["Token", "Source image", "Engine", "Prompt", "Variations"] {
        assert!(body.contains(&format!(">{name}</label>")), "the page labels its `{name}` control");
    }
    assert!(!body.contains("https://") && !body.contains("http://"), "the page loads nothing remote");
    let (status, _, js) = get(&addr, "/studio/studio.js", None);
    assert_eq!(status, 200);
    assert!(!js.contains("https://") && !js.contains("http://"), "the script reaches only its own server");
    assert_eq!(get(&addr, "/v1/atelier/models", None).0, 401, "the studio's API needs the token");
    let (status, _, models) = get(&addr, "/v1/atelier/models", Some(TOKEN));
    assert_eq!(status, 200, "{models}");
    assert!(models.contains("\"id\":\"classic\"") && models.contains("\"supports_mask\":true") && models.contains("\"name\":\"resize\""), "{models}");

    // The photo is stored on its side with an EXIF orientation, as phones write them: the page
    // must show and work on it upright, and `atelier run` on the same file must agree.
    let photo = exif_rotated_photo(tmp.path());

    // The browser run: screenshots of every step go to target/studio-screenshots/.
    let out = common::root().join("target/studio-screenshots");
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new("python3")
        .arg(common::root().join("tests/e2e/studio.py"))
        .args(["--base-url", &format!("http://{addr}"), "--token", TOKEN, "--out"])
        .arg(&out)
        .arg("--photo")
        .arg(&photo)
        .args(["--expect-note", "EXIF orientation 6 applied: stored 400×600, shown and sent upright as 600×400"])
        .env("ATELIER_CHROMIUM", chromium())
        .output()
        .expect("python3 runs");
    let said = format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "tests/e2e/studio.py failed (screenshots in {}):\n{said}", out.display());
    for step in ["01-open", "03-source", "04-candidates", "06-mask", "07-edit", "08-video", "09-recipe"] {
        assert!(out.join(format!("{step}.png")).is_file(), "screenshot {step}.png is missing in {}", out.display());
    }
    let result: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    let recipe = PathBuf::from(result["recipe"].as_str().unwrap());
    assert_eq!(PathBuf::from(result["photo"].as_str().unwrap()), photo);

    // The saved recipe, run by the real binary: explore ×3 → pick 2 → masked edit → animate.
    let run_dir = tmp.path().join("replay");
    let replay = Command::new(common::bin())
        .arg("run")
        .arg(&recipe)
        .arg(&photo)
        .arg("-o")
        .arg(&run_dir)
        .env("ATELIER_PLUGINS", plugin_path())
        .env("ATELIER_CACHE_DIR", common::root().join("target/test-cache"))
        .env("ATELIER_STATE_DIR", tmp.path().join("cli-state"))
        .env_remove("ATELIER_CONFIG")
        .output()
        .unwrap();
    let said = format!("recipe:\n{}\nstdout:\n{}\nstderr:\n{}", std::fs::read_to_string(&recipe).unwrap(), String::from_utf8_lossy(&replay.stdout), String::from_utf8_lossy(&replay.stderr));
    assert!(replay.status.success(), "atelier run of the studio's recipe failed:\n{said}");
    let files = |stage: &str, ext: &str| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(run_dir.join(stage))
            .unwrap_or_else(|e| panic!("{stage}: {e}\n{said}"))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == ext) && !p.file_name().unwrap().to_string_lossy().contains("candidates") && !p.file_name().unwrap().to_string_lossy().contains("sheet"))
            .collect();
        v.sort();
        v
    };
    let explore = files("01-explore", "png");
    assert_eq!(explore.len(), 3, "three candidates in 01-explore: {explore:?}\n{said}");
    assert_eq!(files("02-edit", "png").len(), 1, "one masked edit\n{said}");
    let gifs = files("03-animate", "gif");
    assert_eq!(gifs.len(), 1, "one animation\n{said}");
    assert!(std::fs::read(&gifs[0]).unwrap().starts_with(b"GIF8"));

    // Replayed exactly: candidate 2 of the run is the picture the page picked, pixel for pixel.
    let pick = image::open(result["explore_pick"].as_str().unwrap()).unwrap().into_rgba8();
    let replayed = image::open(&explore[1]).unwrap().into_rgba8();
    assert_eq!(pick.dimensions(), replayed.dimensions());
    assert!(pick.as_raw() == replayed.as_raw(), "{} differs from the studio's pick", explore[1].display());
}
