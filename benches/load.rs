//! Load benchmark (issue 10; method and figures in docs/performance.md).
//!
//! Runs the release `xacthuc serve` binary on a free loopback port, first on SQLite (a temp
//! data dir), then on a fresh PostgreSQL database, seeds it through the operator's command line
//! (`client add`, `account add`) and over HTTP (a signed-in session, authorization codes,
//! refresh tokens), drives it with an async load generator in this process (N workers for a
//! fixed time, per-request latency), and prints one table, also written to
//! `bench/last-run.txt`.
//!
//! `cargo bench --bench load [-- --quick] [-- --sqlite-only] [-- --sign-in-only]`, or `bench/run [--quick]`.
//! The load generator shares the machine's cores with the gateway: the figures are a floor.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "load/wire.rs"]
mod wire;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

const BIN: &str = env!("CARGO_BIN_EXE_xacthuc");
const PG_ENV: &str = "XACTHUC_BENCH_POSTGRES_URL";
/// Loopback without TLS, as an operator with the database on the same host would connect (over
/// the Unix socket): TLS on loopback cost ~0.3 ms of CPU per sign-in on both ends, taken from
/// the hashing cores (docs/performance.md). A URL given in `XACTHUC_BENCH_POSTGRES_URL` is used as is.
const PG_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable";
const CB: &str = "http://127.0.0.1/bench/cb";
const PASSWORD: &str = "hoa sen nở giữa đầm 2024";
const USERNAME: &str = "bench";
/// Sign-ins run as `bench0` … `bench{SIGNIN_USERS - 1}`, one per load worker (modulo): the
/// throttle counts a user name's attempts in flight (until the password is checked), so many
/// concurrent sign-ins of *one* name would be throttled, as they should be.
const SIGNIN_USERS: usize = 16;

fn signin_user(worker: usize) -> String {
    format!("{USERNAME}{}", worker % SIGNIN_USERS)
}
const CONCURRENCY: [usize; 3] = [1, 16, 64];

/// Run settings: the default run, or `--quick` (a smoke run of the same steps).
struct Plan {
    quick: bool,
    /// Only the password sign-in cell (`--sign-in-only`), to work on the Argon2 ratio.
    sign_in_only: bool,
    /// Length of one measurement cell.
    cell: Duration,
    /// Authorization codes generated per cell (codes are single use).
    codes_per_cell: usize,
    /// Time allowed to seed the bulk accounts and sessions.
    seed_budget: Duration,
    accounts: u64,
    sessions: u64,
    postgres: Option<String>,
}

/// One measured cell: what, where, and the figures.
struct Row {
    backend: &'static str,
    what: String,
    concurrency: String,
    ok: u64,
    errors: u64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    note: String,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    facts: Vec<(String, String)>,
}

impl Report {
    fn fact(&mut self, k: impl Into<String>, v: impl Into<String>) {
        let (k, v) = (k.into(), v.into());
        eprintln!("  {k}: {v}");
        self.facts.push((k, v));
    }

    fn row(&mut self, backend: &'static str, what: &str, conc: usize, s: &Stats, note: &str) {
        eprintln!(
            "  {backend} {what} c={conc}: {:.0} req/s p50 {:.2} ms p99 {:.2} ms ({} ok, {} errors){}",
            s.rps(),
            s.pct(0.50),
            s.pct(0.99),
            s.ok(),
            s.errors,
            s.first_error.as_deref().map(|e| format!(" first error: {e}")).unwrap_or_default()
        );
        let mut note = note.to_string();
        if s.stopped_early {
            note = join(&note, "ran out of pre-generated codes");
        }
        if let Some(e) = &s.first_error {
            note = join(&note, &format!("error: {}", e.chars().take(60).collect::<String>()));
        }
        self.rows.push(Row {
            backend,
            what: what.to_string(),
            concurrency: conc.to_string(),
            ok: s.ok(),
            errors: s.errors,
            rps: s.rps(),
            p50_ms: s.pct(0.50),
            p99_ms: s.pct(0.99),
            note,
        });
    }

    fn render(&self, header: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{header}");
        let heads = ["backend", "measurement", "conc", "ok", "err", "req/s", "p50 ms", "p99 ms", "note"];
        let cells: Vec<[String; 9]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.backend.to_string(),
                    r.what.clone(),
                    r.concurrency.clone(),
                    r.ok.to_string(),
                    r.errors.to_string(),
                    format!("{:.0}", r.rps),
                    format!("{:.2}", r.p50_ms),
                    format!("{:.2}", r.p99_ms),
                    r.note.clone(),
                ]
            })
            .collect();
        let mut w = heads.map(|h| h.chars().count());
        for c in &cells {
            for (i, v) in c.iter().enumerate() {
                w[i] = w[i].max(v.chars().count());
            }
        }
        let line = |vals: [&str; 9]| {
            let mut l = String::new();
            for (i, v) in vals.iter().enumerate() {
                let pad = w[i] - v.chars().count();
                // Text columns left-aligned, figures right-aligned.
                if (2..=7).contains(&i) {
                    l.push_str(&" ".repeat(pad));
                    l.push_str(v);
                } else {
                    l.push_str(v);
                    if i < 8 {
                        l.push_str(&" ".repeat(pad));
                    }
                }
                if i < 8 {
                    l.push_str("  ");
                }
            }
            l.trim_end().to_string()
        };
        let _ = writeln!(out, "{}", line(heads));
        let _ = writeln!(out, "{}", line(w.map(|n| "-".repeat(n)).each_ref().map(|s| s.as_str())));
        for c in &cells {
            let _ = writeln!(out, "{}", line(c.each_ref().map(|s| s.as_str())));
        }
        let _ = writeln!(out);
        let kw = self.facts.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
        for (k, v) in &self.facts {
            let _ = writeln!(out, "{k}{}  {v}", " ".repeat(kw - k.chars().count()));
        }
        out
    }
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() { b.to_string() } else { format!("{a}; {b}") }
}

/// Latencies of one cell.
#[derive(Default)]
struct Stats {
    lat: Vec<Duration>,
    errors: u64,
    elapsed: Duration,
    first_error: Option<String>,
    stopped_early: bool,
}

