//! The job store's contract, run against both implementations: SQLite in a state dir and
//! PostgreSQL (a throwaway cluster on a free port; SKIPPED where PostgreSQL is not installed,
//! a failure with the install command when CI is set). Each check is a function of a store.

mod common;

use atelier::jobs::store::{CancelAsked, InFlightCaps, JobStore, NewJob, postgres::PgStore};
use atelier::jobs::{JobDb, JobState};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

type Store = Arc<dyn JobStore>;

const LEASE: Duration = Duration::from_millis(400);

fn job<'a>(id: &'a str, plan: &'a serde_json::Value, request: Option<&'a [u8]>) -> NewJob<'a> {
    NewJob { id, plugin: "veo-3", model: "veo-3.1", plan, contract: "0.2.0", component_digest: "ab12", queued_request: request, lease: None }
}

fn no_caps() -> InFlightCaps {
    InFlightCaps::new()
}

async fn after_lease() {
    tokio::time::sleep(LEASE + Duration::from_millis(150)).await;
}

/// A job's life as the runner records it, and what comes back.
async fn records_a_jobs_life(s: Store) {
    let plan = json!({"paths": ["out/a.png"]});
    s.create(&job("j-1", &plan, None)).await.unwrap();
    let j = s.get("j-1").await.unwrap().unwrap();
    assert_eq!((j.state, j.submits, j.contract.as_deref(), j.component_digest.as_deref()), (JobState::Submitting, 0, Some("0.2.0"), Some("ab12")));
    assert_eq!(j.plan, plan);
    s.count_submit("j-1").await.unwrap();
    s.set_pending("j-1", "operations/1").await.unwrap();
    s.count_poll("j-1").await.unwrap();
    s.count_poll("j-1").await.unwrap();
    let j = s.get("j-1").await.unwrap().unwrap();
    assert_eq!((j.state, j.token.as_deref(), j.submits, j.polls), (JobState::Pending, Some("operations/1"), 1, 2));
    assert_eq!(s.list(&[JobState::Pending]).await.unwrap().len(), 1);
    assert!(s.list(&[JobState::Done]).await.unwrap().is_empty());
    s.set_done("j-1", &json!({"job": "j-1", "artifacts": []})).await.unwrap();
    s.set_outputs("j-1", &json!([{"path": "out/a.png"}])).await.unwrap();
    let j = s.get("j-1").await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Done);
    assert_eq!(j.outputs.unwrap()[0]["path"], "out/a.png");
    s.create(&job("j-2", &plan, None)).await.unwrap();
    s.set_final("j-2", JobState::Failed, "boom").await.unwrap();
    let all = s.list(&[]).await.unwrap();
    assert_eq!(all.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["j-2", "j-1"], "newest first");
    let counts = s.count_by_state().await.unwrap();
    assert!(counts.contains(&(JobState::Done, 1)) && counts.contains(&(JobState::Failed, 1)), "{counts:?}");
    assert!(s.get("nope").await.unwrap().is_none());
}

/// Many workers claiming at once never take the same queued job, and each gets its request.
async fn claims_each_queued_job_once(s: Store) {
    let plan = json!({});
    for i in 0..30 {
        let req = format!("request {i}");
        s.create(&job(&format!("q-{i:02}"), &plan, Some(req.as_bytes()))).await.unwrap();
    }
    let mut tasks = vec![];
    for w in 0..6 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = vec![];
            while let Some(c) = s.claim(&format!("w{w}"), LEASE * 10, &no_caps()).await.unwrap() {
                assert_eq!(c.job.state, JobState::Submitting, "a queued job is claimed to be submitted");
                let want = format!("request {}", c.job.id[2..].parse::<u32>().unwrap());
                assert_eq!(c.request.as_deref(), Some(want.as_bytes()));
                got.push(c.job.id);
            }
            got
        }));
    }
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!((before, all.len()), (30, 30), "every job claimed exactly once");
    // Held leases: nothing more to claim.
    assert!(s.claim("w9", LEASE, &no_caps()).await.unwrap().is_none());
}

