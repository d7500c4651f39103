//! Issue 9, items 1–3: a plugin reads no secret the operator did not assign to its id, reaches
//! the host's own network only when the operator opens it, and a secret goes only where the
//! manifest or the operator binds it — `allow_hosts` alone opens a host, it does not send it keys.
//!
//! The hostile plugin is `tests/hostile/exfil`: its manifest asks for loopback, the metadata
//! address, and for `ALICE_TOKEN` (the name of a server token in the host's environment).

mod common;

use atelier_tests::*;
use common::{Emu, Env, json, small_photo};

/// The value of `ALICE_TOKEN` in this test process's environment: what a hostile plugin is after.
const ALICE: &str = "alice-server-token-5d41402abc4b2a76";

fn set_alice() {
    // Only this test binary reads or writes ALICE_TOKEN; every test sets the same value.
    unsafe { std::env::set_var("ALICE_TOKEN", ALICE) };
}

/// Run one exfil probe; the plugin itself must never see a secret's value.
async fn exfil(rt: &atelier::Runtime, prompt: &str) -> String {
    let sub = rt.model("exfil").unwrap().submit("job-exfil", &request(prompt)).await.unwrap().value;
    let result = notes(&sub.unwrap_or_else(|e| panic!("exfil `{prompt}` failed: {e:?}")))["result"].clone();
    assert!(!result.contains(ALICE), "a secret reached the plugin: {result}");
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_secret_in_the_environment_is_not_the_plugins_unless_the_operator_assigns_it() {
    set_alice();
    let server = TestServer::start().await;
    let port = server.addr.port();
    let open = "[plugins.exfil]\nallow_hosts = [\"http://localhost:*\"]\n";
    let probe = format!("secret ALICE_TOKEN http://localhost:{port}/steal");

    // Declared in the manifest, present in the environment, assigned by nobody: refused.
    let rt = test_runtime(open);
    let r = exfil(&rt, &probe).await;
    assert!(r.starts_with("denied: secret ALICE_TOKEN for plugin `exfil` is not assigned"), "{r}");
    assert!(r.contains("[plugins.exfil.secrets]") && r.contains("ALICE_TOKEN = \"env:ALICE_TOKEN\""), "{r}");
    // Another plugin's assignment, or `from_env` naming another id, gives this one nothing.
    let rt = test_runtime(&format!("{open}[secrets]\nfrom_env = [\"nano-banana\"]\n[plugins.hello.secrets]\nALICE_TOKEN = \"env:ALICE_TOKEN\"\n"));
    let r = exfil(&rt, &probe).await;
    assert!(r.contains("is not assigned"), "{r}");
    assert!(!server.saw_header_containing(ALICE), "the token left the host");
    assert!(server.paths().is_empty(), "refused requests are not sent: {:?}", server.paths());

    // Control: the operator's explicit choice does deliver it, substituted by the host.
    let rt = test_runtime(&format!("{open}[secrets]\nfrom_env = [\"exfil\"]\n"));
    assert!(exfil(&rt, &probe).await.starts_with("status=200"));
    assert!(server.saw_header_containing(ALICE), "from_env naming the plugin delivers the secret");
    assert_hello_works(&rt).await;
}

#[test]
fn inspect_and_doctor_name_every_secret_the_operator_has_not_assigned() {
    let mut env = Env::new(&["exfil", "hello"]);
    env.envs.push(("ALICE_TOKEN".into(), ALICE.into()));
    env.config("[plugins.exfil.secrets]\nBOUND = \"env:ALICE_TOKEN\"\n");
    let text = env.ok(&["plugins", "inspect", "exfil"]);
    let line = |name: &str| text.lines().find(|l| l.trim_start().starts_with(name)).unwrap_or_else(|| panic!("no {name} line: {text}")).to_string();
    assert!(line("ALICE_TOKEN").contains("NOT ASSIGNED"), "{text}");
    assert!(line("KEY").contains("NOT ASSIGNED"), "{text}");
    assert!(line("BOUND").contains("available") && line("BOUND").contains("env:ALICE_TOKEN"), "{text}");
    assert!(!text.contains(ALICE), "inspect must never print a value");
    let v = json(&env.ok(&["plugins", "inspect", "exfil", "--json"]));
    let alice = v["secrets"].as_array().unwrap().iter().find(|s| s["name"] == "ALICE_TOKEN").unwrap();
    assert_eq!(alice["assigned"], false, "{alice}");
    assert_eq!(alice["available"], false, "{alice}");

    let o = env.run(&["doctor"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "{out}");
    for name in ["ALICE_TOKEN", "KEY"] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("problem: secret {name} for plugin `exfil` is not assigned"))),
            "doctor must name {name}: {out}"
        );
    }
    assert!(!out.lines().any(|l| l.contains("secret BOUND")), "BOUND is assigned and set: {out}");
    // The manifest's loopback and metadata hosts are named as needing the operator.
    assert!(out.lines().any(|l| l.contains("asks in its manifest for http://169.254.169.254") && l.contains("only the operator can open")), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_cannot_grant_itself_loopback_private_or_metadata_addresses() {
    let server = TestServer::start().await;
    let port = server.addr.port();
    let rt = test_runtime("");
    // Its manifest lists http://127.0.0.1:*, http://localhost:* and http://169.254.169.254.
    let r = exfil(&rt, &format!("get http://127.0.0.1:{port}/by-ip")).await;
    assert!(r.starts_with("denied: plugin `exfil` may not reach 127.0.0.1"), "{r}");
    assert!(r.contains("the plugin's manifest asks for `http://127.0.0.1:*`, but only the operator can open such addresses"), "{r}");
    assert!(r.contains(&format!("[plugins.exfil]\n    allow_hosts = [\"http://127.0.0.1:{port}\"]")), "{r}");
    let r = exfil(&rt, "get http://169.254.169.254/latest/meta-data/iam/security-credentials/").await;
    assert!(r.starts_with("denied: plugin `exfil` may not reach 169.254.169.254") && r.contains("allow_hosts = [\"http://169.254.169.254\"]"), "{r}");
    // By name, `localhost` resolves to loopback: refused after resolution.
    let r = exfil(&rt, &format!("get http://localhost:{port}/by-name")).await;
    assert!(r.starts_with("denied: plugin `exfil`: localhost resolves to") && r.contains("only the operator can open"), "{r}");
    assert!(server.paths().is_empty(), "nothing may reach the server: {:?}", server.paths());

    // The operator's grant naming the address opens it (and only what it names).
    let rt = test_runtime("[plugins.exfil]\nallow_hosts = [\"http://127.0.0.1:*\"]\n");
    assert!(exfil(&rt, &format!("get http://127.0.0.1:{port}/granted")).await.starts_with("status=200"));
    assert!(exfil(&rt, &format!("get http://localhost:{port}/still-not")).await.starts_with("denied:"));
    assert_eq!(server.paths(), vec!["/granted".to_string()]);
    assert_hello_works(&rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_go_only_where_the_manifest_or_the_operator_binds_them() {
    let server = TestServer::start().await;
    let port = server.addr.port();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "sk-operator-key-1f0e3dad99908345").unwrap();
    let key = format!("file:{}", key_file.display());
    let both = "allow_hosts = [\"http://localhost:*\", \"http://127.0.0.1:*\"]";

    // Granting a host opens it, but sends it no secret: KEY is bound to api.example.invalid only.
    let rt = test_runtime(&format!("[plugins.exfil]\n{both}\n[plugins.exfil.secrets]\nKEY = \"{key}\"\n"));
    let r = exfil(&rt, &format!("secret KEY http://127.0.0.1:{port}/cdn")).await;
    assert!(r.starts_with("denied: plugin `exfil` tried to send secret `KEY` to"), "{r}");
    assert!(r.contains(&format!("KEY = {{ from = \"{key}\", hosts = [\"http://127.0.0.1:{port}\"] }}")), "the fix binds by name: {r}");
    assert!(exfil(&rt, &format!("get http://127.0.0.1:{port}/cdn-plain")).await.starts_with("status=200"), "the host itself is open");

    // The operator binds KEY to a host by name: it goes there, and still nowhere else.
    let rt = test_runtime(&format!(
        "[plugins.exfil]\n{both}\n[plugins.exfil.secrets]\nKEY = {{ from = \"{key}\", hosts = [\"http://127.0.0.1:{port}\"] }}\n"
    ));
    assert!(exfil(&rt, &format!("secret KEY http://127.0.0.1:{port}/bound-by-operator")).await.starts_with("status=200"));
    assert!(exfil(&rt, &format!("secret KEY http://localhost:{port}/other-name")).await.starts_with("denied:"));

    // A base_url override carries the manifest's binding (api.example.invalid) to the new origin only.
    let rt = test_runtime(&format!(
        "[plugins.exfil]\nbase_url = \"http://localhost:{port}/v1\"\n{both}\n[plugins.exfil.secrets]\nKEY = \"{key}\"\n"
    ));
    assert!(exfil(&rt, &format!("secret KEY http://localhost:{port}/via-base-url")).await.starts_with("status=200"));
    assert!(exfil(&rt, &format!("secret KEY http://127.0.0.1:{port}/not-the-base-url")).await.starts_with("denied:"));

    let seen = server.seen.lock().unwrap().clone();
    let with_key: Vec<&str> =
        seen.iter().filter(|s| s.headers.iter().any(|(_, v)| v.contains("sk-operator-key"))).map(|s| s.path.as_str()).collect();
    assert_eq!(with_key, vec!["/bound-by-operator", "/via-base-url"], "the key reached exactly the bound hosts");
    assert!(!seen.iter().any(|s| s.path == "/cdn" || s.path == "/other-name" || s.path == "/not-the-base-url"));
    assert_hello_works(&rt).await;
}

#[test]
fn inspect_prints_where_each_secret_will_really_go() {
    let mut env = Env::new(&["exfil"]);
    env.config(
        "[plugins.exfil]\nbase_url = \"http://localhost:8700\"\nallow_hosts = [\"http://localhost:8700\", \"https://cdn.example.net\"]\n\
         [plugins.exfil.secrets]\nKEY = { from = \"env:K\", hosts = [\"https://proxy.example.net\"] }\n",
    );
    let text = env.ok(&["plugins", "inspect", "exfil"]);
    let key = text.lines().find(|l| l.trim_start().starts_with("KEY")).unwrap();
    assert!(
        key.ends_with("sent only to https://api.example.invalid (manifest), http://localhost:8700 (operator's base_url), https://proxy.example.net (operator)"),
        "{text}"
    );
    assert!(!key.contains("cdn.example.net"), "an allow_hosts grant is no destination for a key: {key}");
    let v = json(&env.ok(&["plugins", "inspect", "exfil", "--json"]));
    let k = v["secrets"].as_array().unwrap().iter().find(|s| s["name"] == "KEY").unwrap();
    let hosts: Vec<&str> = k["sent_to"].as_array().unwrap().iter().map(|b| b["host"].as_str().unwrap()).collect();
    assert_eq!(hosts, vec!["https://api.example.invalid", "http://localhost:8700", "https://proxy.example.net"]);
}

#[test]
fn a_veo_key_never_reaches_the_storage_host_when_base_url_points_elsewhere() {
    // base_url points at a stand-in for a proxy; the download redirect goes to another host the
    // operator opened. The emulator refuses (400, "credential leak") a key at the storage host.
    let emu = Emu::start();
    let mut env = Env::new(&["veo-3", "filters"]);
    env.config(&emu.config_for(&["veo-3"], "#veo-3\npoll_interval_ms = 100"));
    env.envs.push(("GEMINI_API_KEY".into(), "emu-gemini-key".into()));
    let photo = small_photo(env.dir.path(), "coffee.png", 64);
    let out = env.path("clip.mp4");
    env.ok(&["animate", photo.to_str().unwrap(), "--prompt", "waves", "--model", "veo-3", "-o", out.to_str().unwrap()]);
    assert!(out.exists());
    let requests = emu.emu.state.requests();
    let storage: Vec<_> = requests.iter().filter(|r| r.host == "alt").collect();
    assert!(!storage.is_empty(), "the video came from the storage host");
    for r in storage {
        assert!(!r.headers.iter().any(|(_, v)| v.contains("emu-gemini-key")), "key at the storage host: {r:?}");
    }
    assert!(requests.iter().any(|r| r.host == "main" && r.headers.iter().any(|(k, v)| k == "x-goog-api-key" && v == "emu-gemini-key")));
}
