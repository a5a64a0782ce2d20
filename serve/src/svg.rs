//! Inline SVG drawings: activation histograms and feature maps. (The attribution graph's
//! drawing lives with its page.)

use crate::html::{num, Esc};
use std::fmt::Write;

/// An activation histogram over log-spaced bins `(lo, hi, count)` (non-empty bins only, in
/// order): one bar per bin, equal widths in log space, with each bin's range and count on hover.
pub fn histogram(bins: &[(f32, f32, u64)], width: u32, height: u32) -> String {
    if bins.is_empty() {
        return "<span class=\"muted\">no activations</span>".into();
    }
    let lo = bins[0].0.max(f32::MIN_POSITIVE).log2();
    let hi = bins[bins.len() - 1].1.max(f32::MIN_POSITIVE).log2();
    let span = (hi - lo).max(1e-6);
    let top = bins.iter().map(|b| b.2).max().unwrap_or(1).max(1) as f32;
    let (w, h) = (width as f32, height as f32 - 14.0);
    let mut s = format!(
        "<svg class=\"hist\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">"
    );
    for &(a, b, c) in bins {
        let x0 = (a.max(f32::MIN_POSITIVE).log2() - lo) / span * w;
        let x1 = (b.max(f32::MIN_POSITIVE).log2() - lo) / span * w;
        let bh = (c as f32 / top * h).max(1.0);
        let _ = write!(
            s,
            "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#4f7cc4\">\
             <title>{}–{}: {c}</title></rect>",
            h - bh,
            (x1 - x0 - 0.5).max(0.8),
            num(a as f64),
            num(b as f64)
        );
    }
    let _ = write!(
        s,
        "<text x=\"0\" y=\"{}\">{}</text><text x=\"{w}\" y=\"{}\" text-anchor=\"end\">{}</text></svg>",
        height - 2,
        num(bins[0].0 as f64),
        height - 2,
        num(bins[bins.len() - 1].1 as f64)
    );
    s
}

/// A point of a map drawing.
pub struct Dot {
    pub x: f32,
    pub y: f32,
    pub href: String,
    /// Shown on hover, searched by the page's search box.
    pub name: String,
    /// Drawn with its name beside it.
    pub labelled: bool,
    /// The map's subject (drawn in the accent colour).
    pub me: bool,
}

/// Points in [0, 1]² drawn in a `size`-pixel square with a margin; each links to its page.
/// The script zooms and pans `svg.map` drawings and filters their points by name.
pub fn map(dots: &[Dot], size: u32, radius: f32) -> String {
    let m = 40.0;
    let inner = size as f32 - 2.0 * m;
    let mut s = format!(
        "<svg class=\"map\" id=\"map\" width=\"{size}\" height=\"{size}\" viewBox=\"0 0 {size} {size}\" role=\"img\">"
    );
    for d in dots {
        let (x, y) = (m + d.x * inner, m + d.y * inner);
        let class = if d.me { "pt me" } else { "pt" };
        let r = if d.me { radius * 1.8 } else { radius };
        let _ = write!(
            s,
            "<a href=\"{}\"><circle class=\"{class}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{r}\" data-name=\"{}\">\
             <title>{}</title></circle>",
            Esc(&d.href),
            Esc(&d.name),
            Esc(&d.name)
        );
        if d.labelled {
            let short: String = d.name.chars().take(40).collect();
            // Names of points in the right half go to their left, so none runs off the edge.
            let (tx, anchor) = if d.x > 0.5 {
                (x - r - 2.0, " text-anchor=\"end\"")
            } else {
                (x + r + 2.0, "")
            };
            let _ = write!(
                s,
                "<text x=\"{tx:.1}\" y=\"{:.1}\"{anchor}>{}</text>",
                y + 4.0,
                Esc(&short)
            );
        }
        s.push_str("</a>");
    }
    s.push_str("</svg>");
    s
}

/// The dots moved and scaled alike on both axes so that the one marked `me` sits at the centre
/// and every dot stays inside [0, 1]²: a neighbourhood map reads outwards from its subject.
pub fn centre_on_me(dots: &mut [Dot]) {
    let Some((cx, cy)) = dots.iter().find(|d| d.me).map(|d| (d.x, d.y)) else {
        return;
    };
    let reach = dots
        .iter()
        .map(|d| (d.x - cx).abs().max((d.y - cy).abs()))
        .fold(0f32, f32::max);
    let scale = if reach > 0.0 { 0.5 / reach } else { 1.0 };
    for d in dots.iter_mut() {
        d.x = 0.5 + (d.x - cx) * scale;
        d.y = 0.5 + (d.y - cy) * scale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(x: f32, y: f32, me: bool) -> Dot {
        Dot {
            x,
            y,
            href: String::new(),
            name: String::new(),
            labelled: true,
            me,
        }
    }

    #[test]
    fn the_subject_is_centred_and_distances_keep_their_ratios() {
        let mut dots = vec![
            dot(0.9, 1.0, true),
            dot(0.0, 0.0, false),
            dot(1.0, 0.6, false),
        ];
        let before: Vec<f32> = dots[1..]
            .iter()
            .map(|d| ((d.x - 0.9).powi(2) + (d.y - 1.0).powi(2)).sqrt())
            .collect();
        centre_on_me(&mut dots);
        assert_eq!((dots[0].x, dots[0].y), (0.5, 0.5));
        assert!(dots
            .iter()
            .all(|d| (0.0..=1.0).contains(&d.x) && (0.0..=1.0).contains(&d.y)));
        let after: Vec<f32> = dots[1..]
            .iter()
            .map(|d| ((d.x - 0.5).powi(2) + (d.y - 0.5).powi(2)).sqrt())
            .collect();
        let ratio = after[0] / before[0];
        assert!(
            (after[1] / before[1] - ratio).abs() < 1e-5,
            "{before:?} {after:?}"
        );
    }

    #[test]
    fn names_on_the_right_half_end_at_their_point() {
        let s = map(&[dot(0.9, 0.5, false), dot(0.1, 0.5, false)], 100, 3.0);
        assert_eq!(s.matches("text-anchor=\"end\"").count(), 1, "{s}");
    }

    #[test]
    fn histogram_bars_and_hover() {
        let s = histogram(&[(0.5, 0.6, 3), (1.0, 1.2, 6)], 200, 40);
        assert_eq!(s.matches("<rect").count(), 2);
        assert!(s.contains("<title>1.0000–1.2000: 6</title>"), "{s}");
    }

    #[test]
    fn map_escapes_names() {
        let s = map(
            &[Dot {
                x: 0.5,
                y: 0.5,
                href: "/f/L2/1".into(),
                name: "<script>".into(),
                labelled: true,
                me: false,
            }],
            100,
            3.0,
        );
        assert!(!s.contains("<script>"));
        assert!(s.contains("&lt;script&gt;"));
    }
}