/// A worker that stops while submitting: with a submit counted, the job becomes `unknown` and is
/// never claimed again; with none, it is queued again and another worker sends it.
async fn an_expired_submit_is_unknown_never_resent(s: Store) {
    let plan = json!({});
    s.create(&job("sent", &plan, Some(b"r1"))).await.unwrap();
    s.create(&job("unsent", &plan, Some(b"r2"))).await.unwrap();
    let a = s.claim("w1", LEASE, &no_caps()).await.unwrap().unwrap();
    let b = s.claim("w1", LEASE, &no_caps()).await.unwrap().unwrap();
    assert_eq!((a.job.id.as_str(), b.job.id.as_str()), ("sent", "unsent"));
    s.count_submit("sent").await.unwrap();
    assert!(s.expire_submitting().await.unwrap().is_empty(), "leases still live");
    after_lease().await;
    assert_eq!(s.expire_submitting().await.unwrap(), ["sent"]);
    let sent = s.get("sent").await.unwrap().unwrap();
    assert_eq!((sent.state, sent.submits), (JobState::Unknown, 1));
    assert!(sent.error.unwrap().contains("not submitted again"));
    assert_eq!(s.get("unsent").await.unwrap().unwrap().state, JobState::Queued);
    let again = s.claim("w2", LEASE, &no_caps()).await.unwrap().expect("the unsent job is claimed again");
    assert_eq!((again.job.id.as_str(), again.request.as_deref()), ("unsent", Some(&b"r2"[..])));
    assert!(s.claim("w2", LEASE, &no_caps()).await.unwrap().is_none(), "an unknown job is never claimed");
    // The first worker lost both leases.
    assert!(s.renew("w1", &["sent".into(), "unsent".into()], LEASE).await.unwrap().is_empty());
}

/// A pending job whose worker stopped renewing is polled on by another; the first has lost it.
async fn a_pending_job_moves_on_when_its_lease_runs_out(s: Store) {
    let plan = json!({});
    s.create(&job("p", &plan, Some(b"r"))).await.unwrap();
    s.claim("w1", LEASE, &no_caps()).await.unwrap().unwrap();
    s.count_submit("p").await.unwrap();
    s.set_pending("p", "operations/p").await.unwrap();
    for _ in 0..3 {
        tokio::time::sleep(LEASE / 2).await;
        let held = s.renew("w1", &["p".into()], LEASE).await.unwrap();
        assert_eq!(held.len(), 1, "renewed in time, kept");
        assert!(s.claim("w2", LEASE, &no_caps()).await.unwrap().is_none(), "a live lease is not taken");
    }
    after_lease().await;
    let c = s.claim("w2", LEASE, &no_caps()).await.unwrap().expect("claimed after the lease ran out");
    assert_eq!((c.job.state, c.job.token.as_deref(), c.job.submits), (JobState::Pending, Some("operations/p"), 1));
    assert!(s.expire_submitting().await.unwrap().is_empty(), "a pending job is never made unknown");
    assert!(s.renew("w1", &["p".into()], LEASE).await.unwrap().is_empty(), "w1 lost it");
    assert_eq!(s.renew("w2", &["p".into()], LEASE).await.unwrap().len(), 1);
    // Let go on a graceful stop: another worker takes it at once.
    s.release("w2", "p").await.unwrap();
    assert_eq!(s.claim("w3", LEASE, &no_caps()).await.unwrap().unwrap().job.id, "p");
    s.set_done("p", &json!({})).await.unwrap();
    assert!(s.renew("w3", &["p".into()], LEASE).await.unwrap().is_empty(), "a finished job holds no lease");
}

/// Cancel: a queued job ends at once; a running one is flagged for its lease holder.
async fn cancel_is_a_column_the_holder_reads(s: Store) {
    let plan = json!({});
    s.create(&job("c-queued", &plan, Some(b"r"))).await.unwrap();
    assert_eq!(s.request_cancel("c-queued").await.unwrap(), CancelAsked::Cancelled);
    assert_eq!(s.get("c-queued").await.unwrap().unwrap().state, JobState::Cancelled);
    assert!(s.claim("w1", LEASE, &no_caps()).await.unwrap().is_none(), "a cancelled job is not claimed");
    s.create(&job("c-run", &plan, Some(b"r"))).await.unwrap();
    s.claim("w1", LEASE, &no_caps()).await.unwrap().unwrap();
    let listener = match s.as_any().downcast_ref::<PgStore>() {
        Some(pg) => Some(pg.listen_cancels().await.unwrap()),
        None => None,
    };
    assert_eq!(s.request_cancel("c-run").await.unwrap(), CancelAsked::Asked);
    let held = s.renew("w1", &["c-run".into()], LEASE).await.unwrap();
    assert!(held[0].cancel_requested, "{held:?}");
    if let Some(mut rx) = listener {
        let id = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("NOTIFY heard").unwrap();
        assert_eq!(id, "c-run");
    }
    s.set_final("c-run", JobState::Cancelled, "cancelled by the user").await.unwrap();
    assert_eq!(s.request_cancel("c-run").await.unwrap(), CancelAsked::Ended(JobState::Cancelled));
    assert_eq!(s.request_cancel("nope").await.unwrap(), CancelAsked::Missing);
}