impl Stats {
    fn ok(&self) -> u64 {
        self.lat.len() as u64
    }
    fn rps(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.ok() as f64 / s } else { 0.0 }
    }
    /// Adds another run of the same cell (its latencies, errors and time).
    fn merge(&mut self, other: Stats) {
        self.lat.extend(other.lat);
        self.lat.sort();
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.stopped_early |= other.stopped_early;
    }
    fn pct(&self, p: f64) -> f64 {
        if self.lat.is_empty() {
            return 0.0;
        }
        let i = ((self.lat.len() as f64 * p).ceil() as usize).clamp(1, self.lat.len()) - 1;
        self.lat[i].as_secs_f64() * 1000.0
    }
}

/// What one request of a worker did.
enum Step {
    Done,
    /// No more work (the pre-generated codes ran out).
    Exhausted,
}

/// Runs `conc` workers, each calling `op(worker)` in a loop for `dur`; each successful call is
/// one latency sample.
async fn measure<F, Fut>(conc: usize, dur: Duration, op: F) -> Stats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Step, String>> + Send,
{
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let exhausted = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = start + dur;
    let mut handles = Vec::new();
    for w in 0..conc {
        let (op, stop, exhausted) = (op.clone(), stop.clone(), exhausted.clone());
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let (mut errors, mut first_error) = (0u64, None);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let t = Instant::now();
                match op(w).await {
                    Ok(Step::Done) => lat.push(t.elapsed()),
                    Ok(Step::Exhausted) => {
                        exhausted.store(true, Ordering::Relaxed);
                        stop.store(true, Ordering::Relaxed);
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                        if errors > 1000 {
                            break;
                        }
                    }
                }
            }
            (lat, errors, first_error)
        }));
    }
    let mut stats = Stats::default();
    for h in handles {
        let (lat, errors, first_error) = h.await.unwrap();
        stats.lat.extend(lat);
        stats.errors += errors;
        if stats.first_error.is_none() {
            stats.first_error = first_error;
        }
    }
    stats.elapsed = start.elapsed();
    stats.stopped_early = exhausted.load(Ordering::Relaxed);
    stats.lat.sort();
    stats
}

/// A throwaway PostgreSQL database (as tests/it/common.rs `PgDatabase`).
struct PgDatabase {
    url: String,
    admin_url: String,
    name: String,
}

impl PgDatabase {
    async fn create(admin_url: &str) -> Result<PgDatabase, String> {
        let name = format!("xacthuc_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin_url).await.map_err(|e| e.to_string())?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let mut url = url::Url::parse(admin_url).map_err(|e| e.to_string())?;
        url.set_path(&name);
        // The gateway's connections: commits as SQLite's are in the bench (no flush per commit)
        // unless XACTHUC_BENCH_POSTGRES_SYNCHRONOUS_COMMIT=on; as an operator would set it.
        if postgres_synchronous_commit() == "off" {
            url.query_pairs_mut().append_pair("options", "-c synchronous_commit=off");
        }
        Ok(PgDatabase { url: url.to_string(), admin_url: admin_url.to_string(), name })
    }

    async fn drop_db(&self) {
        if let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&self.admin_url).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)))
                .execute(&mut conn)
                .await;
        }
    }
}

/// The gateway under test: a `xacthuc serve` child process.
struct Server {
    child: Option<Child>,
    base: String,
    port: u16,
    dir: PathBuf,
    database_url: Option<String>,
}

impl Server {
    fn env(&self, cmd: &mut Command) {
        // The bench's own settings share the gateway's XACTHUC_ prefix, which the gateway
        // would read as configuration (and refuse as unknown fields).
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("XACTHUC_BENCH_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("XACTHUC_DATA_DIR", &self.dir)
            .env("XACTHUC_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("XACTHUC_ISSUER", &self.base)
            .env("XACTHUC_POLICIES_DIR", self.dir.join("policies"))
            .env("XACTHUC_TOKENS__CODE_SECONDS", "600")
            .env("XACTHUC_DEMO__ENABLED", "false")
            // One hashing worker per core: the parallelism the raw Argon2id rate is measured with.
            .env("XACTHUC_PASSWORD__WORKERS", cores().to_string());
        match &self.database_url {
            Some(url) => {
                cmd.env("XACTHUC_DATABASE_URL", url);
            }
            // WAL synced by the operating system, not at every commit (docs/performance.md):
            // with `full`, the default, each of a sign-in's three commits costs ~1.5 ms of
            // kernel CPU here, taken from the hashing cores.
            None => {
                cmd.env(
                    "XACTHUC_DATABASE_URL",
                    format!("sqlite:{}?synchronous={}", self.dir.join("xacthuc.db").display(), sqlite_synchronous()),
                );
            }
        }
    }

    fn new(dir: &Path, database_url: Option<String>) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        std::fs::create_dir_all(dir.join("policies")).unwrap();
        Server { child: None, base: format!("http://127.0.0.1:{port}"), port, dir: dir.to_path_buf(), database_url }
    }

    /// Starts `serve` and waits for `/healthz`; returns the time to the first served request.
    async fn start(&mut self, http: &reqwest::Client) -> Duration {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("server.log")).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("serve").stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
        self.env(&mut cmd);
        let t = Instant::now();
        self.child = Some(cmd.spawn().unwrap());
        loop {
            if let Ok(r) = http.get(format!("{}/healthz", self.base)).send().await
                && r.status().is_success()
            {
                return t.elapsed();
            }
            if let Some(Some(status)) = self.child.as_mut().map(|c| c.try_wait().ok().flatten()) {
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                panic!("xacthuc serve exited with {status}:\n{log}");
            }
            assert!(t.elapsed() < Duration::from_secs(300), "the gateway did not answer /healthz in 300 s");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Stops the gateway as an operator would (SIGINT, its shutdown signal).
    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
            for _ in 0..200 {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs an operator command against the same data dir and database.
    fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        self.env(&mut cmd);
        let out = cmd.output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "xacthuc {args:?} failed:\n{text}");
        text
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// CPU time (user + system) a process has used so far, in seconds (`/proc/<pid>/stat`).
fn cpu_seconds(pid: u32) -> f64 {
    stat_cpu_seconds(&format!("/proc/{pid}/stat"))
}

/// CPU time of a process's threads whose name starts with `prefix` (`argon2-`: the hashing
/// workers), in seconds.
fn threads_cpu_seconds(pid: u32, prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0.0 };
    tasks
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with(prefix)))
        .map(|t| stat_cpu_seconds(&t.path().join("stat").to_string_lossy()))
        .sum()
}

