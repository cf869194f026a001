//! Engine snapshots as Prometheus text exposition (format 0.0.4): what
//! `ringline stat --prometheus` prints, and what a daemon answers a scraper
//! with (`Content-Type: text/plain; version=0.0.4`).
//!
//! Every counter becomes one metric family, `ringline_<group>_<name>`
//! (counters get `_total`; microsecond counters become `_seconds`), with a
//! `# HELP` and a `# TYPE` line and one sample per engine, labelled `pid`,
//! `process`, `engine` and `queue`.

use std::fmt::Write;

use super::apps::AppsSnapshot;
use super::read::EngineSnapshot;
use super::Kind;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The exposition of `snaps` (any number of engines and processes).
pub fn render(snaps: &[EngineSnapshot]) -> String {
    let mut out = String::new();
    // Families in the order of the first snapshot's counters, then any
    // other snapshot's extra ones (a process of another version).
    let mut families: Vec<(String, Kind, String)> = Vec::new();
    for s in snaps {
        for c in &s.counters {
            let name = metric_name(c.group.name(), &c.name, c.kind);
            if !families.iter().any(|f| f.0 == name) {
                families.push((name, c.kind, format!("{}.{}", c.group.name(), c.name)));
            }
        }
    }
    for (name, kind, source) in &families {
        family_head(&mut out, name, &format!("ringline {source}"), *kind);
        for s in snaps {
            for c in &s.counters {
                if metric_name(c.group.name(), &c.name, c.kind) == *name {
                    let _ = write!(out, "{name}{} ", labels(s));
                    if c.name.ends_with("_us") {
                        let _ = writeln!(out, "{}", c.value as f64 / 1e6);
                    } else {
                        let _ = writeln!(out, "{}", c.value);
                    }
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP ringline_stat_age_seconds Seconds since the engine last published its counters."
    );
    let _ = writeln!(out, "# TYPE ringline_stat_age_seconds gauge");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    for s in snaps {
        let age = now.saturating_sub(s.wall_us) as f64 / 1e6;
        let _ = writeln!(out, "ringline_stat_age_seconds{} {age:.3}", labels(s));
    }
    out
}

/// The exposition of `ringline serve` daemons' applications: one family
/// per field of [`super::AppStat`], `ringline_app_<field>` (`_total` for
/// the running totals), one sample per application, labelled with the
/// daemon's `pid` and `process` and the application's `app` (its name),
/// `app_pid`, `port` and `slot` (the last two tell apart two applications
/// of one name and pid). Appended to [`render`]'s text it keeps the format
/// (the families' names differ).
pub fn render_apps(daemons: &[AppsSnapshot]) -> String {
    let mut out = String::new();
    let Some(first) = daemons.iter().flat_map(|d| d.apps.first()).next() else {
        return out;
    };
    for (i, (field, counter, _)) in first.fields().into_iter().enumerate() {
        let name = if counter {
            format!("ringline_app_{field}_total")
        } else {
            format!("ringline_app_{field}")
        };
        let kind = if counter { Kind::Counter } else { Kind::Gauge };
        let help = format!("ringline serve: {field} of an attached application");
        family_head(&mut out, &name, &help, kind);
        for d in daemons {
            for a in &d.apps {
                let _ = writeln!(
                    out,
                    "{name}{{pid=\"{}\",process=\"{}\",app=\"{}\",app_pid=\"{}\",port=\"{}\",slot=\"{}\"}} {}",
                    d.pid,
                    escape(&d.process),
                    escape(&a.name),
                    a.pid,
                    a.port,
                    a.slot,
                    a.fields()[i].2
                );
            }
        }
    }
    out
}

/// A family's `# HELP` and `# TYPE` lines.
fn family_head(out: &mut String, name: &str, help: &str, kind: Kind) {
    let ty = match kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
    };
    let _ = writeln!(out, "# HELP {name} {help} (see `ringline stat`).");
    let _ = writeln!(out, "# TYPE {name} {ty}");
}

/// An engine's labels, `{pid="..",process="..",engine="..",queue=".."}`.
fn labels(s: &EngineSnapshot) -> String {
    format!(
        "{{pid=\"{}\",process=\"{}\",engine=\"{}\",queue=\"{}\"}}",
        s.pid,
        escape(&s.process),
        s.engine,
        s.queue
    )
}

/// `ringline_<group>_<name>[_total]`, with any character a metric name may
/// not hold replaced by `_`. Microseconds are given in seconds, as the
/// format's conventions (and `promtool check metrics`) want: `_us` becomes
/// `_seconds`, and `not_for_us` (not a unit) `not_for_this_host`.
fn metric_name(group: &str, name: &str, kind: Kind) -> String {
    let name = match name.strip_suffix("_us") {
        Some("not_for") => "not_for_this_host".to_owned(),
        Some(stem) => format!("{stem}_seconds"),
        None => name.to_owned(),
    };
    let mut m: String = format!("ringline_{group}_{name}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if kind == Kind::Counter && !m.ends_with("_total") {
        m.push_str("_total");
    }
    m
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Checks `text` against the text exposition format: every line a `# HELP`,
/// a `# TYPE` (before its family's samples, once per family), another
/// comment, or a sample `name{label="value",...} value`; names and label
/// names of the allowed characters; label values properly escaped; values
/// numbers; a family's samples together. Returns the samples' count, or
/// the first line that is wrong. (The test of [`render`], and of anything
/// else that claims to speak the format.)
pub fn check_exposition(text: &str) -> Result<usize, String> {
    let mut typed: Vec<String> = Vec::new();
    let mut helped: Vec<String> = Vec::new();
    let mut done: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    let mut samples = 0;
    for (n, line) in text.lines().enumerate() {
        let err = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match parts.next() {
                Some("HELP") => {
                    let name = parts.next().ok_or_else(|| err("HELP without a name"))?;
                    if !is_metric_name(name) {
                        return Err(err("bad metric name"));
                    }
                    if helped.iter().any(|h| h == name) {
                        return Err(err("second HELP"));
                    }
                    helped.push(name.to_owned());
                }
                Some("TYPE") => {
                    let name = parts.next().ok_or_else(|| err("TYPE without a name"))?;
                    let ty = parts.next().ok_or_else(|| err("TYPE without a type"))?;
                    if !is_metric_name(name) {
                        return Err(err("bad metric name"));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty) {
                        return Err(err("unknown type"));
                    }
                    if typed.iter().any(|t| t == name) {
                        return Err(err("second TYPE"));
                    }
                    if done.iter().any(|d| d == name) || current.as_deref() == Some(name) {
                        return Err(err("TYPE after the family's samples"));
                    }
                    typed.push(name.to_owned());
                }
                _ => {}
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| err("no value"))?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(err("bad metric name"));
        }
        let mut rest = &line[name_end..];
        if let Some(labels) = rest.strip_prefix('{') {
            let end = parse_labels(labels).map_err(|w| err(&w))?;
            rest = &labels[end..];
        }
        let rest = rest
            .strip_prefix(' ')
            .ok_or_else(|| err("no space before the value"))?;
        let mut fields = rest.split(' ');
        let value = fields.next().unwrap_or("");
        let ok = matches!(value, "NaN" | "+Inf" | "-Inf") || value.parse::<f64>().is_ok();
        if !ok {
            return Err(err("bad value"));
        }
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| err("bad timestamp"))?;
        }
        if fields.next().is_some() {
            return Err(err("trailing fields"));
        }
        // The family: the name, or for a counter the name less `_total`.
        let family = typed
            .iter()
            .find(|t| *t == name)
            .cloned()
            .unwrap_or_else(|| name.to_owned());
        if current.as_deref() != Some(&family) {
            if done.contains(&family) {
                return Err(err("family's samples not together"));
            }
            if let Some(c) = current.take() {
                done.push(c);
            }
            current = Some(family);
        }
        samples += 1;
    }
    Ok(samples)
}

