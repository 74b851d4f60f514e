//! The page for people that `watch` serves at `/`, next to `/status` for machines: every
//! integration with its status and reason, last scan, last data, the last drops with their
//! records and `status.txt` text, staleness and a callback stuck in the outbox, sortable and filterable to
//! find the failing ones among thousands.
//!
//! One self-contained document: inline CSS and JS, no external assets (it works in an
//! air-gapped cluster), allowed by a Content-Security-Policy that names their SHA-256 hashes
//! and nothing else. Everything from outside the process (names, reasons, `status.txt` text,
//! notices) is HTML-escaped; the script only moves and hides rows, it never writes markup.

use std::fmt::Write;

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

use crate::health::{Health, Status};
use crate::state::DropSummary;

/// How many drops of each integration the page shows (the newest, and the earlier ones
/// folded).
pub const DROPS_SHOWN: usize = 5;
/// How much of a `status.txt` the page shows (it can list many errors; the file has them all).
const MESSAGE_SHOWN_CHARS: usize = 4_000;

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:1rem;color:#1b1b1b;background:#fff}
h1{font-size:1.3rem;margin:0 0 .5rem}
#counts span{margin-right:1rem}
form{display:flex;gap:1rem;align-items:center;margin:.5rem 0}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.3rem .4rem;text-align:left;vertical-align:top}
th button{font:inherit;font-weight:bold;border:0;background:none;cursor:pointer;padding:0}
th[aria-sort=ascending] button::after{content:' \\25B2'}
th[aria-sort=descending] button::after{content:' \\25BC'}
.s{font-weight:bold;padding:0 .3rem;border-radius:3px}
.Failed .s{background:#c62828;color:#fff}
.Warning .s{background:#f9a825}
.Active .s{background:#2e7d32;color:#fff}
.Ready .s{background:#1565c0;color:#fff}
pre{margin:0;white-space:pre-wrap;max-width:32rem;max-height:8rem;overflow:auto}
td.t{white-space:nowrap}
.drop{margin-bottom:.3rem}
";

const SCRIPT: &str = r#"
(function () {
  var table = document.getElementById('integrations');
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var status = document.getElementById('status');
  var query = document.getElementById('q');
  var shown = document.getElementById('shown');
  var heads = table.tHead.rows[0].cells;
  var sort = { key: 'rank', dir: 1 };
  function readHash() {
    var p = new URLSearchParams(location.hash.slice(1));
    status.value = p.get('status') || '';
    query.value = p.get('q') || '';
    var s = p.get('sort');
    if (s) { sort = { key: s.replace(/^-/, ''), dir: s.charAt(0) === '-' ? -1 : 1 }; }
  }
  function writeHash() {
    var p = new URLSearchParams();
    if (status.value) { p.set('status', status.value); }
    if (query.value) { p.set('q', query.value); }
    p.set('sort', (sort.dir < 0 ? '-' : '') + sort.key);
    history.replaceState(null, '', '#' + p.toString());
  }
  function compare(a, b) {
    var x = a.dataset[sort.key] || '', y = b.dataset[sort.key] || '';
    var nx = Number(x), ny = Number(y);
    var c = (x !== '' && y !== '' && !isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
    return c * sort.dir || a.dataset.name.localeCompare(b.dataset.name);
  }
  var order = null;
  function apply(resort) {
    var want = status.value, needle = query.value.trim().toLowerCase(), n = 0;
    if (resort || !order) {
      // Rows move only when the order changes, in one fragment: thousands stay quick.
      order = rows.slice().sort(compare);
      var fragment = document.createDocumentFragment();
      order.forEach(function (row) { fragment.appendChild(row); });
      body.appendChild(fragment);
    }
    order.forEach(function (row) {
      var show = (!want || row.dataset.status === want) &&
        (!needle || row.dataset.name.toLowerCase().indexOf(needle) >= 0);
      row.hidden = !show;
      if (show) { n += 1; }
    });
    shown.textContent = n + ' of ' + rows.length + ' shown';
    for (var i = 0; i < heads.length; i++) {
      var key = heads[i].dataset.key;
      if (key === sort.key) {
        heads[i].setAttribute('aria-sort', sort.dir < 0 ? 'descending' : 'ascending');
      } else {
        heads[i].removeAttribute('aria-sort');
      }
    }
  }
  for (var i = 0; i < heads.length; i++) {
    heads[i].querySelector('button').addEventListener('click', function (e) {
      var key = e.currentTarget.parentNode.dataset.key;
      sort = { key: key, dir: sort.key === key ? -sort.dir : 1 };
      writeHash();
      apply(true);
    });
  }
  status.addEventListener('change', function () { writeHash(); apply(); });
  query.addEventListener('input', function () { writeHash(); apply(); });
  document.getElementById('filters').addEventListener('submit', function (e) { e.preventDefault(); });
  readHash();
  apply();
})();
"#;

fn sha256_source(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The Content-Security-Policy of the page: its own inline style and script, nothing else
/// (no other scripts, styles, images, fonts, frames, connections or form targets).
pub fn content_security_policy() -> String {
    format!(
        "default-src 'none'; style-src {}; script-src {}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        sha256_source(STYLE),
        sha256_source(SCRIPT)
    )
}

/// `text` for HTML text and quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Failed first, then Warning, Ready, Active: the order an operator works in.
fn rank(status: Status) -> u8 {
    match status {
        Status::Failed => 0,
        Status::Warning => 1,
        Status::Ready => 2,
        Status::Active => 3,
    }
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "never".to_string(),
        |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

/// The page for `all` with their recent `drops` (any order), Failed first (the script re-sorts
/// and filters in the browser).
pub fn render(all: &[Health], drops: &[DropSummary], now: DateTime<Utc>) -> String {
    let mut by_integration: std::collections::HashMap<&str, Vec<&DropSummary>> =
        std::collections::HashMap::new();
    for drop in drops {
        by_integration
            .entry(drop.integration.as_str())
            .or_default()
            .push(drop);
    }
    for list in by_integration.values_mut() {
        list.sort_by_key(|d| std::cmp::Reverse(d.reported_at));
        list.truncate(DROPS_SHOWN);
    }
    let mut sorted: Vec<&Health> = all.iter().collect();
    sorted.sort_by(|a, b| (rank(a.status), &a.integration).cmp(&(rank(b.status), &b.integration)));
    let count = |s: Status| all.iter().filter(|h| h.status == s).count();
    let mut out = String::with_capacity(1024 + all.len() * 600);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>dropfolder: {} integrations</title><style>{STYLE}</style></head><body>\
         <h1>dropfolder integrations</h1><p id=\"counts\">",
        all.len()
    );
    for s in [
        Status::Failed,
        Status::Warning,
        Status::Ready,
        Status::Active,
    ] {
        let _ = write!(
            out,
            "<span class=\"{0}\"><span class=\"s\">{0}</span> {1}</span>",
            s.as_str(),
            count(s)
        );
    }
    let _ = write!(
        out,
        "<span>as of {}</span></p>\
         <form id=\"filters\" role=\"search\"><label>Status <select id=\"status\">\
         <option value=\"\">all</option><option>Failed</option><option>Warning</option>\
         <option>Ready</option><option>Active</option></select></label>\
         <label>Name contains <input id=\"q\" type=\"search\" autocomplete=\"off\"></label>\
         <output id=\"shown\"></output></form>\
         <table id=\"integrations\"><thead><tr>\
         <th data-key=\"name\"><button type=\"button\">Integration</button></th>\
         <th data-key=\"rank\"><button type=\"button\">Status</button></th>\
         <th data-key=\"reason\"><button type=\"button\">Reason</button></th>\
         <th data-key=\"scan\"><button type=\"button\">Last scan</button></th>\
         <th data-key=\"data\"><button type=\"button\">Last data</button></th>\
         <th data-key=\"stale\"><button type=\"button\">Stale</button></th>\
         <th data-key=\"drop\"><button type=\"button\">Last drop</button></th>\
         <th data-key=\"callback\"><button type=\"button\">Callback</button></th>\
         <th data-key=\"notices\"><button type=\"button\">Notices</button></th>\
         </tr></thead><tbody>",
        time(Some(now))
    );
    for h in sorted {
        let drops = by_integration
            .get(h.integration.as_str())
            .map_or(&[][..], Vec::as_slice);
        row(&mut out, h, drops);
    }
    let _ = writeln!(
        out,
        "</tbody></table><script>{SCRIPT}</script></body></html>"
    );
    out
}

/// `message` cut to what the page shows.
fn shown(message: &str) -> String {
    match message.char_indices().nth(MESSAGE_SHOWN_CHARS) {
        Some((at, _)) => format!("{}\n… (cut; status.txt has all of it)", &message[..at]),
        None => message.to_string(),
    }
}

fn drop_html(out: &mut String, drop: &DropSummary) {
    let records = if drop.records == 1 {
        "record"
    } else {
        "records"
    };
    let _ = write!(
        out,
        "<div class=\"drop\"><b>{}</b> {} <span class=\"t\">{}</span>, {} {records}<pre>{}</pre></div>",
        if drop.success { "SUCCESS" } else { "ERROR" },
        escape_html(&drop.target),
        time(Some(drop.reported_at)),
        drop.records,
        escape_html(&shown(&drop.message))
    );
}

fn row(out: &mut String, h: &Health, drops: &[&DropSummary]) {
    let name = escape_html(&h.integration);
    let status = h.status.as_str();
    let epoch = |t: Option<DateTime<Utc>>| t.map_or(0, |t| t.timestamp());
    let _ = write!(
        out,
        "<tr class=\"{status}\" data-name=\"{name}\" data-status=\"{status}\" data-rank=\"{}\" \
         data-reason=\"{reason}\" data-scan=\"{}\" data-data=\"{}\" data-stale=\"{}\" \
         data-drop=\"{drop}\" data-callback=\"{}\" data-notices=\"{}\">\
         <td>{name}{kind}</td><td><span class=\"s\">{status}</span></td><td>{reason}</td>\
         <td class=\"t\">{}</td><td class=\"t\">{}</td><td>{}</td>",
        rank(h.status),
        epoch(h.last_scan_at),
        epoch(h.last_data_at),
        u8::from(h.stale),
        u8::from(h.callback_error.is_some()),
        h.notices.len(),
        time(h.last_scan_at),
        time(h.last_data_at),
        if h.stale { "stale" } else { "" },
        reason = escape_html(&h.reason),
        drop = escape_html(h.last_target.as_deref().unwrap_or("")),
        // Files are the usual way in; another is named.
        kind = match h.kind {
            "bucket" => String::new(),
            other => format!(" <small>({other})</small>"),
        },
    );
    match (drops.split_first(), &h.last_target, &h.last_result) {
        (Some((newest, earlier)), _, _) => {
            out.push_str("<td>");
            drop_html(out, newest);
            if !earlier.is_empty() {
                let _ = write!(out, "<details><summary>{} earlier</summary>", earlier.len());
                for drop in earlier {
                    drop_html(out, drop);
                }
                out.push_str("</details>");
            }
            out.push_str("</td>");
        }
        (None, Some(target), Some(result)) => {
            let _ = write!(
                out,
                "<td><b>{}</b> {}<pre>{}</pre></td>",
                escape_html(result),
                escape_html(target),
                escape_html(&shown(h.last_message.as_deref().unwrap_or("")))
            );
        }
        _ => out.push_str("<td>none yet</td>"),
    }
    match &h.callback_error {
        Some(error) => {
            let _ = write!(
                out,
                "<td class=\"stuck\">not delivered: {}</td>",
                escape_html(error)
            );
        }
        None => out.push_str("<td></td>"),
    }
    out.push_str("<td>");
    for notice in &h.notices {
        let _ = write!(out, "<div>{}</div>", escape_html(notice));
    }
    out.push_str("</td></tr>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(name: &str, status: Status) -> Health {
        Health {
            integration: name.to_string(),
            kind: "bucket",
            status,
            reason: "r".into(),
            since: None,
            last_scan_at: None,
            last_data_at: None,
            last_target: None,
            last_result: None,
            last_message: None,
            first_seen_at: None,
            notices: vec![],
            callback_error: None,
            stale: false,
        }
    }

    #[test]
    fn customer_text_is_escaped_everywhere() {
        let hostile = "<img src=x onerror=alert(1)>\"'&";
        let mut h = health(hostile, Status::Failed);
        h.reason = hostile.into();
        h.last_target = Some(hostile.into());
        h.last_result = Some("ERROR".into());
        h.last_message = Some(format!("ERROR\n{hostile}</pre><script>alert(2)</script>"));
        h.notices = vec![hostile.into()];
        h.callback_error = Some(hostile.into());
        let drop = DropSummary {
            integration: hostile.into(),
            target: hostile.into(),
            success: false,
            records: 0,
            message: hostile.into(),
            reported_at: Utc::now(),
        };
        let page = render(&[h], &[drop.clone(), drop], Utc::now());
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("alert(2)</script>"), "{page}");
        assert!(!page.contains("\"'&\""), "{page}");
        assert!(
            page.contains("&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;"),
            "{page}"
        );
        assert!(page.contains("1 earlier"), "{page}");
        // The only script is the page's own, allowed by its hash.
        assert_eq!(page.matches("<script>").count(), 1);
    }

    #[test]
    fn long_status_text_is_cut_on_the_page() {
        let long = "e".repeat(MESSAGE_SHOWN_CHARS + 10);
        let cut = shown(&long);
        assert!(cut.starts_with(&"e".repeat(MESSAGE_SHOWN_CHARS)));
        assert!(cut.ends_with("(cut; status.txt has all of it)"));
        assert_eq!(shown("short"), "short");
    }

    #[test]
    fn failed_first_and_the_policy_names_the_inline_code() {
        let page = render(
            &[
                health("a-active", Status::Active),
                health("b-failed", Status::Failed),
                health("c-warning", Status::Warning),
            ],
            &[],
            Utc::now(),
        );
        let at = |name: &str| page.find(&format!("data-name=\"{name}\"")).expect(name);
        assert!(at("b-failed") < at("c-warning") && at("c-warning") < at("a-active"));
        let csp = content_security_policy();
        assert!(
            csp.starts_with("default-src 'none'; style-src 'sha256-"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe"), "{csp}");
    }
}