/// One thread's scheduler figures from its `/proc/…/task/…/sched`: CPU time (s), moves between
/// cores, preemptions (involuntary switches). Zeros where the kernel does not publish the file.
fn task_sched(task: &Path) -> [f64; 3] {
    let sched = std::fs::read_to_string(task.join("sched")).unwrap_or_default();
    let mut figures = [0.0; 3];
    for (key, value) in sched.lines().filter_map(|l| l.split_once(':')) {
        let value: f64 = value.trim().parse().unwrap_or(0.0);
        match key.trim() {
            "se.sum_exec_runtime" => figures[0] = value / 1000.0,
            "se.nr_migrations" => figures[1] = value,
            "nr_involuntary_switches" => figures[2] = value,
            _ => {}
        }
    }
    figures
}

/// A process's threads: name (digits and a trailing `-` dropped, so `argon2-0` and `argon2-1`
/// are both `argon2`) and scheduler figures ([`task_sched`]).
fn threads(pid: u32) -> Vec<(String, [f64; 3])> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    tasks
        .flatten()
        .map(|t| {
            let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            let name = name.trim().trim_end_matches(|c: char| c.is_ascii_digit()).trim_end_matches('-');
            (name.to_string(), task_sched(&t.path()))
        })
        .collect()
}

/// [`task_sched`] summed over the threads called `name` (`argon2`: the hashing workers).
fn named(threads: &[(String, [f64; 3])], name: &str) -> [f64; 3] {
    threads.iter().filter(|(n, _)| n == name).fold([0.0; 3], |a, (_, f)| [a[0] + f[0], a[1] + f[1], a[2] + f[2]])
}

/// Busy CPU time of the whole machine (all cores, `/proc/stat`: all but idle and iowait), in
/// seconds.
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<f64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    let (total, idle): (f64, f64) = (fields.iter().take(8).sum(), fields.iter().skip(3).take(2).sum());
    (total - idle) / 100.0
}

/// CPU seconds (utime + stime) of the machine's PostgreSQL server processes (`postgres`: the
/// postmaster, its background workers, the backends of open connections; a backend that exits
/// takes its figures with it, which the gateway's pool, keeping its connections, does not do
/// during a cell).
fn postgres_cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0.0 };
    dir.filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim_end() == "postgres"))
        .map(|e| stat_cpu_seconds(&e.path().join("stat").to_string_lossy()))
        .sum()
}

/// utime + stime of a `/proc/…/stat` file, in seconds.
fn stat_cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, indices 11 and 12 after the name.
    let ticks: f64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<f64>().ok()).sum();
    ticks / 100.0
}

/// Resident memory of a process (VmRSS, in MiB).
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Samples the gateway's RSS every 100 ms while load runs; `max()` is the peak seen.
struct RssSampler {
    max_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let (max_kib, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let (m, s) = (max_kib.clone(), stop.clone());
        tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                m.fetch_max((rss_mib(pid) * 1024.0) as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        RssSampler { max_kib, stop }
    }
    fn max_mib(&self) -> f64 {
        self.max_kib.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A browser: cookie jar, redirects followed by hand.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn hidden(html: &str, name: &str) -> Result<String, String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).ok_or_else(|| format!("no input {name} in the page"))? + marker.len();
    let end = html[start..].find('"').ok_or("unterminated value")? + start;
    Ok(html[start..end].replace("&#x2f;", "/").replace("&amp;", "&"))
}

fn location(resp: &reqwest::Response) -> Result<String, String> {
    resp.headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .ok_or_else(|| format!("no Location; status {}", resp.status()))
}

fn code_of(url: &str) -> Option<String> {
    url::Url::parse(url).ok()?.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.to_string())
}

fn authorize_url(server: &Server, client_id: &str, scope: &str) -> String {
    let mut url = url::Url::parse(&server.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", CB),
        ("scope", scope),
        ("nonce", "bench-nonce"),
        ("state", "bench-state"),
    ]);
    url.to_string()
}

/// Follows the browser part of a code flow, signing in with the password when the sign-in page
/// shows; returns the code.
async fn browser_flow(
    server: &Server,
    http: &reqwest::Client,
    client_id: &str,
    scope: &str,
    username: &str,
) -> Result<String, String> {
    let mut url = authorize_url(server, client_id, scope);
    for _ in 0..8 {
        if url.starts_with(CB) {
            return code_of(&url).ok_or_else(|| format!("no code in {url}"));
        }
        let resp = http.get(&url).send().await.map_err(|e| e.to_string())?;
        if resp.status().is_redirection() {
            url = absolute(server, &location(&resp)?);
            continue;
        }
        let status = resp.status();
        let page = resp.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{status} at {url}"));
        }
        let form = [
            ("csrf", hidden(&page, "csrf")?),
            ("r", hidden(&page, "r")?),
            ("username", username.to_string()),
            ("password", PASSWORD.to_string()),
        ];
        let resp = http.post(server.url("/login")).form(&form).send().await.map_err(|e| e.to_string())?;
        if resp.status() != 303 {
            return Err(format!("sign-in answered {}", resp.status()));
        }
        url = absolute(server, &location(&resp)?);
    }
    Err(format!("no code after 8 steps, last {url}"))
}

fn absolute(server: &Server, location: &str) -> String {
    if location.starts_with('/') { server.url(location) } else { location.to_string() }
}

/// A signed-in browser's `GET /authorize`: the code, straight away.
async fn quick_code(server: &Server, http: &reqwest::Client, url: &str) -> Result<String, String> {
    let resp = http.get(url).send().await.map_err(|e| e.to_string())?;
    let loc = location(&resp)?;
    let loc = absolute(server, &loc);
    code_of(&loc).ok_or_else(|| format!("no code in {loc}"))
}

async fn token(
    http: &reqwest::Client,
    server: &Server,
    client: &(String, String),
    form: &[(&str, &str)],
) -> Result<serde_json::Value, String> {
    let resp = http
        .post(server.url("/token"))
        .basic_auth(&client.0, Some(&client.1))
        .form(form)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.map_err(|e| format!("{status}: {e}"))?;
    if status != 200 {
        return Err(format!("{status}: {body}"));
    }
    Ok(body)
}