fn is_metric_name(s: &str) -> bool {
    let mut cs = s.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut cs = s.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses `a="x",b="y"}`; returns the offset past the `}`.
fn parse_labels(s: &str) -> Result<usize, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut names: Vec<&str> = Vec::new();
    loop {
        if b.get(i) == Some(&b'}') {
            return Ok(i + 1);
        }
        let eq = s[i..].find('=').ok_or("label without '='")? + i;
        let name = &s[i..eq];
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        if names.contains(&name) {
            return Err(format!("label {name} twice"));
        }
        names.push(name);
        i = eq + 1;
        if b.get(i) != Some(&b'"') {
            return Err("label value not quoted".into());
        }
        i += 1;
        loop {
            match b.get(i) {
                None => return Err("unterminated label value".into()),
                Some(b'\\') => {
                    if !matches!(b.get(i + 1), Some(b'\\' | b'"' | b'n')) {
                        return Err("bad escape in label value".into());
                    }
                    i += 2;
                }
                Some(b'"') => {
                    i += 1;
                    break;
                }
                Some(b'\n') => return Err("newline in label value".into()),
                Some(_) => i += 1,
            }
        }
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => {}
            _ => return Err("expected ',' or '}' after a label".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::read::Counter;
    use super::super::Group;
    use super::*;

    fn snap(pid: u32, engine: u32, process: &str) -> EngineSnapshot {
        EngineSnapshot {
            pid,
            process: process.into(),
            engine,
            queue: engine as u16,
            queues: 2,
            publishes: 3,
            engine_us: 1,
            wall_us: 1,
            interval_us: 100_000,
            counters: vec![
                Counter {
                    group: Group::Engine,
                    name: "rx_frames".into(),
                    kind: Kind::Counter,
                    value: 10 + u64::from(engine),
                },
                Counter {
                    group: Group::Engine,
                    name: "conns_live".into(),
                    kind: Kind::Gauge,
                    value: 2,
                },
                Counter {
                    group: Group::Ring,
                    name: "cq_overflowed".into(),
                    kind: Kind::Counter,
                    value: 0,
                },
                Counter {
                    group: Group::Thread,
                    name: "cpu_us".into(),
                    kind: Kind::Counter,
                    value: 1_500_000,
                },
            ],
        }
    }

    #[test]
    fn rendered_text_passes_the_format_check() {
        let text = render(&[snap(7, 0, "echo"), snap(7, 1, "we\"ird\\na\nme")]);
        // 4 families x 2 engines, and the age of each.
        assert_eq!(check_exposition(&text), Ok(10), "{text}");
        assert!(text.contains("# TYPE ringline_thread_cpu_seconds_total counter"));
        assert!(text.contains("queue=\"0\"} 1.5\n"), "{text}");
        assert!(text.contains("# TYPE ringline_engine_rx_frames_total counter"));
        assert!(text.contains("# TYPE ringline_engine_conns_live gauge"));
        assert!(text.contains(
            "ringline_engine_rx_frames_total{pid=\"7\",process=\"echo\",engine=\"0\",queue=\"0\"} 10"
        ));
        assert!(text.contains("process=\"we\\\"ird\\\\na\\nme\""), "{text}");
    }

    #[test]
    fn applications_render_with_an_app_label_and_pass_the_check() {
        use super::super::AppStat;
        let app = |name: &str, slot, sqes| AppStat {
            name: name.into(),
            slot,
            pid: 99,
            sqes,
            sockets: 2,
            ..AppStat::default()
        };
        let d = AppsSnapshot {
            pid: 7,
            process: "ringline".into(),
            publishes: 1,
            wall_us: 1,
            apps: vec![app("echo-a", 0, 5), app("e\"b", 1, 6)],
        };
        let text = render(&[snap(7, 0, "ringline")]) + &render_apps(&[d]);
        let fields = AppStat::default().fields().len();
        assert_eq!(check_exposition(&text), Ok(5 + 2 * fields), "{text}");
        assert!(text.contains(
            "ringline_app_sqes_total{pid=\"7\",process=\"ringline\",app=\"echo-a\",app_pid=\"99\",port=\"0\",slot=\"0\"} 5\n"
        ), "{text}");
        assert!(text.contains("# TYPE ringline_app_sockets gauge"));
        assert!(text.contains("app=\"e\\\"b\""), "{text}");
        assert_eq!(render_apps(&[]), "");
    }

    #[test]
    fn the_check_refuses_what_the_format_forbids() {
        let good = "# HELP a_total x\n# TYPE a_total counter\na_total{l=\"v\"} 1\n";
        assert_eq!(check_exposition(good), Ok(1));
        for bad in [
            "1abc 3\n",                             // name
            "a{1l=\"v\"} 1\n",                      // label name
            "a{l=v} 1\n",                           // unquoted
            "a{l=\"v} 1\n",                         // unterminated
            "a{l=\"\\q\"} 1\n",                     // escape
            "a{l=\"v\",l=\"w\"} 1\n",               // repeated label
            "a 1x\n",                               // value
            "a 1 2 3\n",                            // trailing
            "# TYPE a counter\n# TYPE a counter\n", // two TYPEs
            "a 1\n# TYPE a counter\n",              // TYPE late
            "# TYPE a wrong\n",                     // type
            "a 1\nb 1\na 2\n",                      // split family
            "# HELP a x\n# HELP a y\n",             // two HELPs
        ] {
            assert!(check_exposition(bad).is_err(), "accepted {bad:?}");
        }
    }
}
