//! `shmq bench --plot FILE.svg`: latency percentile curves, one panel per test
//! and size, one curve per mechanism; both axes logarithmic (the x axis in
//! "nines": 50%, 90%, 99%, ...), as latency distributions are usually drawn.

use std::fmt::Write;

/// One curve: a mechanism's histogram for one (test, size).
pub struct Curve<'a> {
    pub mechanism: &'a str,
    pub test: &'a str,
    pub size: usize,
    pub hist: &'a hdrhistogram::Histogram<u64>,
}

const QUANTILES: [f64; 8] = [0.5, 0.75, 0.9, 0.99, 0.999, 0.9999, 0.99999, 1.0];
const COLORS: [&str; 6] = [
    "#333333", "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e",
];
const W: f64 = 420.0;
const H: f64 = 260.0;
const M: f64 = 50.0;

fn nines(q: f64) -> f64 {
    // 0.5 -> 0.3, 0.9 -> 1, 0.99 -> 2, ...; the maximum is drawn at 6.
    if q >= 1.0 {
        6.0
    } else {
        (1.0 / (1.0 - q)).log10()
    }
}

/// Renders the curves as an SVG document.
pub fn svg(curves: &[Curve]) -> String {
    let mut panels: Vec<(&str, usize)> = Vec::new();
    for c in curves {
        if !panels.contains(&(c.test, c.size)) {
            panels.push((c.test, c.size));
        }
    }
    let mechs: Vec<&str> = {
        let mut v: Vec<&str> = Vec::new();
        for c in curves {
            if !v.contains(&c.mechanism) {
                v.push(c.mechanism);
            }
        }
        v
    };
    let cols = 2usize;
    let rows = panels.len().div_ceil(cols).max(1);
    let (tw, th) = (cols as f64 * (W + M) + M, rows as f64 * (H + M) + 40.0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{tw}" height="{th}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (i, m) in mechs.iter().enumerate() {
        let x = 20.0 + i as f64 * 110.0;
        let color = COLORS[i % COLORS.len()];
        let _ = writeln!(
            out,
            r#"<line x1="{x}" y1="20" x2="{}" y2="20" stroke="{color}" stroke-width="3"/><text x="{}" y="24">{m}</text>"#,
            x + 20.0,
            x + 25.0
        );
    }
    for (p, (test, size)) in panels.iter().enumerate() {
        let ox = (p % cols) as f64 * (W + M) + M;
        let oy = (p / cols) as f64 * (H + M) + 40.0 + M / 2.0;
        let mine: Vec<&Curve> = curves
            .iter()
            .filter(|c| c.test == *test && c.size == *size)
            .collect();
        let lo = mine
            .iter()
            .map(|c| c.hist.value_at_quantile(0.5))
            .min()
            .unwrap_or(1)
            .max(1) as f64;
        let hi = mine
            .iter()
            .map(|c| c.hist.max())
            .max()
            .unwrap_or(10)
            .max(10) as f64;
        let (ly0, ly1) = (
            lo.log10().floor(),
            hi.log10().ceil().max(lo.log10().floor() + 1.0),
        );
        let y = |ns: f64| oy + H - (ns.max(1.0).log10() - ly0) / (ly1 - ly0) * H;
        let x = |q: f64| ox + nines(q) / 6.0 * W;
        let _ = writeln!(
            out,
            r##"<rect x="{ox}" y="{oy}" width="{W}" height="{H}" fill="none" stroke="#999"/>"##
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" font-weight="bold">{test}, {size} B: round trip (ns) by percentile</text>"#,
            ox,
            oy - 6.0
        );
        for d in ly0 as i32..=ly1 as i32 {
            let yy = y(10f64.powi(d));
            let _ = writeln!(
                out,
                r##"<line x1="{ox}" y1="{yy}" x2="{}" y2="{yy}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">1e{d}</text>"##,
                ox + W,
                ox - 4.0,
                yy + 4.0
            );
        }
        for (q, label) in [
            (0.5, "50%"),
            (0.9, "90%"),
            (0.99, "99%"),
            (0.999, "99.9%"),
            (0.9999, "99.99%"),
            (1.0, "max"),
        ] {
            let xx = x(q);
            let _ = writeln!(
                out,
                r##"<line x1="{xx}" y1="{oy}" x2="{xx}" y2="{}" stroke="#eee"/><text x="{xx}" y="{}" text-anchor="middle">{label}</text>"##,
                oy + H,
                oy + H + 14.0
            );
        }
        for c in mine {
            let color =
                COLORS[mechs.iter().position(|m| *m == c.mechanism).unwrap_or(0) % COLORS.len()];
            let pts: Vec<String> = QUANTILES
                .iter()
                .map(|&q| format!("{:.1},{:.1}", x(q), y(c.hist.value_at_quantile(q) as f64)))
                .collect();
            let _ = writeln!(
                out,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                pts.join(" ")
            );
        }
    }
    out.push_str("</svg>\n");
    out
}