/// `n` fresh codes from the signed-in browser, 16 at a time.
async fn generate_codes(
    server: &Arc<Server>,
    browser: &reqwest::Client,
    client_id: &str,
    scope: &str,
    n: usize,
) -> Vec<String> {
    let url = Arc::new(authorize_url(server, client_id, scope));
    let out = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let left = Arc::new(AtomicU64::new(n as u64));
    let mut handles = Vec::new();
    for _ in 0..16 {
        let (server, browser, url, out, left) =
            (server.clone(), browser.clone(), url.clone(), out.clone(), left.clone());
        handles.push(tokio::spawn(async move {
            let mut failures = 0;
            while left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1)).is_ok() {
                match quick_code(&server, &browser, &url).await {
                    Ok(code) => out.lock().await.push(code),
                    Err(e) => {
                        failures += 1;
                        assert!(failures < 10, "authorization codes cannot be generated: {e}");
                    }
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    Arc::try_unwrap(out).unwrap().into_inner()
}

/// One backend's run: every measurement on a fresh gateway.
async fn run_backend(backend: &'static str, database_url: Option<String>, plan: &Plan, report: &mut Report) {
    eprintln!("== {backend}");
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::new(tmp.path(), database_url);
    let probe = reqwest::Client::new();
    let startup = server.start(&probe).await;
    report.fact(
        format!("{backend}: start-up to first /healthz, empty database"),
        format!("{:.0} ms (migrations and signing key generation included)", startup.as_secs_f64() * 1000.0),
    );
    if backend == "sqlite" {
        report.fact(
            "sqlite: synchronous",
            format!(
                "{} (XACTHUC_BENCH_SQLITE_SYNCHRONOUS; the gateway's default is full — docs/performance.md)",
                sqlite_synchronous()
            ),
        );
    }
    if let Some(url) = server.database_url.as_deref().and_then(|u| url::Url::parse(u).ok()) {
        // What a connection made with the gateway's URL is actually given.
        let commit = match <sqlx::PgConnection as sqlx::Connection>::connect(url.as_str()).await {
            Ok(mut conn) => sqlx::query_scalar::<_, String>("SHOW synchronous_commit")
                .fetch_one(&mut conn)
                .await
                .unwrap_or_else(|e| format!("unknown ({e})")),
            Err(e) => format!("unknown ({e})"),
        };
        let sslmode = url.query_pairs().find(|(k, _)| k == "sslmode").map(|(_, v)| format!("sslmode={v}"));
        report.fact(
            "postgres: connection",
            format!(
                "{}:{} {} (XACTHUC_BENCH_POSTGRES_URL); synchronous_commit={commit} (XACTHUC_BENCH_POSTGRES_SYNCHRONOUS_COMMIT; the server's default is on — docs/performance.md)",
                url.host_str().unwrap_or("?"),
                url.port().unwrap_or(5432),
                sslmode.as_deref().unwrap_or("default TLS negotiation")
            ),
        );
    }
    let pid = server.pid();
    tokio::time::sleep(Duration::from_millis(500)).await;
    report.fact(format!("{backend}: RSS idle after start"), format!("{:.1} MiB", rss_mib(pid)));

    // Seeding: clients and the citizen through the operator's command line.
    let secret = "bench-secret-0123456789abcdefghijklmnopqrstuv";
    let secret_file = tmp.path().join("secret");
    std::fs::write(&secret_file, secret).unwrap();
    let pw_file = tmp.path().join("password");
    std::fs::write(&pw_file, PASSWORD).unwrap();
    for alg in ["ES256", "PS256"] {
        let id = format!("bench-{}", alg.to_lowercase());
        server.cli(&[
            "client",
            "add",
            "--id",
            &id,
            "--redirect-uri",
            CB,
            "--alg",
            alg,
            "--secret-file",
            secret_file.to_str().unwrap(),
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--grant-type",
            "client_credentials",
            "--scope",
            "openid",
            "--scope",
            "profile",
            "--scope",
            "offline_access",
            "--scope",
            "bench.read",
        ]);
    }
    let users: Vec<String> = std::iter::once(USERNAME.to_string()).chain((0..SIGNIN_USERS).map(signin_user)).collect();
    for user in &users {
        server.cli(&[
            "account",
            "add",
            "--username",
            user,
            "--password-file",
            pw_file.to_str().unwrap(),
            "--as-level",
            "1",
        ]);
    }
    let es = ("bench-es256".to_string(), secret.to_string());
    let ps = ("bench-ps256".to_string(), secret.to_string());
    let server = Arc::new(server);

    // One browser signs in once; its session then gets codes without a password.
    let signed_in = browser();
    let first = browser_flow(&server, &signed_in, &es.0, "openid", USERNAME).await.unwrap();
    token(&probe, &server, &es, &[("grant_type", "authorization_code"), ("code", &first), ("redirect_uri", CB)])
        .await
        .unwrap();

    if plan.sign_in_only {
        sign_in_cell(backend, &server, pid, plan, report).await;
        let mut server = Arc::try_unwrap(server).ok().expect("no other holder of the server");
        server.stop().await;
        return;
    }

    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    let sampler = RssSampler::start(pid);

    // Token endpoint: authorization_code, per ID token algorithm.
    for (client, label) in [(&es, "token authorization_code ES256"), (&ps, "token authorization_code PS256")] {
        for conc in CONCURRENCY {
            let codes = generate_codes(&server, &signed_in, &client.0, "openid profile", plan.codes_per_cell).await;
            let codes = Arc::new(std::sync::Mutex::new(codes));
            let (http, server, client) = (http.clone(), server.clone(), client.clone());
            let s = measure(conc, plan.cell, move |_| {
                let (http, server, client, codes) = (http.clone(), server.clone(), client.clone(), codes.clone());
                async move {
                    let Some(code) = codes.lock().unwrap().pop() else { return Ok(Step::Exhausted) };
                    token(
                        &http,
                        &server,
                        &client,
                        &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB)],
                    )
                    .await?;
                    Ok(Step::Done)
                }
            })
            .await;
            report.row(backend, label, conc, &s, "");
        }
    }

    report.fact(format!("{backend}: RSS after the authorization_code cells"), format!("{:.1} MiB", rss_mib(pid)));

    // refresh_token: each worker follows its own rotation chain (each token is single use).
    for conc in CONCURRENCY {
        let codes = generate_codes(&server, &signed_in, &es.0, "openid offline_access", conc).await;
        let mut chains = Vec::new();
        for code in codes {
            let body = token(
                &http,
                &server,
                &es,
                &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB)],
            )
            .await
            .unwrap();
            chains
                .push(Arc::new(std::sync::Mutex::new(body["refresh_token"].as_str().unwrap_or_default().to_string())));
        }
        let chains = Arc::new(chains);
        let (http, server, client) = (http.clone(), server.clone(), es.clone());
        let s = measure(conc, plan.cell, move |w| {
            let (http, server, client, chains) = (http.clone(), server.clone(), client.clone(), chains.clone());
            async move {
                let rt = chains[w].lock().unwrap().clone();
                let body =
                    token(&http, &server, &client, &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await?;
                let next = body["refresh_token"].as_str().ok_or("no rotated refresh token")?;
                *chains[w].lock().unwrap() = next.to_string();
                Ok(Step::Done)
            }
        })
        .await;
        report.row(backend, "token refresh_token (ES256)", conc, &s, "");
    }

    // client_credentials: nothing to seed.
    for conc in CONCURRENCY {
        let (http, server, client) = (http.clone(), server.clone(), es.clone());
        let s = measure(conc, plan.cell, move |_| {
            let (http, server, client) = (http.clone(), server.clone(), client.clone());
            async move {
                token(&http, &server, &client, &[("grant_type", "client_credentials"), ("scope", "bench.read")])
                    .await?;
                Ok(Step::Done)
            }
        })
        .await;
        report.row(backend, "token client_credentials", conc, &s, "");
    }

    report.fact(format!("{backend}: RSS after the token endpoint cells"), format!("{:.1} MiB", rss_mib(pid)));

    // Discovery and JWKS.
    for (path, label) in [("/.well-known/openid-configuration", "discovery"), ("/jwks.json", "JWKS")] {
        for conc in CONCURRENCY {
            let (http, url) = (http.clone(), Arc::new(server.url(path)));
            let s = measure(conc, plan.cell, move |_| {
                let (http, url) = (http.clone(), url.clone());
                async move {
                    let resp = http.get(url.as_str()).send().await.map_err(|e| e.to_string())?;
                    let status = resp.status();
                    resp.bytes().await.map_err(|e| e.to_string())?;
                    if status != 200 {
                        return Err(status.to_string());
                    }
                    Ok(Step::Done)
                }
            })
            .await;
            report.row(backend, label, conc, &s, "");
        }
    }

    report.fact(format!("{backend}: RSS after discovery and JWKS"), format!("{:.1} MiB", rss_mib(pid)));

    // Then the full browserless flow, as new visitors.
    let login_conc = sign_in_cell(backend, &server, pid, plan, report).await;
    for conc in [1, login_conc] {
        let (http, server, client) = (http.clone(), server.clone(), es.clone());
        let s = measure(conc, plan.cell * 2, move |w| {
            let (http, server, client) = (http.clone(), server.clone(), client.clone());
            async move {
                let code = browser_flow(&server, &browser(), &client.0, "openid", &signin_user(w)).await?;
                token(
                    &http,
                    &server,
                    &client,
                    &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB)],
                )
                .await?;
                Ok(Step::Done)
            }
        })
        .await;
        report.row(backend, "full sign-in flow (authorize→password→code→token)", conc, &s, "flows/s");
    }
    report.fact(format!("{backend}: RSS peak under load"), format!("{:.1} MiB", sampler.max_mib()));
    drop(sampler);
    tokio::time::sleep(Duration::from_secs(1)).await;
    report.fact(format!("{backend}: RSS after load"), format!("{:.1} MiB", rss_mib(pid)));

    // Many accounts and sessions: seeded straight into the database with the gateway stopped.
    let mut server = Arc::try_unwrap(server).ok().expect("no other holder of the server");
    server.stop().await;
    let (accounts, sessions, took) = bulk_seed(&server, plan).await;
    let short = if accounts < plan.accounts { " (fewer than asked: the time budget ran out)" } else { "" };
    report.fact(
        format!("{backend}: bulk seed"),
        format!(
            "{accounts} accounts + {sessions} sessions in {:.1} s{short}, direct SQL in one transaction (bypasses the Store API and the audit log)",
            took.as_secs_f64()
        ),
    );
    let startup = server.start(&probe).await;
    report.fact(
        format!("{backend}: start-up to first /healthz, seeded"),
        format!("{:.0} ms", startup.as_secs_f64() * 1000.0),
    );
    let pid = server.pid();
    tokio::time::sleep(Duration::from_millis(500)).await;
    report.fact(format!("{backend}: RSS idle, seeded"), format!("{:.1} MiB", rss_mib(pid)));
    let server = Arc::new(server);
    let sampler = RssSampler::start(pid);
    {
        let nav = navigator(&server, login_conc);
        let (http, server, client) = (http.clone(), server.clone(), es.clone());
        let s = measure(16, plan.cell, move |_| {
            let (http, server, client) = (http.clone(), server.clone(), client.clone());
            async move {
                token(&http, &server, &client, &[("grant_type", "client_credentials"), ("scope", "bench.read")])
                    .await?;
                Ok(Step::Done)
            }
        })
        .await;
        report.row(backend, "token client_credentials, seeded", 16, &s, "");
        let s = measure(login_conc, plan.cell * 2, move |w| {
            let nav = nav.clone();
            async move {
                password_sign_in(&nav, w, &signin_user(w)).await?;
                Ok(Step::Done)
            }
        })
        .await;
        report.row(backend, "password sign-in, seeded", login_conc, &s, "");
    }
    report.fact(format!("{backend}: RSS after sign-ins, seeded"), format!("{:.1} MiB", rss_mib(pid)));
    report.fact(format!("{backend}: RSS peak under load, seeded"), format!("{:.1} MiB", sampler.max_mib()));
    drop(sampler);
    let mut server = Arc::try_unwrap(server).ok().expect("no other holder of the server");
    server.stop().await;
    // Server-side errors (a 500 shows only as a status to the load generator).
    let log = std::fs::read_to_string(tmp.path().join("server.log")).unwrap_or_default();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    if let Some(first) = errors.first() {
        let first: String = strip_ansi(first).chars().take(400).collect();
        eprintln!("{backend}: {} ERROR lines in the gateway's log, first: {first}", errors.len());
        report.fact(format!("{backend}: gateway log"), format!("{} ERROR lines, first: {first}", errors.len()));
    }
}

