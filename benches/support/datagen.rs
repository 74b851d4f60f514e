//! A deterministic generator of customer files in the SPEC's example schema: strings, numbers,
//! booleans, dates, and some quoted fields with commas and doubled quotes. The same seed and
//! row count always give the same bytes, so figures are comparable between runs.

use std::io::{BufWriter, Write};
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;

/// The header, and the schema that goes with it (TOML).
pub const HEADER: &str = "id,email,name,signUpDate,score,isTrial,plan,country\n";
pub const SCHEMA: &str = r#"
id = "string"
email = "string"
name = "string"
signUpDate = "date"
score = "number"
isTrial = "boolean"
plan = "string"
country = "string"
"#;
pub const DATE_FORMAT: &str = "yyyy-MM-dd'T'HH:mm:ssX";

const FIRST: [&str; 8] = [
    "Ada", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances",
];
const LAST: [&str; 8] = [
    "Lovelace", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie", "Allen",
];
const PLANS: [&str; 4] = ["free", "team", "business", "enterprise"];
const COUNTRIES: [&str; 6] = ["DE", "US", "FR", "JP", "BR", "IN"];

/// xorshift64*: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// Writes one CSV row for row number `i`.
pub fn write_row(out: &mut impl Write, rng_seed: u64, i: u64) -> std::io::Result<()> {
    let mut rng = Rng(rng_seed ^ (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1));
    let (first, last) = (rng.pick(&FIRST), rng.pick(&LAST));
    // One row in four has a name that needs quoting: a comma, sometimes a doubled quote.
    let name = match rng.next() % 8 {
        0 => format!("\"{last}, {first}\""),
        1 => format!("\"{first} \"\"The {last}\"\"\""),
        _ => format!("{first} {last}"),
    };
    let day = rng.next() % 28 + 1;
    let month = rng.next() % 12 + 1;
    let (h, m, s) = (rng.next() % 24, rng.next() % 60, rng.next() % 60);
    let score = rng.next() % 1_000_000;
    writeln!(
        out,
        "u{i:08},{}.{}{i}@example.com,{name},20{:02}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z,{}.{:02},{},{},{}",
        first.to_lowercase(),
        last.to_lowercase(),
        rng.next() % 25,
        score / 100,
        score % 100,
        rng.next() % 2 == 0,
        rng.pick(&PLANS),
        rng.pick(&COUNTRIES),
    )
}

/// Writes `rows` rows (plus the header) gzipped to `path`, unless it is already there.
pub fn ensure_file(path: &Path, rows: u64) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let partial = path.with_extension("partial");
    let file = std::fs::File::create(&partial)?;
    let mut out = BufWriter::with_capacity(1 << 20, GzEncoder::new(file, Compression::default()));
    out.write_all(HEADER.as_bytes())?;
    for i in 0..rows {
        write_row(&mut out, 42, i)?;
    }
    out.into_inner().map_err(|e| e.into_error())?.finish()?;
    std::fs::rename(partial, path)
}

/// A decompression bomb: `members` gzip members of 4 MiB of zeros each after a header.
pub fn ensure_zero_bomb(path: &Path, members: usize) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut header = GzEncoder::new(Vec::new(), Compression::best());
    header.write_all(HEADER.as_bytes())?;
    let mut bytes = header.finish()?;
    let mut zeros = GzEncoder::new(Vec::new(), Compression::best());
    zeros.write_all(&vec![0u8; 4 << 20])?;
    let member = zeros.finish()?;
    for _ in 0..members {
        bytes.extend_from_slice(&member);
    }
    std::fs::write(path, bytes)
}

/// Valid 1 KB rows in 10 MB gzip members, `members` times: gigabytes of rows that stay under
/// the row cap, so only the decompressed-bytes cap stops them.
pub fn ensure_row_bomb(path: &Path, members: usize) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let row = format!(
        "u1,a@example.com,{},2021-01-01T00:00:00Z,1,true,free,DE\n",
        "x".repeat(960)
    );
    let mut member = GzEncoder::new(Vec::new(), Compression::best());
    member.write_all(row.repeat(10_000).as_bytes())?;
    let member = member.finish()?;
    let mut header = GzEncoder::new(Vec::new(), Compression::best());
    header.write_all(HEADER.as_bytes())?;
    let mut bytes = header.finish()?;
    for _ in 0..members {
        bytes.extend_from_slice(&member);
    }
    std::fs::write(path, bytes)
}

/// One row whose `name` is a single field of `bytes` bytes.
pub fn ensure_huge_field(path: &Path, bytes: usize) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut out = GzEncoder::new(std::fs::File::create(path)?, Compression::default());
    out.write_all(HEADER.as_bytes())?;
    out.write_all(b"u1,a@example.com,\"")?;
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..bytes / chunk.len() {
        out.write_all(&chunk)?;
    }
    out.write_all(b"\",2021-01-01T00:00:00Z,1,true,free,DE\n")?;
    out.finish()?;
    Ok(())
}

/// A header of `columns` distinct unknown names (4 characters each) and one row: the header
/// check must stay linear, and its errors capped.
pub fn ensure_wide_header(path: &Path, columns: u32) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut out = GzEncoder::new(std::fs::File::create(path)?, Compression::default());
    out.write_all(b"id")?;
    for n in 0..columns {
        let digit = |p: u32| char::from_digit(n / 36u32.pow(p) % 36, 36).unwrap_or('0');
        write!(out, ",{}{}{}{}", digit(3), digit(2), digit(1), digit(0))?;
    }
    out.write_all(b"\nu1\n")?;
    out.finish()?;
    Ok(())
}

/// A config for one integration over the generated schema; `max_rows` raised as needed.
pub fn config(bucket: &str, max_rows: u64, extra: &str) -> String {
    format!(
        "{extra}\n[schemas.bench]\n{SCHEMA}\n[[integrations]]\nname = \"bench\"\nentity = \"user\"\nschema = \"bench\"\nbucket = \"{bucket}\"\ndate_format = \"{DATE_FORMAT}\"\nmax_rows = {max_rows}\n"
    )
}