/// Heartbeats name the workers and count the leases each holds.
async fn heartbeats_show_workers_and_leases(s: Store) {
    let plan = json!({});
    s.heartbeat("w1", 1).await.unwrap();
    s.heartbeat("w2", 2).await.unwrap();
    s.create(&job("h", &plan, Some(b"r"))).await.unwrap();
    s.claim("w2", LEASE * 10, &no_caps()).await.unwrap().unwrap();
    let first = s.workers().await.unwrap();
    s.heartbeat("w1", 1).await.unwrap();
    let w = s.workers().await.unwrap();
    assert_eq!(w.iter().map(|w| (w.id.as_str(), w.leases)).collect::<Vec<_>>(), [("w1", 0), ("w2", 1)]);
    assert!(w[0].heartbeat_ms >= first[0].heartbeat_ms);
}

/// `jobs migrate`: a job comes in as it was; an unfinished one with a lease already run out.
async fn imports_jobs_as_they_were(s: Store) {
    let dir = tempfile::tempdir().unwrap();
    let old = JobDb::open(dir.path()).unwrap();
    old.create("m-pending", "veo-3", "veo-3.1", &json!({"paths": ["x.mp4"]})).unwrap();
    old.count_submit("m-pending").unwrap();
    old.set_pending("m-pending", "operations/m").unwrap();
    old.create("m-done", "veo-3", "veo-3.1", &json!({})).unwrap();
    old.set_done("m-done", &json!({"job": "m-done"})).unwrap();
    old.create("m-cut", "veo-3", "veo-3.1", &json!({})).unwrap();
    old.count_submit("m-cut").unwrap();
    for j in old.list(&[]).unwrap() {
        assert!(s.import(&j).await.unwrap(), "{}", j.id);
        assert!(!s.import(&j).await.unwrap(), "{} twice", j.id);
    }
    let p = s.get("m-pending").await.unwrap().unwrap();
    assert_eq!((p.state, p.token.as_deref(), p.submits, p.plan["paths"][0].as_str()), (JobState::Pending, Some("operations/m"), 1, Some("x.mp4")));
    assert_eq!(s.get("m-done").await.unwrap().unwrap().state, JobState::Done);
    assert_eq!(s.expire_submitting().await.unwrap(), ["m-cut"], "cut off while submitting: unknown");
    assert_eq!(s.claim("w1", LEASE, &no_caps()).await.unwrap().unwrap().job.id, "m-pending", "a worker polls on");
}

type Body = fn(Store) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

macro_rules! bodies {
    ($($f:ident),*) => { &[$((stringify!($f), (|s| Box::pin($f(s))) as Body)),*] };
}

