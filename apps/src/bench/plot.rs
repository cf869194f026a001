//! SVG plots of benchmark results (plotters, SVG backend only).

use plotters::prelude::*;

use super::Row;

const COLORS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// One bar per row (its rate), labelled `backend variant`, with p99 latency
/// printed above each bar.
pub fn bars(path: &str, title: &str, rows: &[Row]) -> Result<(), String> {
    let rows: Vec<&Row> = rows.iter().filter(|r| r.rate > 0.0).collect();
    if rows.is_empty() {
        return Ok(());
    }
    let unit = rows[0].unit.clone();
    let max = rows.iter().map(|r| r.rate).fold(0.0, f64::max) * 1.2;
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(70)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..rows.len() as f64, 0f64..max)
        .map_err(err)?;
    let labels: Vec<String> = rows
        .iter()
        .map(|r| {
            if r.variant.is_empty() {
                r.backend.clone()
            } else {
                format!("{} {}", r.backend, r.variant)
            }
        })
        .collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(rows.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = (*x - 0.5).round();
            if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
                labels[i as usize].clone()
            } else {
                String::new()
            }
        })
        .y_desc(unit.as_str())
        .y_label_formatter(&|y| human(*y))
        .draw()
        .map_err(err)?;
    for (i, r) in rows.iter().enumerate() {
        let c = COLORS[backend_index(&r.backend) % COLORS.len()];
        let x0 = i as f64 + 0.15;
        let x1 = i as f64 + 0.85;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x0, 0.0), (x1, r.rate)],
                c.filled(),
            )))
            .map_err(err)?;
        let label = if r.p99_us > 0.0 {
            format!("{} (p99 {:.0} µs)", human(r.rate), r.p99_us)
        } else {
            human(r.rate)
        };
        chart
            .draw_series(std::iter::once(Text::new(
                label,
                (x0, r.rate + max * 0.02),
                ("sans-serif", 13),
            )))
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// The `scale` curve: ns per request against connections, both axes
/// logarithmic, one line per backend.
pub fn scale(path: &str, title: &str, rows: &[Row]) -> Result<(), String> {
    let mut backends: Vec<String> = Vec::new();
    for r in rows {
        if !backends.contains(&r.backend) {
            backends.push(r.backend.clone());
        }
    }
    let live: Vec<&Row> = rows.iter().filter(|r| r.rate > 0.0).collect();
    if live.is_empty() {
        return Ok(());
    }
    let ymax = live.iter().map(|r| r.ns_per_op).fold(0.0, f64::max) * 2.0;
    let ymin = live.iter().map(|r| r.ns_per_op).fold(f64::MAX, f64::min) / 2.0;
    let xmin = live.iter().map(|r| r.connections).min().unwrap_or(1).max(1) as f64 / 2.0;
    let xmax = live.iter().map(|r| r.connections).max().unwrap_or(1) as f64 * 2.0;
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d((xmin..xmax).log_scale(), (ymin..ymax).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("connections")
        .y_desc("ns per request (wall, 1e9 / req/s)")
        .x_label_formatter(&|x| human(*x))
        .y_label_formatter(&|y| human(*y))
        .draw()
        .map_err(err)?;
    for (i, b) in backends.iter().enumerate() {
        let c = COLORS[backend_index(b).max(i) % COLORS.len()];
        let p: Vec<(f64, f64)> = live
            .iter()
            .filter(|r| &r.backend == b)
            .map(|r| (r.connections as f64, r.ns_per_op))
            .collect();
        if p.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(p.clone(), c.stroke_width(2)))
            .map_err(err)?
            .label(b.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(p.iter().map(|&(x, y)| Circle::new((x, y), 4, c.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

fn backend_index(b: &str) -> usize {
    match b {
        "ringline" => 0,
        "kernel-uring" => 1,
        "kernel-epoll" => 2,
        _ => 3,
    }
}

/// 1234567 → "1.23M".
pub fn human(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 100.0 || a == a.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}
