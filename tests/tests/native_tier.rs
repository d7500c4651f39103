//! The native tier (docs/native.md): the filters crate's cdylib loaded through its C ABI gives the
//! same answers and the same pixels as its wasm component, step by step; it loads only when the
//! operator pins its sha256, and an unpinned or mismatched library is refused with the line to add.

use atelier::pipeline::steps::Catalog;
use atelier::types as wf;
use atelier::types as wt;
use atelier_tests::{cache_dir, plugins_dir, runtime_over};
use sha2::Digest;
use std::path::{Path, PathBuf};

/// The cdylib cargo builds next to this test binary for the `plugin-filters` dev-dependency.
fn native_library() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let name = format!("{}plugin_filters{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    let lib = exe.parent().expect("target/<profile>/deps").join(&name);
    assert!(lib.is_file(), "{} is missing: cargo builds it with plugin-filters (crate-type cdylib); run `cargo build -p plugin-filters`", lib.display());
    lib
}

/// A plugin directory holding plugins/filters/native.toml and a copy of the native library.
fn stage_native(root: &Path) -> (PathBuf, String) {
    let dir = root.join("filters-native");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(atelier_tests::root().join("plugins/filters/native.toml"), dir.join("plugin.toml")).unwrap();
    let bytes = std::fs::read(native_library()).unwrap();
    std::fs::write(dir.join("libfilters.so"), &bytes).unwrap();
    (dir, hex::encode(sha2::Sha256::digest(&bytes)))
}

fn pinned(sha: &str) -> String {
    format!("[plugins.filters-native]\nnative_sha256 = \"{sha}\"\n")
}

/// The step as the CLI makes it: `name:k=v,...` checked against the plugin's own specs, with
/// defaults filled in.
fn step(infos: &[wf::FilterInfo], text: &str) -> wf::Step {
    let (name, rest) = text.split_once(':').unwrap_or((text, ""));
    let info = infos.iter().find(|i| i.name == name).unwrap_or_else(|| panic!("no filter {name}"));
    let given: Vec<(String, String)> = rest.split(',').filter(|p| !p.is_empty()).map(|p| atelier::params::split_kv(p).unwrap()).collect();
    wf::Step { name: name.into(), params: atelier::params::resolve(name, &info.params, &given).unwrap() }
}

