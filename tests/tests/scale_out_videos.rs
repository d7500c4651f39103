//! Shared video records: two `atelier serve --no-worker` front ends on their own state dirs and one
//! `atelier worker` share PostgreSQL (jobs and video records) and a moto bucket (`[storage]`). A
//! slow Veo video created on front end A is answered for by front end B while it runs, and B
//! deletes another of A's while A makes it (its job is cancelled). A is then SIGKILLed, and B,
//! seeing A's claim on the video run out, finishes it (without sending it again), serves its
//! content byte for byte as the bucket holds it, lists and counts it, and deletes it; a third
//! video, whose job fails after A's death, ends failed.
//!
//! Without PostgreSQL or moto the test prints SKIPPED (with CI set it fails).

mod common;

use atelier::jobs::JobState;
use atelier::jobs::store::JobStore;
use atelier::jobs::store::postgres::PgStore;
use common::postgres::Postgres;
use common::s3::Moto;
use common::{Emu, Env, Serve, VEO, png64};
use common::worker::Worker;
use std::time::{Duration, Instant};

fn front_end(env: &Env, dir: &std::path::Path) -> (Serve, String) {
    let mut cmd = env.cmd();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--insecure-no-auth", "--no-worker", "--state-dir"]).arg(dir);
    let (serve, addr) = Serve::start(cmd);
    (serve, format!("http://{addr}"))
}