/// The password sign-in cell between two raw Argon2id measurements, with the ratio and the CPU
/// per sign-in. Returns the concurrency it used.
async fn sign_in_cell(
    backend: &'static str,
    server: &Arc<Server>,
    pid: u32,
    plan: &Plan,
    report: &mut Report,
) -> usize {
    // Password sign-in alone, as new visitors. The physical limit, the raw Argon2id rate, is
    // measured with the gateway idle through the gateway's own hashing pool code (`HashingPool`:
    // the same parameters, the same per-worker memory reuse, the same number of workers — one
    // per core, as the gateway is configured here). A shared virtual machine's speed drifts by
    // ±10 % within a minute, so raw and sign-in measurements alternate: raw, sign-in, raw,
    // sign-in, …, raw. Each sign-in round is compared with the mean of the raw rates right
    // before and right after it, and the ratio reported is the median of the rounds.
    let cores = cores();
    // Four sign-ins offered per worker: every worker hashing and its queue never empty while
    // the other sign-ins do their database and HTTP work (well within the default queue of
    // 16 per worker: none is shed).
    let login_conc = cores * 4;
    let quick = plan.quick;
    // Six rounds: with four, the median is the mean of the middle two, and one round caught in
    // another tenant's burst (0.71 beside 0.86–0.94, seen) pulls it; six cost 14 s more per
    // backend.
    let rounds = if quick { 2 } else { 6 };
    let nav = navigator(server, login_conc);
    // Warm-up: every worker has its memory block, as in the raw measurement.
    for w in 0..login_conc {
        let _ = password_sign_in(&nav, w, &signin_user(w)).await;
    }
    let (mut raws, mut ratios) = (vec![raw_argon2_rate(plan_raw(quick), cores).await], Vec::new());
    let params = raws[0].1;
    let mut all = Stats::default();
    // CPU seconds spent during the sign-in rounds only: gateway, its hashing threads, the load
    // generator, the whole machine, PostgreSQL's server processes.
    let mut cpu = [0.0f64; 5];
    // The gateway's hashing threads: CPU (s), moves between cores, preemptions.
    let mut sched = [0.0f64; 3];
    // The gateway's threads by name (CPU seconds), to see where "the rest" goes.
    let mut names = std::collections::BTreeMap::<String, f64>::new();
    for _ in 0..rounds {
        let threads_before = threads(pid);
        let before = [
            cpu_seconds(pid),
            threads_cpu_seconds(pid, "argon2-"),
            cpu_seconds(std::process::id()),
            machine_busy_seconds(),
            if backend == "postgres" { postgres_cpu_seconds() } else { 0.0 },
        ];
        let nav = nav.clone();
        let s = measure(login_conc, plan.cell, move |w| {
            let nav = nav.clone();
            async move {
                password_sign_in(&nav, w, &signin_user(w)).await?;
                Ok(Step::Done)
            }
        })
        .await;
        let after = [
            cpu_seconds(pid),
            threads_cpu_seconds(pid, "argon2-"),
            cpu_seconds(std::process::id()),
            machine_busy_seconds(),
            if backend == "postgres" { postgres_cpu_seconds() } else { 0.0 },
        ];
        let threads_after = threads(pid);
        for (name, figures) in &threads_before {
            *names.entry(name.clone()).or_insert(0.0) -= figures[0];
        }
        for (name, figures) in &threads_after {
            *names.entry(name.clone()).or_insert(0.0) += figures[0];
        }
        let (sched_before, sched_after) = (named(&threads_before, "argon2"), named(&threads_after, "argon2"));
        for i in 0..5 {
            cpu[i] += after[i] - before[i];
        }
        for i in 0..3 {
            sched[i] += sched_after[i] - sched_before[i];
        }
        let raw_after = raw_argon2_rate(plan_raw(quick), cores).await;
        let raw = (raws[raws.len() - 1].0 + raw_after.0) / 2.0;
        ratios.push(s.rps() / raw);
        raws.push(raw_after);
        all.merge(s);
    }
    report.row(backend, "password sign-in (GET+POST /login)", login_conc, &all, "");
    let signin_rate = all.rps();
    let raw_rates: Vec<f64> = raws.iter().map(|r| r.0).collect();
    let raw = raw_rates.iter().sum::<f64>() / raw_rates.len() as f64;
    let (raw_min, raw_max) = raw_rates.iter().fold((f64::MAX, 0.0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    report.fact(
        format!("{backend}: raw Argon2id verifications/s"),
        format!(
            "{raw:.1} (mean of {} measurements, {raw_min:.1}–{raw_max:.1}, alternating with the sign-in rounds; the gateway's hashing pool, {cores} workers = cores; m={} KiB, t={}, p={})",
            raw_rates.len(),
            params.memory_kib,
            params.iterations,
            params.parallelism
        ),
    );
    let median = {
        let mut r = ratios.clone();
        r.sort_by(f64::total_cmp);
        if r.len() % 2 == 0 { (r[r.len() / 2 - 1] + r[r.len() / 2]) / 2.0 } else { r[r.len() / 2] }
    };
    let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    report.fact(
        format!("{backend}: password sign-in / raw Argon2id"),
        format!(
            "{median:.2} (median of {rounds} rounds: {}; overall {signin_rate:.1} sign-ins/s ÷ {raw:.1} hashes/s = {:.2}; goal ≥ 0.9)",
            each.join(", "),
            signin_rate / raw
        ),
    );
    // Where the cores went: one hash costs `cores / raw` core-seconds in the raw measurement;
    // the gateway's hashing threads, the rest of the gateway (HTTP, templates, database calls,
    // audit), the load generator, PostgreSQL's server and everything else on the machine (the
    // kernel's own threads, the machine's idle services) share the same cores.
    let n = all.ok().max(1) as f64;
    // PostgreSQL's processes are counted apart on its backend only (zero on SQLite, where its
    // idle server stays in "the rest").
    let [gateway, hashing, generator, machine, postgres] = cpu.map(|c| c * 1000.0 / n);
    let others = (machine - gateway - generator - postgres).max(0.0);
    report.fact(
        format!("{backend}: CPU per password sign-in"),
        format!(
            "gateway {gateway:.1} ms (hashing threads {hashing:.1} ms, raw Argon2id {:.1} ms; the rest {:.1} ms), load generator {generator:.1} ms, {}rest of the machine {others:.1} ms",
            cores as f64 * 1000.0 / raw,
            gateway - hashing,
            if backend == "postgres" { format!("PostgreSQL's server {postgres:.1} ms, ") } else { String::new() },
        ),
    );
    // The gateway alone: the share of its own CPU that went to hashing. With the load generator
    // and the database on other machines (and its hashes costing what the raw measurement's
    // do, next line), this is the ratio it would reach; the headline ratio above also pays for
    // everything else this machine runs during the sign-ins.
    report.fact(
        format!("{backend}: hashing share of the gateway's CPU"),
        format!(
            "{:.2} (hashing threads ÷ gateway, during the sign-in rounds: the ratio with the load generator{} elsewhere)",
            hashing / gateway.max(f64::MIN_POSITIVE),
            if backend == "postgres" { " and PostgreSQL" } else { "" }
        ),
    );
    // The same hashes, seen by the scheduler: a hash that costs more CPU in the gateway than in
    // the raw measurement lost its caches to other work (preempted, or moved to the other core).
    let raw_sched = {
        let per: Vec<[f64; 3]> = raws.iter().map(|r| r.2).collect();
        [0, 1, 2].map(|i| per.iter().map(|p| p[i]).sum::<f64>() / per.len() as f64)
    };
    let gw = sched.map(|v| v / n);
    report.fact(
        format!("{backend}: hashing threads per hash"),
        format!(
            "gateway {:.1} ms CPU, {:.2} moves between cores, {:.2} preemptions; raw {:.1} ms, {:.2} moves, {:.2} preemptions",
            gw[0] * 1000.0,
            gw[1],
            gw[2],
            raw_sched[0] * 1000.0,
            raw_sched[1],
            raw_sched[2]
        ),
    );
    let mut names: Vec<(String, f64)> = names.into_iter().filter(|(_, s)| *s * 1000.0 / n >= 0.01).collect();
    names.sort_by(|a, b| b.1.total_cmp(&a.1));
    let names: Vec<String> = names.iter().map(|(name, s)| format!("{name} {:.2}", s * 1000.0 / n)).collect();
    report.fact(format!("{backend}: gateway threads per sign-in (ms CPU)"), names.join(", "));
    report.fact(format!("{backend}: RSS after password sign-in"), format!("{:.1} MiB", rss_mib(pid)));
    login_conc
}

/// The log line without its terminal colours.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn plan_raw(quick: bool) -> Duration {
    if quick { Duration::from_secs(1) } else { Duration::from_secs(3) }
}

/// Inserts up to `plan.accounts` accounts and `plan.sessions` live sessions in batches inside one
/// transaction, stopping at the time budget. Sessions copy the `factors` of the bench citizen's
/// real session, so they read back as the gateway writes them.
async fn bulk_seed(server: &Server, plan: &Plan) -> (u64, u64, Duration) {
    use sqlx::Connection;
    let t = Instant::now();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let batch: u64 = 50_000;
    let (mut accounts, mut sessions) = (0u64, 0u64);
    match &server.database_url {
        None => {
            let url = format!("sqlite:{}", server.dir.join("xacthuc.db").display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            while accounts < plan.accounts && t.elapsed() < plan.seed_budget {
                let n = batch.min(plan.accounts - accounts);
                sqlx::query(
                    "WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
                     INSERT INTO accounts (id, username, password_hash, as_level, created_at, updated_at)
                     SELECT randomblob(16), 'seed' || i, NULL, 1, ?3, ?3 FROM n",
                )
                .bind(accounts as i64)
                .bind((accounts + n - 1) as i64)
                .bind(now)
                .execute(&mut *tx)
                .await
                .unwrap();
                accounts += n;
            }
            let want = plan.sessions.min(accounts);
            while sessions < want && t.elapsed() < plan.seed_budget + plan.seed_budget / 4 {
                let n = batch.min(want - sessions);
                sqlx::query(
                    "INSERT INTO sessions (id, token_hash, account_id, factors, created_at, expires_at, last_seen_at)
                     SELECT randomblob(16), lower(hex(randomblob(32))), a.id,
                            (SELECT factors FROM sessions LIMIT 1), ?1, ?1 + 43200, ?1
                     FROM accounts a WHERE a.username >= 'seed' AND a.username < 'seef'
                     ORDER BY a.username LIMIT ?2 OFFSET ?3",
                )
                .bind(now)
                .bind(n as i64)
                .bind(sessions as i64)
                .execute(&mut *tx)
                .await
                .unwrap();
                sessions += n;
            }
            tx.commit().await.unwrap();
        }
        Some(url) => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            while accounts < plan.accounts && t.elapsed() < plan.seed_budget {
                let n = batch.min(plan.accounts - accounts);
                sqlx::query(
                    "INSERT INTO accounts (id, username, password_hash, as_level, created_at, updated_at)
                     SELECT gen_random_uuid(), 'seed' || i, NULL, 1, $3, $3 FROM generate_series($1::bigint, $2::bigint) i",
                )
                .bind(accounts as i64)
                .bind((accounts + n - 1) as i64)
                .bind(now)
                .execute(&mut *tx)
                .await
                .unwrap();
                accounts += n;
            }
            let want = plan.sessions.min(accounts);
            while sessions < want && t.elapsed() < plan.seed_budget + plan.seed_budget / 4 {
                let n = batch.min(want - sessions);
                sqlx::query(
                    "INSERT INTO sessions (id, token_hash, account_id, factors, created_at, expires_at, last_seen_at)
                     SELECT gen_random_uuid(), md5(random()::text) || md5(random()::text), a.id,
                            (SELECT factors FROM sessions LIMIT 1), $1, $1 + 43200, $1
                     FROM accounts a WHERE a.username LIKE 'seed%'
                     ORDER BY a.username LIMIT $2 OFFSET $3",
                )
                .bind(now)
                .bind(n as i64)
                .bind(sessions as i64)
                .execute(&mut *tx)
                .await
                .unwrap();
                sessions += n;
            }
            tx.commit().await.unwrap();
            let _ = sqlx::query("ANALYZE").execute(&mut conn).await;
        }
    }
    (accounts, sessions, t.elapsed())
}

/// The physical limit of password sign-in: Argon2id verifications per second with the
/// gateway's configured parameters, through the gateway's own hashing pool with `workers`
/// workers (one per core), kept full (two verifications offered per worker), while the gateway
/// idles. The workers' memory is allocated before the clock starts, as in a running gateway.
/// Returns the rate (hashes/s), the parameters and, per hash, the hashing threads' scheduler
/// figures ([`task_sched`]).
async fn raw_argon2_rate(dur: Duration, workers: usize) -> (f64, xacthuc::authn::password::Argon2Params, [f64; 3]) {
    use xacthuc::service::hashing::HashingPool;
    // The gateway's `[password]` settings from the environment, as the gateway (a child of this
    // process) reads them: `XACTHUC_PASSWORD__MEMORY_KIB=9728 bench/run` compares at other cost.
    let env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("XACTHUC_PASSWORD__")).collect();
    let config = xacthuc::config::Config::load(None, env, &xacthuc::config::Overrides::default()).unwrap();
    let params = config.password.params();
    let phc: Arc<str> = xacthuc::authn::password::hash_password(PASSWORD, params).unwrap().into();
    let pool = Arc::new(HashingPool::start(workers, workers * 16, params).unwrap());
    let run = |until: Option<Instant>, rounds: usize| {
        let count = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..workers * 2)
            .map(|_| {
                let (pool, phc, count) = (pool.clone(), phc.clone(), count.clone());
                tokio::spawn(async move {
                    let mut done = 0;
                    while until.map_or(done < rounds, |t| Instant::now() < t) {
                        let slot = pool.try_reserve().expect("room in the bench's pool");
                        assert!(slot.verify(PASSWORD.to_string(), phc.to_string()).await.unwrap());
                        count.fetch_add(1, Ordering::Relaxed);
                        done += 1;
                    }
                })
            })
            .collect();
        async move {
            for t in tasks {
                t.await.unwrap();
            }
            count.load(Ordering::Relaxed)
        }
    };
    run(None, 1).await;
    let me = std::process::id();
    let before = named(&threads(me), "argon2");
    let start = Instant::now();
    let n = run(Some(start + dur), 0).await;
    let elapsed = start.elapsed().as_secs_f64();
    let after = named(&threads(me), "argon2");
    let per_hash = [0, 1, 2].map(|i| (after[i] - before[i]) / n.max(1) as f64);
    (n as f64 / elapsed, params, per_hash)
}