/// A photo-like image with a translucent corner, so premultiplied paths are exercised.
fn input(w: u32, h: u32) -> wt::Image {
    let mut img = plugin_filters::bench_image(w, h);
    for y in 0..h / 3 {
        for x in 0..w / 3 {
            img.pixels[((y * w + x) * 4 + 3) as usize] = (x * 7 + y * 3) as u8;
        }
    }
    wt::Image { width: w, height: h, pixels: img.pixels }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_filter_step_gives_the_same_pixels_in_both_tiers() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, sha) = stage_native(tmp.path());
    let rt = runtime_over(vec![plugins_dir().join("filters"), dir], &pinned(&sha), cache_dir());
    let (wasm, native) = (rt.plugin("filters").unwrap(), rt.plugin("filters-native").unwrap());
    assert!(wasm.native().is_none());
    assert_eq!(native.native().map(|n| n.sha256.as_str()), Some(sha.as_str()));

    let infos = wasm.describe_filters().await.unwrap();
    let native_infos = native.describe_filters().await.unwrap();
    assert_eq!(format!("{native_infos:?}"), format!("{infos:?}"), "describe is the same in both tiers");
    assert_eq!(infos.len(), 10);

    let logo = {
        let mut out = std::io::Cursor::new(Vec::new());
        image::RgbaImage::from_fn(40, 24, |x, y| image::Rgba([x as u8 * 6, y as u8 * 10, 90, (x * 6) as u8])).write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    };
    let logo_step = {
        let mut s = step(&infos, "watermark:position=top-left,opacity=0.7");
        s.params.push(wt::Param { name: "image".into(), value: wt::Value::Media(wt::Media { mime: "image/png".into(), bytes: logo }) });
        s
    };
    let mut cases: Vec<(String, Vec<wf::Step>)> = [
        "resize:width=200",
        "resize:width=97,height=300,filter=catmull-rom",
        "resize:max=64,filter=gaussian",
        "resize:width=500,filter=triangle",
        "crop:width=100,height=80,x=7,y=9,gravity=bottom-right",
        "fit:aspect=16:9",
        "fit:width=160,height=160,mode=pad,color=#336699",
        "fit:aspect=4:5,width=120,mode=blur",
        "rotate:degrees=90",
        "rotate:degrees=180",
        "rotate:degrees=-37.5,color=red",
        "rotate:degrees=12,expand=false",
        "flip",
        "flip:direction=vertical",
        "adjust:brightness=1.1,contrast=0.8,saturation=1.4,gamma=1.3,temperature=0.4",
        "blur:sigma=1.5",
        "blur:sigma=9",
        "sharpen:amount=1.5,sigma=2,threshold=3",
        "grayscale",
        "watermark:text=© atelier,opacity=0.6",
        "watermark:text=centre,position=center,size_px=30,color=#ff000080",
    ]
    .iter()
    .map(|t| (t.to_string(), vec![step(&infos, t)]))
    .collect();
    cases.push(("watermark:image=logo.png".into(), vec![logo_step]));
    cases.push((
        "the benchmark chain".into(),
        ["resize:width=250", "crop:width=200,height=150,gravity=center", "adjust:brightness=1.05,contrast=1.1,saturation=1.2", "sharpen:amount=0.8,sigma=1", "watermark:text=© atelier,opacity=0.6"]
            .iter()
            .map(|t| step(&infos, t))
            .collect(),
    ));
    let image = input(301, 203);
    for (what, steps) in &cases {
        let a = wasm.apply("t", image.clone(), steps).await.unwrap().unwrap_or_else(|e| panic!("{what} (wasm): {e:?}"));
        let b = native.apply("t", image.clone(), steps).await.unwrap().unwrap_or_else(|e| panic!("{what} (native): {e:?}"));
        assert_eq!((b.width, b.height), (a.width, a.height), "{what}: sizes");
        assert!(a.pixels == b.pixels, "{what}: the native tier's pixels differ from the wasm tier's");
        assert!(a.pixels != image.pixels, "{what}: the step changed nothing, so the comparison proves little");
    }

    // The same refusal, word for word.
    let bad = vec![step(&infos, "crop:width=400,height=10")];
    let (a, b) = (wasm.apply("t", image.clone(), &bad).await.unwrap().unwrap_err(), native.apply("t", image.clone(), &bad).await.unwrap().unwrap_err());
    assert!(matches!(&b, wt::PluginError::InvalidInput(m) if m.contains("301x203")), "{b:?}");
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_native_plugin_serves_the_steps_and_an_unpinned_one_stays_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, sha) = stage_native(tmp.path());
    let dirs = vec![plugins_dir().join("filters"), dir];
    // Not allowed: the wasm filters serve every step, as on a fresh machine.
    let rt = runtime_over(dirs.clone(), "", cache_dir());
    let ids: Vec<String> = rt.filter_plugins().unwrap().iter().map(|p| p.id().to_string()).collect();
    assert_eq!(ids, ["filters"]);
    let catalog = Catalog::load(&rt).await.unwrap();
    assert_eq!(catalog.parse("resize:width=10").unwrap().plugin.id(), "filters");
    // Pinned: the native library takes the steps of the same name.
    let rt = runtime_over(dirs, &pinned(&sha), cache_dir());
    let catalog = Catalog::load(&rt).await.unwrap();
    let steps = catalog.parse_all(&["resize:width=40".into(), "grayscale".into()]).unwrap();
    assert!(steps.iter().all(|s| s.plugin.id() == "filters-native"));
    let out = atelier::pipeline::steps::run("t", input(80, 60), &steps).await.unwrap();
    assert_eq!((out.width, out.height), (40, 30));
    assert!(out.pixels.chunks_exact(4).all(|p| p[0] == p[1] && p[1] == p[2]), "grayscale ran");
}

#[test]
fn an_unpinned_or_mismatched_library_is_refused_with_the_line_to_add() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, sha) = stage_native(tmp.path());
    let line = format!("[plugins.filters-native]\n    native_sha256 = \"{sha}\"");

    let rt = runtime_over(vec![dir.clone()], "", cache_dir());
    let e = format!("{:#}", rt.plugin("filters-native").err().expect("refused"));
    assert!(e.contains("runs unsandboxed") && e.contains("if you trust it, add to") && e.ends_with(&line), "{e}");

    let wrong = "0".repeat(64);
    let rt = runtime_over(vec![dir.clone()], &pinned(&wrong), cache_dir());
    let e = format!("{:#}", rt.plugin("filters-native").err().expect("refused"));
    assert!(e.contains(&format!("has sha256 {sha}")) && e.contains(&format!("pins {wrong}")), "{e}");
    assert!(e.contains("was not loaded") && e.ends_with(&line), "{e}");

    // Pinned bytes that are not a library: the pin matches, loading fails and says why.
    std::fs::write(dir.join("libfilters.so"), b"not a shared library").unwrap();
    let junk = hex::encode(sha2::Sha256::digest(b"not a shared library"));
    let rt = runtime_over(vec![dir], &pinned(&junk), cache_dir());
    let e = format!("{:#}", rt.plugin("filters-native").err().expect("refused"));
    assert!(e.contains("plugin `filters-native`") && e.contains("cannot load it"), "{e}");
}
