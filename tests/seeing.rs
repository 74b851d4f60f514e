//! What an operator sees of a running `watch`: `/metrics` scraped and parsed (histograms with
//! their buckets), and the page at `/` behind the token, in a real headless Chromium (from the
//! distribution's packages): its rows, the filter, Failed first, a screenshot, hostile text
//! shown as text and no secret on the page.

mod common;
#[path = "common/daemon.rs"]
mod daemon;
#[path = "common/drops.rs"]
mod drops;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use daemon::Daemon;
use drops::{Env, HEADER};

const TOKEN: &str = "page-t0ken-s3cret";
/// A folder name the customer controls, shown in the integration's notices.
const HOSTILE: &str = "<img src=x onerror=alert(1)>";

/// `watch` over three integrations: `acme-users` with two drops (Active) and a hostile folder
/// name, `b-broken` whose bucket is missing (Failed), `c-quiet` with nothing yet (Ready).
struct Seen {
    _env: Env,
    _quiet: tempfile::TempDir,
    watch: Daemon,
}

impl Seen {
    fn start() -> Seen {
        let env = Env::new();
        env.csv(
            "20210301",
            "users.csv.gz",
            &format!("{HEADER}u1,a@x.com,,,\nu2,b@x.com,,,\n"),
        );
        env.success("20210301");
        env.csv(
            "20210302",
            "users.csv.gz",
            &format!("{HEADER}u3,c@x.com,,,\nu4,d@x.com,,not-a-number,\n"),
        );
        env.success("20210302");
        env.put(&format!("current/{HOSTILE}/x.txt"), b"x");
        let quiet = tempfile::tempdir().expect("temp dir");
        let state = format!(
            "[state]\nurl = \"sqlite://{}\"\n\n[server]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"SEEING_TOKEN\"\n\n[schedule]\nevery = \"1h\"\n",
            env.db().display()
        );
        let more = format!(
            r#"
[[integrations]]
name = "b-broken"
entity = "account"
schema = "users"
bucket = "file:///nonexistent/dropfolder-seeing-bucket"

[[integrations]]
name = "c-quiet"
entity = "account"
schema = "users"
bucket = "file://{}"
"#,
            quiet.path().display()
        );
        let path = env.dir.path().join("dropfolder.toml");
        std::fs::write(&path, env.config_text_with(&state, "") + &more).expect("write config");
        let mut watch = Daemon::watch(&path, &[("SEEING_TOKEN", TOKEN)]);
        watch.wait_for_count("folder finished", 2, Duration::from_secs(30));
        watch.wait_for_count("integration scanned", 3, Duration::from_secs(30));
        Seen {
            _env: env,
            _quiet: quiet,
            watch,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.watch.addr)
    }

    async fn get_with_token(&self, path: &str) -> (u16, String) {
        let response = reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let code = response.status().as_u16();
        (code, response.text().await.unwrap_or_default())
    }
}

/// One sample of an exposition text: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the Prometheus text format (the subset `/metrics` writes: no timestamps).
fn parse_exposition(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|e| panic!("value of {line:?}: {e}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut labels = BTreeMap::new();
                let mut rest = body;
                while !rest.is_empty() {
                    let (key, after) = rest.split_once("=\"").expect("label=\"");
                    // The value ends at the first quote not escaped.
                    let mut value = String::new();
                    let mut chars = after.char_indices();
                    let mut end = after.len();
                    while let Some((i, c)) = chars.next() {
                        match c {
                            '\\' => {
                                if let Some((_, n)) = chars.next() {
                                    value.push(if n == 'n' { '\n' } else { n });
                                }
                            }
                            '"' => {
                                end = i;
                                break;
                            }
                            c => value.push(c),
                        }
                    }
                    labels.insert(key.to_string(), value);
                    rest = after[end + 1..].trim_start_matches(',');
                }
                (name.to_string(), labels)
            }
            None => (series.to_string(), BTreeMap::new()),
        };
        samples.push((name, labels, value));
    }
    (types, samples)
}