/// The sign-in cell's client (`wire`): one kept-alive connection per worker.
fn navigator(server: &Server, workers: usize) -> Arc<wire::Wire> {
    Arc::new(wire::Wire::new(std::net::SocketAddr::from(([127, 0, 0, 1], server.port)), workers))
}

/// One password sign-in as a new visitor on worker `w`'s connection: `GET /login` (its cookies
/// kept), then `POST /login` with the right password; success is the 303 that starts the
/// session. A 503 (the hashing queue full) counts as an error.
async fn password_sign_in(wire: &wire::Wire, w: usize, username: &str) -> Result<(), String> {
    let page = wire.get(w, "/login").await?;
    if page.status != 200 {
        return Err(format!("sign-in page answered {}", page.status));
    }
    let csrf = hidden(std::str::from_utf8(&page.body).map_err(|e| e.to_string())?, "csrf")?;
    let form = format!("csrf={}&username={}&password={}", enc(&csrf), enc(username), enc(PASSWORD));
    let resp = wire.post_form(w, "/login", &page.cookies.join("; "), &form).await?;
    if resp.status != 303 {
        return Err(format!("sign-in answered {}", resp.status));
    }
    Ok(())
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let sqlite_only = args.iter().any(|a| a == "--sqlite-only");
    let plan = Plan {
        quick,
        sign_in_only: args.iter().any(|a| a == "--sign-in-only"),
        cell: if quick { Duration::from_millis(1000) } else { Duration::from_secs(4) },
        codes_per_cell: if quick { 300 } else { 3000 },
        seed_budget: if quick { Duration::from_secs(10) } else { Duration::from_secs(60) },
        accounts: if quick { 50_000 } else { 1_000_000 },
        sessions: if quick { 5_000 } else { 100_000 },
        postgres: (!sqlite_only)
            .then(|| std::env::var(PG_ENV).ok().filter(|u| !u.is_empty()).unwrap_or(PG_DEFAULT.into())),
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread().thread_name("load-generator").enable_all().build().unwrap();
    let started = Instant::now();
    let mut report = Report::default();
    rt.block_on(async {
        run_backend("sqlite", None, &plan, &mut report).await;
        if let Some(admin) = &plan.postgres {
            match PgDatabase::create(admin).await {
                Ok(db) => {
                    run_backend("postgres", Some(db.url.clone()), &plan, &mut report).await;
                    db.drop_db().await;
                }
                Err(e) => report.fact("postgres", format!("skipped: {admin} unreachable ({e})")),
            }
        }
    });
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let header = format!(
        "xacthuc load benchmark{} — {} cores, {}, total {:.0} s, load generator in the same machine",
        if plan.quick { " (--quick smoke run: short cells, figures are rough)" } else { "" },
        cores,
        cpu_model(),
        started.elapsed().as_secs_f64()
    );
    let table = report.render(&header);
    println!("\n{table}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench").join("last-run.txt");
    if let Err(e) = std::fs::create_dir_all(out.parent().unwrap()).and_then(|_| std::fs::write(&out, &table)) {
        eprintln!("could not write {}: {e}", out.display());
    }
}

/// `XACTHUC_BENCH_SQLITE_SYNCHRONOUS` (`normal` unless set to `full`).
fn sqlite_synchronous() -> String {
    match std::env::var("XACTHUC_BENCH_SQLITE_SYNCHRONOUS").as_deref() {
        Ok("full") => "full".into(),
        _ => "normal".into(),
    }
}

/// `XACTHUC_BENCH_POSTGRES_SYNCHRONOUS_COMMIT` (`off` unless set to `on`): the PostgreSQL half's
/// counterpart of [`sqlite_synchronous`] — commits not flushed one by one.
fn postgres_synchronous_commit() -> &'static str {
    match std::env::var("XACTHUC_BENCH_POSTGRES_SYNCHRONOUS_COMMIT").as_deref() {
        Ok("on") => "on",
        _ => "off",
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
