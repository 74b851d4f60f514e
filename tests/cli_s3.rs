//! `dropfolder run` and `check` against S3 (LocalStack) as an operator sees them: each
//! integration's access problem reported on its own line with what to do, exit 1, the other
//! integrations still processed, no secret in any output; and a large object streamed.

mod common;
#[path = "common/localstack.rs"]
mod localstack;
#[path = "common/sts_stub.rs"]
mod sts_stub;

use std::io::Write;
use std::process::Stdio;

use common::gzip;
use localstack::LocalStack;

const EXTERNAL_ID: &str = "SUB-wrong-7f3a9c";
const SECRET_KEY: &str = "secret-key-that-must-never-be-printed-91d2";

fn write_config(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("dropfolder.toml");
    let text = format!(
        "[state]\nurl = \"sqlite://{}\"\n\n[schemas.users]\nid = \"string\"\nemail = \"string\"\n{body}",
        dir.join("dropfolder.db").display()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn integration(name: &str, bucket: &str, endpoint: &str, access: &str) -> String {
    format!(
        "\n[[integrations]]\nname = \"{name}\"\nentity = \"user\"\nschema = \"users\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\n{access}\n"
    )
}

fn command(config: &std::path::Path, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_dropfolder"));
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .env(
            "RUST_LOG",
            "debug,aws_smithy_runtime=info,aws_config=info,hyper=info",
        )
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .env("DROPFOLDER_TEST_EXTERNAL_ID", EXTERNAL_ID);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_problems_are_reported_per_integration_and_the_others_still_run() {
    let Some(endpoint) = localstack::endpoint() else {
        return;
    };
    let ls = LocalStack::connect(endpoint.clone()).await;
    let bucket = ls.bucket().await;
    ls.put(
        &bucket,
        "px/current/dt=20210228/users.csv.gz",
        gzip(b"id,email\nu1,a@x.com\n"),
    )
    .await;
    ls.put(&bucket, "px/current/dt=20210228/_SUCCESS", b"".to_vec())
        .await;
    let sts = sts_stub::StsStub::denying().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let denied = format!(
        "role_arn = \"arn:aws:iam::123456789012:role/s3-export-role\"\nexternal_id_env = \"DROPFOLDER_TEST_EXTERNAL_ID\"\nsts_endpoint = \"{}\"",
        sts.url
    );
    let keys = "access_key_id_env = \"AWS_ACCESS_KEY_ID\"\nsecret_access_key_env = \"AWS_SECRET_ACCESS_KEY\"";
    // Each on its own root: overlapping roots are a config error.
    let body = integration("denied", &format!("{bucket}/denied"), &endpoint, &denied)
        + &integration(
            "missing",
            &format!("{}/px", localstack::unique("nosuchbucket")),
            &endpoint,
            keys,
        )
        + &integration("good", &format!("{bucket}/px"), &endpoint, keys);
    let config = write_config(dir.path(), &body);

    let output = command(&config, &["run"])
        .output()
        .await
        .expect("run dropfolder");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    let shown = format!(
        "exit {:?}\n--- stdout\n{stdout}--- stderr\n{stderr}",
        output.status.code()
    );
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(
        stdout.contains("good: current/dt=20210228/ -> processed/20210228/ SUCCESS, 1 record"),
        "{shown}"
    );
    let denied_line = stdout
        .lines()
        .find(|l| l.starts_with("denied: FAILED:"))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(
        denied_line.contains("cannot get credentials") && denied_line.contains("AccessDenied"),
        "{denied_line}"
    );
    assert!(
        denied_line.contains("check role_arn, the external ID and the role's trust policy"),
        "{denied_line}"
    );
    let missing_line = stdout
        .lines()
        .find(|l| l.starts_with("missing: FAILED:"))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(
        missing_line.contains("does not exist; check `bucket` in the config"),
        "{missing_line}"
    );
    // The STS call named the integration and carried the external ID; no output shows either secret.
    let bodies = sts.bodies();
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("RoleSessionName=dropfolder-denied") && b.contains(EXTERNAL_ID)),
        "{bodies:?}"
    );
    for secret in [EXTERNAL_ID, SECRET_KEY] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} was printed:\n{shown}"
        );
    }

    let output = command(&config, &["check"])
        .output()
        .await
        .expect("run check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("good: ok, s3://"), "{stdout}");
    assert!(
        stdout.contains("denied: FAILED:") && stdout.contains("missing: FAILED:"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_object_is_streamed_not_buffered() {
    let Some(endpoint) = localstack::endpoint() else {
        return;
    };
    let ls = LocalStack::connect(endpoint.clone()).await;
    let bucket = ls.bucket().await;
    // ~50 MB of gzip that barely compresses: far more than any buffer the reader holds.
    let rows = 90_000u64;
    let file = big_object(rows);
    let size = std::fs::metadata(file.path()).expect("size").len();
    assert!(size > 40 << 20, "the object is {size} bytes");
    let body = aws_sdk_s3::primitives::ByteStream::from_path(file.path())
        .await
        .expect("read the object file");
    ls.s3
        .put_object()
        .bucket(&bucket)
        .key("px/current/dt=20210228/users.csv.gz")
        .body(body)
        .send()
        .await
        .expect("upload");
    ls.put(&bucket, "px/current/dt=20210228/_SUCCESS", b"".to_vec())
        .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = "access_key_id_env = \"AWS_ACCESS_KEY_ID\"\nsecret_access_key_env = \"AWS_SECRET_ACCESS_KEY\"";
    let config = write_config(
        dir.path(),
        &integration("big", &format!("{bucket}/px"), &endpoint, keys),
    );
    let child = command(&config, &["run"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start");
    let pid = child.id().expect("pid") as libc::pid_t;
    let (status, peak_kib) = tokio::task::spawn_blocking(move || {
        let mut status = 0;
        // SAFETY: an all-zero rusage is valid for wait4 to fill; pid is our own child.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        assert_eq!(waited, pid);
        (status, usage.ru_maxrss)
    })
    .await
    .expect("wait");
    std::mem::forget(child);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "status {status}"
    );
    assert_eq!(
        ls.text(&bucket, "px/processed/20210228/status.txt").await,
        format!("SUCCESS\n{rows} records were uploaded\n")
    );
    // Buffering would add the object's 40+ MB to the ~45 MiB this debug build takes. The
    // child's peak starts from this test process's size at fork, which is why the object was
    // built and dropped before the spawn.
    assert!(
        peak_kib < 75 * 1024,
        "peak RSS {} MiB for a {} MB object",
        peak_kib / 1024,
        size >> 20
    );
}

/// Rows of 720 characters from a 64-symbol alphabet (6 bits a byte, so gzip saves little),
/// gzipped straight to a file: this process must stay small (see the RSS check).
fn big_object(rows: u64) -> tempfile::NamedTempFile {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let file = tempfile::NamedTempFile::new().expect("temp file");
    let writer = std::io::BufWriter::new(file.reopen().expect("reopen"));
    let mut csv = flate2::write::GzEncoder::new(writer, flate2::Compression::fast());
    csv.write_all(b"id,email\n").expect("write");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..rows {
        write!(csv, "u{i},").expect("write");
        let mut row = Vec::with_capacity(721);
        for _ in 0..72 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            row.extend((0..10).map(|k| ALPHABET[((x >> (6 * k)) & 63) as usize]));
        }
        row.push(b'\n');
        csv.write_all(&row).expect("write");
    }
    csv.finish()
        .and_then(|mut w| w.flush())
        .expect("finish gzip");
    file
}