#[test]
fn any_front_end_answers_for_a_video_and_finishes_it_when_its_maker_is_killed() {
    let Some(pg) = Postgres::start() else { return };
    let Some(moto) = Moto::start() else { return };
    let url = pg.database("atelier");
    let emu = Emu::start();
    let io = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    io.block_on(moto.create_bucket("atelier-results"));
    let mut env = Env::new(&["veo-3", "filters"]);
    std::fs::write(env.path("s3.id"), "atelier-test-key\n").unwrap();
    std::fs::write(env.path("s3.secret"), "atelier-test-secret\n").unwrap();
    let extra = format!(
        "#global\n[jobs]\ndatabase = \"{url}\"\nlease_s = 2\nmax_backoff_s = 0.5\n[storage]\nurl = \"s3://atelier-results/prod\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\naccess_key_id = \"file:{}\"\nsecret_access_key = \"file:{}\"\n---\n#veo-3\npoll_interval_ms = 100",
        moto.endpoint,
        env.path("s3.id").display(),
        env.path("s3.secret").display()
    );
    env.config(&emu.config_for(&["veo-3"], &extra));
    env.envs.push(("GEMINI_API_KEY".into(), "emu-gemini-key".into()));
    env.ok(&["models", "--json"]);
    let _worker = Worker::start(&env, "worker", [std::ffi::OsStr::new("--state-dir"), env.path("worker").as_os_str()]);
    let (mut a, base_a) = front_end(&env, &env.path("front-a"));
    let (_b, base_b) = front_end(&env, &env.path("front-b"));
    let http = reqwest::Client::new();
    let png = png64();

    // Made on A: a Veo video the emulator finishes on its 60th poll (about 6 s at 100 ms), and
    // one it would take minutes over.
    let create = |prompt: &'static [u8]| {
        let (http, png, base_a) = (&http, &png, &base_a);
        async move {
            let (ct, form) = common::multipart(&[("input_reference", Some("f.png"), png), ("prompt", None, prompt), ("model", None, b"veo-3"), ("seconds", None, b"8")]);
            let r = http.post(format!("{base_a}/v1/videos")).header("content-type", ct).body(form).send().await.unwrap();
            let status = r.status();
            let body: serde_json::Value = r.json().await.unwrap();
            assert!(status.is_success(), "video: {status} {body}");
            body["id"].as_str().unwrap().to_string()
        }
    };
    let id = io.block_on(create(b"waves [fault:slow-op:60]"));
    let long = io.block_on(create(b"tides [fault:slow-op:5000]"));
    let failing = io.block_on(create(b"storm [fault:slow-op:60] [fault:op-error]"));
    // Pending at the provider: B answers for it while it runs.
    emu.wait_for_operation_polls(3, 60);
    let running: serde_json::Value = io.block_on(async { http.get(format!("{base_b}/v1/videos/{id}")).send().await.unwrap().json().await.unwrap() });
    assert_eq!(running["id"], id.as_str(), "B answers for A's video: {running}");
    assert!(matches!(running["status"].as_str(), Some("queued" | "in_progress")), "still running: {running}");

    // B deletes A's long video while A makes it: gone at once, and its job is cancelled.
    io.block_on(async {
        let r = http.delete(format!("{base_b}/v1/videos/{long}")).send().await.unwrap();
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(status.is_success() && body["deleted"] == true, "DELETE via B of a running video: {status} {body}");
        assert_eq!(http.get(format!("{base_a}/v1/videos/{long}")).send().await.unwrap().status(), 404, "deleted for A too");
    });
    let jobs = io.block_on(PgStore::connect(&url)).unwrap();
    let long_job = {
        let t = Instant::now();
        loop {
            let all = io.block_on(jobs.list(&[])).unwrap();
            let j = all.into_iter().find(|j| j.plan["paths"][0].as_str().is_some_and(|p| p.contains(&long))).expect("the long video's job");
            if j.state == JobState::Cancelled {
                break j;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "the deleted video's job was not cancelled within 30 s: {j:?} {}", pg.psql("atelier", "SELECT id, state, cancel_requested, lease_owner FROM jobs"));
            std::thread::sleep(Duration::from_millis(200));
        }
    };

    // A dies mid-job; B takes the video over once A's claim runs out, and finishes it.
    a.kill();
    let served: Vec<u8> = io.block_on(async {
        let t = Instant::now();
        loop {
            assert!(t.elapsed() < Duration::from_secs(90), "the video did not complete within 90 s of A's death");
            tokio::time::sleep(Duration::from_millis(300)).await;
            let v: serde_json::Value = http.get(format!("{base_b}/v1/videos/{id}")).send().await.unwrap().json().await.unwrap();
            match v["status"].as_str() {
                Some("completed") => break,
                Some("failed") => panic!("the video failed instead of being finished by B: {v}"),
                _ => {}
            }
        }
        let r = http.get(format!("{base_b}/v1/videos/{id}/content")).send().await.unwrap();
        assert!(r.status().is_success(), "content from B: {}", r.status());
        r.bytes().await.unwrap().to_vec()
    });
    let keys = io.block_on(moto.keys("atelier-results", &format!("prod/videos/{id}/")));
    assert_eq!(keys.len(), 1, "one object for the video: {keys:?}");
    let in_bucket = io.block_on(moto.object("atelier-results", &keys[0])).unwrap();
    assert!(in_bucket.len() > 1000 && &in_bucket[4..8] == b"ftyp", "an MP4 from the emulator");
    assert_eq!(served, in_bucket, "B serves the video byte for byte as the bucket holds it");
    // The one whose job failed after A died gets that state from B.
    let ended: serde_json::Value = io.block_on(async {
        let t = Instant::now();
        loop {
            let v: serde_json::Value = http.get(format!("{base_b}/v1/videos/{failing}")).send().await.unwrap().json().await.unwrap();
            if !matches!(v["status"].as_str(), Some("queued" | "in_progress")) {
                break v;
            }
            assert!(t.elapsed() < Duration::from_secs(60), "the failing video did not end within 60 s: {v}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    assert_eq!((ended["status"].as_str(), ended["error"]["code"].as_str()), (Some("failed"), Some("video_generation_failed")), "{ended}");
    assert_eq!(emu.count("POST", VEO.submit), 3, "each video was sent to the provider once");
    let all = io.block_on(jobs.list(&[])).unwrap();
    assert_eq!(all.len(), 3, "one job per video: {all:?}");
    for j in all.iter().filter(|j| j.id != long_job.id) {
        let made = j.plan["paths"][0].as_str().is_some_and(|p| p.contains(&id));
        assert_eq!((j.state, j.submits), (if made { JobState::Done } else { JobState::Failed }, 1), "{:?}", j.error);
    }

    // B lists it (A's video, the caller's), and counts it.
    io.block_on(async {
        let page: serde_json::Value = http.get(format!("{base_b}/v1/videos?limit=1")).send().await.unwrap().json().await.unwrap();
        assert_eq!(page["data"][0]["id"], failing.as_str(), "B lists A's videos, newest first: {page}");
        let page: serde_json::Value = http.get(format!("{base_b}/v1/videos?after={failing}")).send().await.unwrap().json().await.unwrap();
        assert_eq!(page["data"][0]["id"], id.as_str(), "B pages on through A's videos: {page}");
        assert_eq!(page["has_more"], false, "the deleted one is not listed: {page}");
        let after: serde_json::Value = http.get(format!("{base_b}/v1/videos?after={long}&order=asc")).send().await.unwrap().json().await.unwrap();
        let ids: Vec<_> = after["data"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [failing.as_str()], "a deleted video stays a cursor: {after}");
        let metrics = http.get(format!("{base_b}/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("atelier_videos{status=\"completed\"} 1") && metrics.contains("atelier_videos{status=\"failed\"} 1"), "{metrics}");
    });

    assert!(env.path("front-b").join("server/videos").join(&id).is_dir(), "B finished the video in its own state dir");

    // B deletes it: gone from the records and the bucket.
    io.block_on(async {
        let r = http.delete(format!("{base_b}/v1/videos/{id}")).send().await.unwrap();
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(status.is_success() && body["deleted"] == true, "DELETE via B: {status} {body}");
        let r = http.get(format!("{base_b}/v1/videos/{id}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "deleted");
    });
    assert!(io.block_on(moto.keys("atelier-results", &format!("prod/videos/{id}/"))).is_empty(), "its object is gone from the bucket");
}