/// The buckets of histogram `name` for `integration`, by upper bound, checked to be cumulative
/// and to end in `+Inf` equal to `_count`; returns the count.
fn check_histogram(samples: &[Sample], name: &str, integration: &str) -> f64 {
    let of = |suffix: &str| {
        samples
            .iter()
            .filter(|(n, l, _)| {
                n == &format!("{name}{suffix}")
                    && l.get("integration").map(String::as_str) == Some(integration)
            })
            .collect::<Vec<_>>()
    };
    let buckets = of("_bucket");
    assert!(buckets.len() >= 5, "{name}: buckets {buckets:?}");
    let bounds: Vec<(f64, f64)> = buckets
        .iter()
        .map(|(_, l, v)| {
            let le = l.get("le").expect("le label");
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("le")
            };
            (bound, *v)
        })
        .collect();
    for pair in bounds.windows(2) {
        assert!(pair[0].0 < pair[1].0, "{name}: bounds in order {bounds:?}");
        assert!(pair[0].1 <= pair[1].1, "{name}: cumulative {bounds:?}");
    }
    let (last_bound, last_count) = bounds[bounds.len() - 1];
    assert!(last_bound.is_infinite(), "{name}: ends in +Inf {bounds:?}");
    let count = of("_count");
    let sum = of("_sum");
    assert_eq!(count.len(), 1, "{name}_count");
    assert_eq!(sum.len(), 1, "{name}_sum");
    assert_eq!(count[0].2, last_count, "{name}: +Inf bucket == _count");
    assert!(sum[0].2 >= 0.0);
    last_count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_histograms_with_buckets_and_the_names_kept() {
    let seen = tokio::task::spawn_blocking(Seen::start)
        .await
        .expect("start");
    assert_eq!(seen.watch.get("/metrics").await.0, 401);
    let (code, text) = seen.get_with_token("/metrics").await;
    assert_eq!(code, 200, "{text}");
    let (types, samples) = parse_exposition(&text);
    assert_eq!(
        types.get("dropfolder_scan_seconds").map(String::as_str),
        Some("histogram")
    );
    assert_eq!(
        types.get("dropfolder_file_seconds").map(String::as_str),
        Some("histogram")
    );
    assert_eq!(
        check_histogram(&samples, "dropfolder_file_seconds", "acme-users"),
        2.0
    );
    assert!(check_histogram(&samples, "dropfolder_scan_seconds", "acme-users") >= 1.0);
    // The bound deploy/prometheus/alerts.yaml counts overrunning scans against.
    assert!(
        samples
            .iter()
            .any(|(n, l, _)| n == "dropfolder_scan_seconds_bucket"
                && l.get("le").map(String::as_str) == Some("900")),
        "no le=\"900\" bucket in\n{text}"
    );
    let value = |name: &str, labels: &[(&str, &str)]| {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| *v)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    // The names and labels that existed before the histograms, as deploy/ and tests use them.
    assert_eq!(
        value("dropfolder_rows_total", &[("integration", "acme-users")]),
        4.0
    );
    assert_eq!(
        value(
            "dropfolder_folders_total",
            &[("integration", "acme-users"), ("result", "error")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "dropfolder_folders_total",
            &[("integration", "acme-users"), ("result", "success")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "dropfolder_files_total",
            &[("integration", "acme-users"), ("verdict", "imported")]
        ),
        1.0
    );
    assert!(
        value(
            "dropfolder_failures_total",
            &[("integration", "b-broken"), ("what", "scan")]
        ) >= 1.0
    );
    for (integration, status) in [
        ("acme-users", "Active"),
        ("b-broken", "Failed"),
        ("c-quiet", "Ready"),
    ] {
        for other in ["Ready", "Active", "Warning", "Failed"] {
            assert_eq!(
                value(
                    "dropfolder_integration_status",
                    &[("integration", integration), ("status", other)]
                ),
                f64::from(u8::from(other == status)),
                "{integration} {other}"
            );
        }
        assert_eq!(
            value(
                "dropfolder_integration_stale",
                &[("integration", integration)]
            ),
            0.0
        );
    }
    // Every series is one the names list (which deploy/lint checks the rules against) has.
    for (name, _, _) in &samples {
        assert!(
            dropfolder::telemetry::METRIC_NAMES.contains(&name.as_str()),
            "{name} is not in telemetry::METRIC_NAMES"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_takes_the_token_once_and_keeps_a_cookie_without_it() {
    let seen = tokio::task::spawn_blocking(Seen::start)
        .await
        .expect("start");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let get = |path: &str, cookie: Option<&str>| {
        let mut request = client.get(seen.url(path));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send()
    };
    assert_eq!(get("/", None).await.expect("GET /").status(), 401);
    assert_eq!(get("/?token=wrong", None).await.expect("GET").status(), 401);
    assert_eq!(
        get("/", Some("dropfolder_session=0000"))
            .await
            .expect("GET")
            .status(),
        401
    );
    let redirect = get(&format!("/?token={TOKEN}"), None).await.expect("GET");
    assert_eq!(redirect.status(), 303);
    assert_eq!(redirect.headers()["location"], "/");
    let set_cookie = redirect.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    assert!(
        !set_cookie.contains(TOKEN),
        "the cookie holds a digest, not the token"
    );
    let cookie = set_cookie
        .split(';')
        .next()
        .expect("name=value")
        .to_string();

    let page = get("/", Some(&cookie)).await.expect("GET /");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let html = page.text().await.expect("body");
    assert!(html.contains("data-name=\"b-broken\""), "{html}");
    assert!(!html.contains(TOKEN));
    assert!(!html.contains(HOSTILE), "customer text must be escaped");
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{html}"
    );
    // The cookie is for the page's server only: /status takes it too, the probes need nothing.
    assert_eq!(
        get("/status", Some(&cookie)).await.expect("GET").status(),
        200
    );
    assert_eq!(get("/healthz", None).await.expect("GET").status(), 200);
    let log = seen.watch.log().join("\n");
    assert!(!log.contains(TOKEN), "the token reached the log:\n{log}");
    assert!(
        !log.contains(&cookie["dropfolder_session=".len()..]),
        "{log}"
    );
}

/// The distribution's Chromium, or `None` to skip; `DROPFOLDER_REQUIRE_BROWSER=1` (set by
/// `tests/run`, which installs it) turns a missing one into a failure.
fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    });
    if found.is_none() {
        assert!(
            std::env::var_os("DROPFOLDER_REQUIRE_BROWSER").is_none(),
            "DROPFOLDER_REQUIRE_BROWSER is set but no chromium is installed (apt-get install chromium)"
        );
        eprintln!("skipped: no chromium (apt-get install chromium)");
    }
    found
}

/// Runs headless Chromium on `url` with `args`; its stdout.
fn headless(chromium: &Path, profile: &Path, args: &[&str], url: &str) -> String {
    let started = Instant::now();
    let output = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        output.status.success(),
        "chromium {args:?} {url} failed after {:?}: {}",
        started.elapsed(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The rows of the dumped DOM, in order: (name, hidden).
fn rows(dom: &str) -> Vec<(String, bool)> {
    dom.split("<tr ")
        .skip(1)
        .filter_map(|tr| {
            let tag = &tr[..tr.find('>')?];
            let name = tag.split("data-name=\"").nth(1)?.split('"').next()?;
            Some((name.to_string(), tag.contains(" hidden")))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_in_headless_chromium_filters_sorts_and_shows_text_as_text() {
    let Some(chromium) = chromium() else { return };
    let seen = tokio::task::spawn_blocking(Seen::start)
        .await
        .expect("start");
    let profile = tempfile::tempdir().expect("profile dir");
    let url = |fragment: &str| seen.url(&format!("/?token={TOKEN}#{fragment}"));
    let dump = |fragment: &str| {
        let target = url(fragment);
        let chromium = chromium.clone();
        let profile = profile.path().to_path_buf();
        async move {
            tokio::task::spawn_blocking(move || {
                headless(&chromium, &profile, &["--dump-dom"], &target)
            })
            .await
            .expect("chromium task")
        }
    };

    // Every integration, Failed first (the default sort), the script has run.
    let dom = dump("").await;
    let all = rows(&dom);
    assert_eq!(
        all,
        vec![
            ("b-broken".to_string(), false),
            ("c-quiet".to_string(), false),
            ("acme-users".to_string(), false)
        ],
        "{dom}"
    );
    assert!(
        dom.contains("3 of 3 shown"),
        "the script did not run: {dom}"
    );
    // The last drops with their records and status.txt text: the newest (an error) open,
    // the earlier one folded.
    assert!(dom.contains("SUCCESS\n2 records were uploaded"), "{dom}");
    assert!(dom.contains("1 earlier"), "{dom}");
    assert!(dom.contains("processed/20210302/"), "{dom}");
    assert!(dom.contains("not-a-number"), "the error is shown: {dom}");
    // The hostile folder name is text: no element was made of it.
    assert!(!dom.contains("<img"), "{dom}");
    assert!(dom.contains("&lt;img src=x onerror=alert(1)&gt;"), "{dom}");
    assert!(!dom.contains(TOKEN), "the token must not reach the page");

    // The status filter and the name filter, from the address (as the controls write it).
    let failed = rows(&dump("status=Failed").await);
    assert_eq!(
        failed
            .iter()
            .filter(|(_, hidden)| !hidden)
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["b-broken"]
    );
    let quiet = rows(&dump("q=QUIET").await);
    assert_eq!(
        quiet
            .iter()
            .filter(|(_, hidden)| !hidden)
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["c-quiet"]
    );
    // Sorted by name, descending.
    let by_name = rows(&dump("sort=-name").await);
    assert_eq!(
        by_name.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["c-quiet", "b-broken", "acme-users"]
    );

    // A screenshot for CI's artifacts: a PNG of the window's size.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("seeing");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let png = dir.join("page.png");
    let _ = std::fs::remove_file(&png);
    let shot = format!("--screenshot={}", png.display());
    let target = url("");
    let (chromium2, profile2) = (chromium.clone(), profile.path().to_path_buf());
    tokio::task::spawn_blocking(move || {
        headless(
            &chromium2,
            &profile2,
            &[&shot, "--window-size=1280,800"],
            &target,
        )
    })
    .await
    .expect("chromium task");
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().expect("4 bytes"));
    let height = u32::from_be_bytes(bytes[20..24].try_into().expect("4 bytes"));
    assert_eq!((width, height), (1280, 800));
    // A blank page compresses to a few hundred bytes; one with the table does not.
    assert!(bytes.len() > 10_000, "screenshot of {} bytes", bytes.len());
    eprintln!("screenshot: {}", png.display());
}
