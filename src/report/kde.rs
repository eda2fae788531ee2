//! Gaussian kernel density estimate, for the density of per-sample perplexity
//! (seed Figure 1). Perplexities span orders of magnitude, so the estimate is
//! made on log10(perplexity) and plotted on a log axis.

/// A density curve: (x, density) points on an even grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Density {
    pub points: Vec<(f64, f64)>,
    /// The bandwidth used (in the units of the data).
    pub bandwidth: f64,
}

/// Silverman's rule of thumb: 0.9 · min(sd, IQR/1.34) · n^(-1/5). A set of
/// identical values gets a small positive bandwidth so it still plots as a peak.
pub fn silverman_bandwidth(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    if values.len() < 2 {
        return 0.05;
    }
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let sd = var.sqrt();
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let iqr = quantile(&sorted, 0.75) - quantile(&sorted, 0.25);
    let spread = if iqr > 0.0 { sd.min(iqr / 1.34) } else { sd };
    let h = 0.9 * spread * n.powf(-0.2);
    if h.is_finite() && h > 0.0 { h } else { 0.05 }
}

/// Linear-interpolated quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The estimate on `grid` points spanning [lo, hi]. Non-finite values are
/// ignored; `None` when no finite value is left.
pub fn gaussian_kde(values: &[f64], lo: f64, hi: f64, grid: usize) -> Option<Density> {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() || grid < 2 || hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    let h = silverman_bandwidth(&finite);
    let norm = 1.0 / (finite.len() as f64 * h * (2.0 * std::f64::consts::PI).sqrt());
    let points = (0..grid)
        .map(|i| {
            let x = lo + (hi - lo) * i as f64 / (grid - 1) as f64;
            let sum: f64 = finite
                .iter()
                .map(|v| (-0.5 * ((x - v) / h).powi(2)).exp())
                .sum();
            (x, sum * norm)
        })
        .collect();
    Some(Density {
        points,
        bandwidth: h,
    })
}

/// The range that shows every value with three bandwidths of margin.
pub fn padded_range(values: &[f64]) -> Option<(f64, f64)> {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        return None;
    }
    let pad = 3.0 * silverman_bandwidth(&finite);
    Some((lo - pad, hi + pad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn density_integrates_to_one_and_peaks_at_the_mode() {
        // A symmetric sample around 2.0.
        let values: Vec<f64> = (0..201)
            .map(|i| 2.0 + ((i as f64 - 100.0) / 100.0).powi(3))
            .collect();
        let (lo, hi) = padded_range(&values).unwrap();
        let d = gaussian_kde(&values, lo, hi, 400).unwrap();
        let dx = (hi - lo) / 399.0;
        let area: f64 = d.points.iter().map(|p| p.1 * dx).sum();
        assert!((area - 1.0).abs() < 0.02, "area {area}");
        let peak = d.points.iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
        assert!((peak.0 - 2.0).abs() < 0.1, "peak at {}", peak.0);
    }

    #[test]
    fn degenerate_inputs_still_give_a_curve_or_none() {
        let d = gaussian_kde(&[3.0, 3.0, 3.0], 2.0, 4.0, 50).unwrap();
        assert!(d.bandwidth > 0.0);
        assert!(d.points.iter().all(|p| p.1.is_finite()));
        assert!(gaussian_kde(&[f64::NAN], 0.0, 1.0, 10).is_none());
        assert!(gaussian_kde(&[], 0.0, 1.0, 10).is_none());
    }
}
