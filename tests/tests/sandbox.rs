//! Hostile plugins are contained, and the host keeps serving other jobs.
//!
//! Each test loads the staged test plugins (tests/hostile/*, plugins/hello) with an operator config
//! of its own, provokes one kind of misbehaviour and checks both the error text (it must name the
//! limit or config line that governs it) and that a `hello` job still succeeds.

use atelier::types::Submission;
use atelier_tests::*;
use std::time::{Duration, Instant};

fn err_text(e: anyhow::Error) -> String {
    format!("{e:#}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_is_stopped_at_the_deadline_while_other_jobs_run() {
    let rt = test_runtime("[plugins.spin.limits]\ncall_timeout_s = 1\n");
    let spin = rt.model("spin").expect("spin loads");
    let hello = rt.model("hello").expect("hello loads");

    let started = Instant::now();
    let spinning = tokio::spawn(async move {
        let r = spin.submit("job-spin", &request("loop")).await.map(|c| c.value);
        (r, started.elapsed())
    });
    // While spin burns its slot, other jobs must still be served promptly.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..3 {
        let sub = hello.submit("job-hello", &request("hi")).await.expect("hello's call succeeds").value;
        assert!(matches!(sub, Ok(Submission::Done(_))), "hello must succeed while spin runs: {sub:?}");
    }
    let hello_done = started.elapsed();

    let (spin_result, spin_elapsed) = spinning.await.unwrap();
    let msg = err_text(spin_result.expect_err("an infinite loop cannot return"));
    assert!(hello_done < spin_elapsed, "hello ({hello_done:?}) must finish while spin ({spin_elapsed:?}) still runs");
    assert!(msg.contains("plugin `spin` did not finish `submit` within 1 s"), "{msg}");
    assert!(msg.contains("[plugins.spin.limits]") && msg.contains("call_timeout_s = 2"), "{msg}");
    assert!(spin_elapsed >= Duration::from_millis(950), "stopped too early: {spin_elapsed:?}");
    assert!(spin_elapsed < Duration::from_secs(5), "stopped too late: {spin_elapsed:?}");
    assert_hello_works(&rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_stuck_in_a_slow_host_call_is_stopped_at_the_deadline() {
    // While the guest waits inside the `http.send` import no wasm runs, so the epoch deadline cannot
    // fire; the host's own timeout around the call must.
    let server = TestServer::start().await;
    let rt = test_runtime(&format!(
        "[plugins.fetcher]\nallow_hosts = [\"{}\"]\n[plugins.fetcher.limits]\ncall_timeout_s = 1\n",
        server.origin()
    ));
    let fetcher = rt.model("fetcher").unwrap();
    let started = Instant::now();
    let msg = err_text(fetcher.submit("job", &request(&server.url("/sleep/6000"))).await.err().expect("must be stopped"));
    let elapsed = started.elapsed();
    assert!(msg.contains("plugin `fetcher` did not finish `submit` within 1 s") && msg.contains("call_timeout_s"), "{msg}");
    assert!(elapsed < Duration::from_secs(4), "stopped after {elapsed:?}");
    assert_eq!(server.paths(), vec!["/sleep/6000".to_string()], "the request did go out");
    assert_hello_works(&rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bomb_hits_the_cap_and_the_error_names_memory_mb() {
    // membomb's manifest asks for 32 MiB; the operator lowers it further.
    let rt = test_runtime("[plugins.membomb.limits]\nmemory_mb = 16\n");
    let bomb = rt.model("membomb").expect("membomb loads");
    assert_eq!(bomb.limits.memory_mb, 16, "the operator's limit overrides the manifest's");
    let msg = err_text(bomb.submit("job-bomb", &request("boom")).await.err().expect("the bomb must not succeed"));
    assert!(msg.contains("plugin `membomb` ran out of memory in `submit`"), "{msg}");
    assert!(msg.contains("its limit is 16 MiB"), "{msg}");
    assert!(msg.contains("[plugins.membomb.limits]") && msg.contains("memory_mb = "), "{msg}");
    assert_hello_works(&rt).await;
    // A second bomb gets a fresh store and fails the same way: nothing leaked from the first.
    let again = err_text(bomb.submit("job-bomb-2", &request("boom")).await.err().unwrap());
    assert!(again.contains("ran out of memory"), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_that_traps_on_every_call_is_reported_as_crashed() {
    let rt = test_runtime("");
    let trap = rt.model("trap").expect("trap loads (it is a well-formed component)");
    let msg = err_text(trap.describe_model().await.expect_err("describe panics"));
    assert!(msg.contains("plugin `trap` crashed in `describe`") && msg.contains("report it to its author"), "{msg}");
    let msg = err_text(trap.prepare("job", &atelier_tests::draft("p", &[(8, 8)])).await.expect_err("prepare panics"));
    assert!(msg.contains("crashed in `prepare`"), "{msg}");
    let msg = err_text(trap.submit("job", &request("p")).await.err().expect("submit traps"));
    assert!(msg.contains("crashed in `submit`") && msg.contains("unreachable"), "{msg}");
    let msg = err_text(trap.poll("job", "token").await.expect_err("poll panics"));
    assert!(msg.contains("crashed in `poll`"), "{msg}");
    let msg = err_text(trap.cancel("job", "token").await.expect_err("cancel panics"));
    assert!(msg.contains("crashed in `cancel`"), "{msg}");
    let msg = err_text(trap.poll("job", "recurse").await.expect_err("unbounded recursion must trap"));
    // Rust keeps its stack in linear memory, stack-first: overflowing it faults below address 0,
    // which the host recognises (see stack_overflow_is_named_as_such_and_the_host_keeps_serving).
    assert!(msg.contains("plugin `trap` overflowed its stack in `poll`"), "{msg}");
    assert_hello_works(&rt).await;
    // Each call gets a fresh instance: the plugin is not poisoned, it just crashes again the same way.
    let msg = err_text(trap.describe_model().await.err().unwrap());
    assert!(msg.contains("crashed in `describe`"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_message_names_the_trap_once() {
    let rt = test_runtime("");
    let msg = err_text(rt.model("trap").unwrap().submit("job", &request("p")).await.err().unwrap());
    assert!(!msg.contains("wasm trap: wasm trap:"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlisted_host_is_denied_with_the_config_line_that_would_allow_it() {
    let server = TestServer::start().await;
    let rt = test_runtime("");
    let fetcher = rt.model("fetcher").unwrap();
    let n = notes(&fetcher.submit("job", &request(&server.url("/secret-data"))).await.unwrap().value.unwrap());
    let err = n.get("error").unwrap_or_else(|| panic!("the request must fail: {n:?}"));
    assert!(err.starts_with("denied: plugin `fetcher` may not reach"), "{err}");
    let line = format!("allow_hosts = [\"{}\"]", server.origin());
    assert!(err.contains("[plugins.fetcher]") && err.contains(&line), "expected `{line}` in: {err}");
    assert!(server.paths().is_empty(), "the server must not have been contacted: {:?}", server.paths());

    // Applying exactly that line lets the same request through.
    let rt = test_runtime(&format!("[plugins.fetcher]\n{line}\n"));
    let n = notes(&rt.model("fetcher").unwrap().submit("job", &request(&server.url("/secret-data"))).await.unwrap().value.unwrap());
    assert_eq!(n.get("status").map(String::as_str), Some("200"), "{n:?}");
    assert_eq!(server.paths(), vec!["/secret-data".to_string()]);
    assert_hello_works(&rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_from_an_allowed_host_to_an_unlisted_one_is_refused() {
    let allowed = TestServer::start().await;
    let unlisted = TestServer::start().await;
    let rt = test_runtime(&format!("[plugins.fetcher]\nallow_hosts = [\"{}\"]\n", allowed.origin()));
    let fetcher = rt.model("fetcher").unwrap();

    // Control: a redirect that stays inside the allow-list is followed.
    let inside = allowed.url(&format!("/redirect?to={}", allowed.url("/landing")));
    let n = notes(&fetcher.submit("job", &request(&inside)).await.unwrap().value.unwrap());
    assert_eq!(n.get("status").map(String::as_str), Some("200"), "{n:?}");
    assert_eq!(n.get("body").map(String::as_str), Some("ok /landing"), "{n:?}");

    let outside = allowed.url(&format!("/redirect?to={}", unlisted.url("/stolen")));
    let n = notes(&fetcher.submit("job", &request(&outside)).await.unwrap().value.unwrap());
    let err = n.get("error").unwrap_or_else(|| panic!("the redirect must be refused: {n:?}"));
    assert!(err.starts_with(&format!("denied: redirect from {} refused", allowed.origin())), "{err}");
    assert!(err.contains(&format!("allow_hosts = [\"{}\"]", unlisted.origin())), "{err}");
    assert!(unlisted.paths().is_empty(), "the unlisted host must never be contacted: {:?}", unlisted.paths());
    assert_hello_works(&rt).await;
}

/// The exfil plugin's secrets, read from files the test writes (no process-wide env changes).
struct Secrets {
    _dir: tempfile::TempDir,
    config: String,
}

const KEY_VALUE: &str = "sk-key-8f14e45fceea167a";
const BOUND_VALUE: &str = "sk-bound-c9f0f895fb98ab91";

fn exfil_secrets(extra: &str) -> Secrets {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), KEY_VALUE).unwrap();
    std::fs::write(dir.path().join("bound"), BOUND_VALUE).unwrap();
    let config = format!(
        "[plugins.exfil]\n{extra}\n[plugins.exfil.secrets]\nKEY = \"file:{}\"\nBOUND = \"file:{}\"\n",
        dir.path().join("key").display(),
        dir.path().join("bound").display()
    );
    Secrets { _dir: dir, config }
}

async fn exfil(rt: &atelier::Runtime, prompt: &str) -> String {
    let sub = rt.model("exfil").unwrap().submit("job-exfil", &request(prompt)).await.unwrap().value;
    let n = notes(&sub.unwrap_or_else(|e| panic!("exfil `{prompt}` failed: {e:?}")));
    let result = n["result"].clone();
    assert!(!result.contains(KEY_VALUE) && !result.contains(BOUND_VALUE), "a secret reached the plugin: {result}");
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_go_only_to_the_hosts_they_are_bound_to() {
    let server = TestServer::start().await;
    let port = server.addr.port();
    // The operator opens loopback (a manifest cannot); that grants reachability, not secrets.
    let s = exfil_secrets("allow_hosts = [\"http://localhost:*\", \"http://127.0.0.1:*\"]");
    let rt = test_runtime(&s.config);

    // Control: BOUND is bound to http://localhost:* and arrives there, substituted.
    let r = exfil(&rt, &format!("secret BOUND http://localhost:{port}/bound")).await;
    assert!(r.starts_with("status=200"), "{r}");
    assert!(server.saw_header_containing(&format!("Bearer {BOUND_VALUE}")), "the bound secret must be substituted");

    // KEY is bound only to https://api.example.invalid: sending it to an allowed host is refused.
    let r = exfil(&rt, &format!("secret KEY http://127.0.0.1:{port}/leak-key")).await;
    assert!(r.starts_with("denied: plugin `exfil` tried to send secret `KEY` to"), "{r}");
    assert!(r.contains("a host it is not bound to; the request was not sent"), "{r}");
    // Binding is by origin, not by address: the same server under another name gets nothing.
    let r = exfil(&rt, &format!("secret BOUND http://127.0.0.1:{port}/leak-bound")).await;
    assert!(r.starts_with("denied:") && r.contains("secret `BOUND`"), "{r}");
    // A redirect from a bound host to an allowed but unbound one drops the key header.
    let hop = format!("secret BOUND http://localhost:{port}/redirect?to=http://127.0.0.1:{port}/after-redirect");
    let r = exfil(&rt, &hop).await;
    assert!(r.starts_with("status=200"), "{r}");

    let paths = server.paths();
    assert!(!paths.iter().any(|p| p.starts_with("/leak")), "refused requests must not be sent: {paths:?}");
    assert!(paths.iter().any(|p| p == "/after-redirect"), "{paths:?}");
    assert!(!server.saw_header_containing(KEY_VALUE), "KEY reached the server");
    let after = server.seen.lock().unwrap().iter().find(|s| s.path == "/after-redirect").cloned().unwrap();
    assert!(
        !after.headers.iter().any(|(_, v)| v.contains(BOUND_VALUE)),
        "BOUND followed the redirect to an unbound host: {:?}",
        after.headers
    );
    // An undeclared secret name is refused too.
    let r = exfil(&rt, &format!("secret OTHER http://localhost:{port}/undeclared")).await;
    assert!(r.contains("does not declare under [permissions.secrets]"), "{r}");
    assert!(!server.paths().iter().any(|p| p == "/undeclared"));
    assert_hello_works(&rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlisted_host_from_a_plugin_with_other_grants_is_denied() {
    let server = TestServer::start().await;
    let port = server.addr.port();
    let rt = test_runtime("[plugins.exfil]\nallow_hosts = [\"http://localhost:*\"]\n");
    // exfil may reach http://localhost:* (and what its manifest lists), nothing else.
    let r = exfil(&rt, &format!("get http://127.0.0.2:{port}/x")).await;
    assert!(r.starts_with("denied: plugin `exfil` may not reach http://127.0.0.2:"), "{r}");
    assert!(r.contains(&format!("allow_hosts = [\"http://127.0.0.2:{port}\"]")), "{r}");
    let r = exfil(&rt, "get https://example.com/").await;
    assert!(r.contains("allow_hosts = [\"https://example.com\"]"), "{r}");
    let r = exfil(&rt, &format!("get http://localhost:{port}/fine")).await;
    assert!(r.starts_with("status=200"), "{r}");
    assert_eq!(server.paths(), vec!["/fine".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_get_never_returns_a_secret() {
    // The operator mistakenly also put the key among plain settings; it must still not reach the plugin.
    let s = exfil_secrets(&format!("KEY = \"{KEY_VALUE}\"\ncolor = \"red\""));
    let rt = test_runtime(&s.config);
    assert_eq!(exfil(&rt, "config KEY").await, "none");
    assert_eq!(exfil(&rt, "config BOUND").await, "none");
    assert_eq!(exfil(&rt, "config allow_hosts").await, "none");
    // Control: a plain setting does arrive, with the operator's value over the manifest default.
    assert_eq!(exfil(&rt, "config color").await, "some:red");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_over_the_cap_is_refused_as_too_large() {
    let server = TestServer::start().await;
    let rt = test_runtime(&format!("[limits]\nhttp_max_response_mb = 1\n[plugins.fetcher]\nallow_hosts = [\"{}\"]\n", server.origin()));
    let fetcher = rt.model("fetcher").unwrap();
    let n = notes(&fetcher.submit("job", &request(&server.url("/bytes/524288"))).await.unwrap().value.unwrap());
    assert_eq!(n.get("body_len").map(String::as_str), Some("524288"), "under the cap passes: {n:?}");
    let n = notes(&fetcher.submit("job", &request(&server.url("/bytes/2097152"))).await.unwrap().value.unwrap());
    let err = n.get("error").unwrap_or_else(|| panic!("2 MiB must be refused: {n:?}"));
    assert!(err.starts_with("too-large:") && err.contains("1 MiB cap") && err.contains("http_max_response_mb"), "{err}");
    assert_hello_works(&rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_bigger_than_the_plugins_memory_is_a_memory_error_not_a_crash() {
    // Under the host's response cap (64 MiB default) but over the plugin's own memory cap.
    let server = TestServer::start().await;
    let rt = test_runtime(&format!(
        "[plugins.fetcher]\nallow_hosts = [\"{}\"]\n[plugins.fetcher.limits]\nmemory_mb = 16\n",
        server.origin()
    ));
    let fetcher = rt.model("fetcher").unwrap();
    let msg = err_text(fetcher.submit("job", &request(&server.url("/bytes/33554432"))).await.err().expect("32 MiB cannot fit in 16 MiB"));
    assert!(msg.contains("plugin `fetcher` ran out of memory in `submit`") && msg.contains("memory_mb"), "{msg}");
    assert_hello_works(&rt).await;
}

async fn fetch_with_grant(grant: &str, url: &str) -> std::collections::BTreeMap<String, String> {
    let rt = test_runtime(&format!("[plugins.fetcher]\nallow_hosts = [\"{grant}\"]\n"));
    notes(&rt.model("fetcher").unwrap().submit("job", &request(url)).await.unwrap().value.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_needs_a_grant_that_names_it() {
    let server = TestServer::start().await;
    let port = server.addr.port();

    // An IP literal matched only through a wildcard is not a grant for a loopback address.
    let n = fetch_with_grant(&format!("http://*.0.0.1:{port}"), &server.url("/wildcard")).await;
    let err = n.get("error").unwrap_or_else(|| panic!("must be denied: {n:?}"));
    assert!(err.contains("may not reach 127.0.0.1") && err.contains("need an operator grant that names them"), "{err}");
    assert!(err.contains(&format!("allow_hosts = [\"{}\"]", server.origin())), "{err}");

    // Naming the address (any port) is a grant.
    let n = fetch_with_grant("http://127.0.0.1:*", &server.url("/named-ip")).await;
    assert_eq!(n.get("status").map(String::as_str), Some("200"), "{n:?}");
    // `localhost` by name may resolve to loopback.
    let n = fetch_with_grant("http://localhost:*", &format!("http://localhost:{port}/named-localhost")).await;
    assert_eq!(n.get("status").map(String::as_str), Some("200"), "{n:?}");
    assert_eq!(server.paths(), vec!["/named-ip".to_string(), "/named-localhost".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_resolving_to_a_private_address_is_refused_after_resolution() {
    use std::net::ToSocketAddrs;
    let server = TestServer::start().await;
    let port = server.addr.port();
    // The machine's own name usually resolves to a loopback or private address (/etc/hosts); it is
    // the realistic case of an innocent-looking grant that points inside.
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_ascii_lowercase();
    let resolved: Vec<std::net::IpAddr> =
        (name.as_str(), port).to_socket_addrs().map(|a| a.map(|s| s.ip()).collect()).unwrap_or_default();
    let Some(ip) = resolved.first().copied().filter(|ip| atelier::caps::hosts::is_sensitive(*ip)) else {
        eprintln!("SKIPPED: hostname `{name}` does not resolve to a private address here ({resolved:?})");
        return;
    };
    let n = fetch_with_grant(&format!("http://{name}:{port}"), &format!("http://{name}:{port}/via-name")).await;
    let err = n.get("error").unwrap_or_else(|| panic!("must be refused: {n:?}"));
    assert!(err.starts_with("denied:") && err.contains(&format!("{name} resolves to {ip}")), "{err}");
    assert!(server.paths().is_empty(), "{:?}", server.paths());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_sees_no_env_no_files_no_sockets_and_no_clock_but_the_import() {
    let rt = test_runtime("");
    let n = notes(&rt.model("probe").unwrap().submit("job", &request("probe")).await.unwrap().value.unwrap());
    assert!(std::env::vars_os().count() > 0, "the test process itself has an environment");
    assert_eq!(n["env_count"], "0", "{n:?}");
    assert_eq!(n["args_count"], "0", "{n:?}");
    assert!(n["read_dir_root"].starts_with("error"), "{n:?}");
    assert!(n["read_file"].starts_with("error"), "{n:?}");
    assert!(n["tcp_connect"].starts_with("error"), "{n:?}");
    // WASI clocks read as frozen zero; only the `clock` import tells time.
    assert_eq!(n["system_time_ms"], "0", "{n:?}");
    assert_eq!(n["instant_elapsed_ns"], "0", "{n:?}");
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let wall: i64 = n["clock_wall_ms"].parse().unwrap();
    assert!((wall - now_ms).abs() < 60_000, "clock import {wall} vs host {now_ms}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_literal_grant_from_the_denial_message_is_honoured() {
    // The denial for http://[::1]:PORT suggests `allow_hosts = ["http://[::1]:PORT"]`; that line must then work.
    let pattern = atelier::caps::hosts::HostPattern::parse("http://[::1]:8700").unwrap();
    let url = atelier::caps::hosts::HostPattern::origin_of(&"http://[::1]:8700/x".parse().unwrap());
    assert_eq!(url, "http://[::1]:8700");
    assert!(pattern.matches(&"http://[::1]:8700/x".parse().unwrap()), "{pattern:?} must match http://[::1]:8700");

    let rt = test_runtime("");
    let n = notes(&rt.model("fetcher").unwrap().submit("job", &request("http://[::1]:8700/x")).await.unwrap().value.unwrap());
    let err = n.get("error").cloned().unwrap_or_default();
    assert!(err.contains("allow_hosts = [\"http://[::1]:8700\"]"), "{err}");
    let n = fetch_with_grant("http://[::1]:8700", "http://[::1]:8700/x").await;
    // Nothing listens there, so a connection error is fine; a denial is not.
    let err = n.get("error").cloned().unwrap_or_default();
    assert!(!err.starts_with("denied:"), "the suggested grant was not honoured: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spinning_plugin_cannot_take_every_instance_slot() {
    use atelier::wasm::engine::EngineOptions;
    // A small pool makes the starvation cheap to show: 4 slots, 4 spinning jobs.
    let settings = atelier::Settings::parse("[plugins.spin.limits]\ncall_timeout_s = 3\n", None).unwrap();
    let opts = atelier::RuntimeOptions {
        plugin_dirs: vec![plugins_dir()],
        only_given_dirs: true,
        cache_dir: Some(cache_dir()),
        engine: EngineOptions { max_instances: 4, ..Default::default() },
    };
    let rt = atelier::Runtime::new(settings, opts).unwrap();
    let spin = rt.model("spin").unwrap();
    let hello = rt.model("hello").unwrap();
    let spinning: Vec<_> = (0..4)
        .map(|i| {
            let spin = spin.clone();
            tokio::spawn(async move { spin.submit(&format!("job-spin-{i}"), &request("loop")).await.map(|c| c.value) })
        })
        .collect();
    // Let all four take their slots (the machine may be busy).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let sub = hello.submit("job-hello", &request("hi")).await.unwrap().value;
    let waited = started.elapsed();
    assert!(matches!(sub, Ok(Submission::Done(_))));
    for s in spinning {
        assert!(s.await.unwrap().is_err(), "spin never returns");
    }
    assert!(waited < Duration::from_millis(1000), "hello waited {waited:?} for a slot held by spinning jobs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_overflow_is_named_as_such_and_the_host_keeps_serving() {
    let rt = test_runtime("");
    let deep = rt.model("deep").expect("deep loads");
    // "shadow": Rust's stack in linear memory runs below 0 (the engine sees a memory fault near
    // 4 GiB); "native": the engine's own call stack runs out (wasmtime's Trap::StackOverflow).
    for (mode, function) in [("shadow", "hostile_deep::shadow_frames"), ("native", "hostile_deep::native_frames")] {
        let msg = err_text(deep.submit("job", &request(mode)).await.err().unwrap_or_else(|| panic!("{mode}: unbounded recursion must trap")));
        assert!(
            msg.starts_with("plugin `deep` overflowed its stack in `submit` (deep recursion in the plugin; report it to its author)"),
            "{mode}: {msg}"
        );
        assert!(msg.contains(&format!("recursing in {function}")), "{mode}: {msg}");
        assert!(!msg.contains("out of bounds") && !msg.contains("crashed"), "{mode}: {msg}");
        assert_hello_works(&rt).await;
    }
}