/// A plugin's `max_in_flight` holds across workers: of six workers claiming at once, no more than
/// the cap take its queued jobs (a claim that finds it exceeded once committed puts the job back,
/// unsent); another plugin's jobs are not held back; a job that ends frees a place; and a pending
/// job whose lease ran out is still taken over (it is in flight already).
async fn a_plugins_cap_holds_across_workers(s: Store) {
    let plan = json!({});
    for i in 0..12 {
        s.create(&job(&format!("c-{i:02}"), &plan, Some(b"r"))).await.unwrap();
    }
    s.create(&NewJob { plugin: "flux-kontext", ..job("other", &plan, Some(b"r")) }).await.unwrap();
    let caps: InFlightCaps = [("veo-3".to_string(), 3)].into();
    let mut tasks = vec![];
    for w in 0..6 {
        let (s, caps) = (s.clone(), caps.clone());
        tasks.push(tokio::spawn(async move {
            let mut got = vec![];
            for _ in 0..5 {
                while let Some(c) = s.claim(&format!("w{w}"), LEASE * 10, &caps).await.unwrap() {
                    got.push(c.job.id);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            got
        }));
    }
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let in_flight = |all: &[String]| all.iter().filter(|id| id.starts_with("c-")).count();
    assert_eq!(in_flight(&all), 3, "exactly the cap of veo-3 jobs taken: {all:?}");
    assert!(all.contains(&"other".to_string()), "another plugin is not held back: {all:?}");
    let flying = s.list(&[JobState::Submitting, JobState::Pending]).await.unwrap();
    assert_eq!(flying.iter().filter(|j| j.plugin == "veo-3").count(), 3);
    assert_eq!(s.list(&[JobState::Queued]).await.unwrap().len(), 9, "the rest wait, unsent");
    assert!(s.list(&[]).await.unwrap().iter().all(|j| j.submits == 0));
    // Full: nothing more of veo-3.
    assert!(s.claim("w9", LEASE, &caps).await.unwrap().is_none());
    // One ends: one more is taken.
    let first = all.iter().find(|id| id.starts_with("c-")).unwrap().clone();
    s.set_done(&first, &json!({"job": first, "artifacts": []})).await.unwrap();
    let next = s.claim("w9", LEASE, &caps).await.unwrap().expect("a place was freed");
    assert!(next.job.id.starts_with("c-") && !all.contains(&next.job.id), "{}", next.job.id);
    assert!(s.claim("w9", LEASE, &caps).await.unwrap().is_none(), "full again");
    // In flight and its worker gone: taken over although the cap is reached.
    s.count_submit(&next.job.id).await.unwrap();
    s.set_pending(&next.job.id, "operations/n").await.unwrap();
    after_lease().await;
    let taken = s.claim("w8", LEASE, &caps).await.unwrap().expect("the pending job is taken over");
    assert_eq!((taken.job.id.as_str(), taken.job.state), (next.job.id.as_str(), JobState::Pending));
}

const BODIES: &[(&str, Body)] = bodies!(
    records_a_jobs_life,
    claims_each_queued_job_once,
    an_expired_submit_is_unknown_never_resent,
    a_pending_job_moves_on_when_its_lease_runs_out,
    cancel_is_a_column_the_holder_reads,
    heartbeats_show_workers_and_leases,
    imports_jobs_as_they_were,
    a_plugins_cap_holds_across_workers
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_contract_holds_on_sqlite() {
    for (name, body) in BODIES {
        eprintln!("sqlite: {name}");
        let dir = tempfile::tempdir().unwrap();
        body(Arc::new(JobDb::open(dir.path()).unwrap())).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_contract_holds_on_postgres() {
    let Some(pg) = common::postgres::Postgres::start() else { return };
    for (i, (name, body)) in BODIES.iter().enumerate() {
        eprintln!("postgres: {name}");
        let url = pg.database(&format!("t{i}"));
        body(Arc::new(PgStore::connect(&url).await.unwrap())).await;
    }
    // Workers on connections of their own claim truly at once: the cap still holds.
    let url = pg.database("race");
    let mut stores = vec![];
    for _ in 0..6 {
        stores.push(Arc::new(PgStore::connect(&url).await.unwrap()));
    }
    for i in 0..12 {
        stores[0].create(&job(&format!("c-{i:02}"), &json!({}), Some(b"r"))).await.unwrap();
    }
    let caps: InFlightCaps = [("veo-3".to_string(), 3)].into();
    for round in 0..3 {
        let start = Arc::new(tokio::sync::Barrier::new(stores.len()));
        let mut tasks = vec![];
        for (w, s) in stores.iter().enumerate() {
            let (s, caps, start) = (s.clone(), caps.clone(), start.clone());
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                s.claim(&format!("r{round}-w{w}"), LEASE * 20, &caps).await.unwrap().map(|c| c.job.id)
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let flying = stores[0].list(&[JobState::Submitting, JobState::Pending]).await.unwrap();
        assert!(flying.len() <= 3, "round {round}: {} in flight, cap 3", flying.len());
    }

    // Migrations are versioned and applied once: a second connection finds nothing to do.
    let url = pg.url("t0");
    let again = PgStore::connect(&url).await.unwrap();
    assert_eq!(again.schema_version().await.unwrap(), 3);
    assert_eq!(pg.psql("t0", "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_version"), "1,2,3");
    assert_eq!(pg.psql("t0", "SELECT count(*) FROM videos"), "0", "migration 2 made the server's video records");
}

#[tokio::test]
async fn a_database_setting_that_is_not_postgres_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let e = atelier::jobs::store::open(Some("mysql://u:secret@h/db"), dir.path()).await.err().unwrap();
    let m = format!("{e:#}");
    assert!(m.contains("not a PostgreSQL URL") && m.contains("postgres://"), "{m}");
    assert!(!m.contains("secret"), "the password is not shown: {m}");
    let e = atelier::jobs::store::open(Some("postgres://u:secret@127.0.0.1:1/db"), dir.path()).await.err().unwrap();
    let m = format!("{e:#}");
    assert!(m.contains("cannot connect to the jobs database") && m.contains("***") && !m.contains("secret"), "{m}");
}

/// `atelier jobs migrate --to` copies a state dir's jobs; `jobs list` then reads them from the
/// shared store (`ATELIER_DATABASE_URL`); a second run copies nothing twice.
#[test]
fn jobs_migrate_copies_a_state_dir_into_postgres() {
    let Some(pg) = common::postgres::Postgres::start() else { return };
    let url = pg.database("migrated");
    let env = common::Env::new(&["veo-3"]);
    let state = env.path("state");
    {
        let db = JobDb::open(&state).unwrap();
        db.create("j-a", "veo-3", "veo-3.1", &json!({"paths": ["a.mp4"]})).unwrap();
        db.count_submit("j-a").unwrap();
        db.set_pending("j-a", "operations/a").unwrap();
        db.create("j-b", "flux-kontext", "flux-kontext-pro", &json!({})).unwrap();
        db.set_done("j-b", &json!({"job": "j-b"})).unwrap();
    }
    let out = env.ok(&["jobs", "migrate", "--to", &url, "--json"]);
    let v = common::json(&out);
    assert_eq!((v["copied"].as_u64(), v["already_there"].as_u64()), (Some(2), Some(0)), "{v}");
    let again = common::json(&env.ok(&["jobs", "migrate", "--to", &url, "--json"]));
    assert_eq!((again["copied"].as_u64(), again["already_there"].as_u64()), (Some(0), Some(2)), "{again}");
    assert_eq!(pg.psql("migrated", "SELECT state || ' ' || submits || ' ' || COALESCE(token, '-') FROM jobs ORDER BY id"), "pending 1 operations/a\ndone 0 -");
    let listed = env.cmd().args(["jobs", "list", "--json"]).env("ATELIER_DATABASE_URL", &url).env("ATELIER_STATE_DIR", env.path("empty")).output().unwrap();
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let jobs = common::json(&String::from_utf8_lossy(&listed.stdout));
    assert_eq!(jobs.as_array().map(Vec::len), Some(2), "{jobs}");
    let bad = env.fails(&["jobs", "migrate", "--to", "mysql://x/y"]);
    assert!(bad.contains("--to must be a PostgreSQL URL"), "{bad}");
}

/// A pending job taken by a plugin speaking another contract is not polled by the installed one:
/// `jobs resume` says what was recorded, what is installed and what to do, and changes nothing.
#[tokio::test]
async fn a_job_of_another_contract_is_refused_on_resume() {
    let env = common::Env::new(&["veo-3"]);
    let state = env.path("state");
    let db: Store = Arc::new(JobDb::open(&state).unwrap());
    let plan = json!({});
    db.create(&NewJob { contract: "9.9.9", ..job("j-other", &plan, None) }).await.unwrap();
    db.count_submit("j-other").await.unwrap();
    db.set_pending("j-other", "operations/x").await.unwrap();
    let o = env.run(&["jobs", "resume", "j-other"]);
    assert!(!o.status.success());
    // `jobs resume` reports each job's end on stdout.
    let err = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(err.contains("contract 9.9.9") && err.contains("installed `veo-3` speaks contract") && err.contains("atelier jobs cancel j-other"), "{err}");
    let j = db.get("j-other").await.unwrap().unwrap();
    assert_eq!((j.state, j.polls), (JobState::Pending, 0), "nothing was polled or changed");
}
