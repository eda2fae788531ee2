//! Replicates: a number measured once per seed, summarised as its mean and the
//! 95 % Student-t interval of that mean (`mean ± t(0.975, n−1) · s / √n`, `s` the
//! sample standard deviation). Used by the report and by `xp show`.

/// The mean of one number over replicates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Half the width of the 95 % interval; `None` for a single replicate.
    pub half_width: Option<f64>,
}

impl Summary {
    /// The summary of the finite `values`; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Summary> {
        let values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let half_width = (n >= 2).then(|| {
            let variance =
                values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
            t_975(n - 1) * (variance / n as f64).sqrt()
        });
        Some(Summary {
            n,
            mean,
            half_width,
        })
    }

    /// The interval's ends, when there are two replicates or more.
    pub fn interval(&self) -> Option<(f64, f64)> {
        self.half_width.map(|h| (self.mean - h, self.mean + h))
    }
}

/// t(0.975, df) for df = 1..=30, to seven digits.
const T_975: [f64; 30] = [
    12.706_205, 4.302_653, 3.182_446, 2.776_445, 2.570_582, 2.446_912, 2.364_624, 2.306_004,
    2.262_157, 2.228_139, 2.200_985, 2.178_813, 2.160_369, 2.144_787, 2.131_450, 2.119_905,
    2.109_816, 2.100_922, 2.093_024, 2.085_963, 2.079_614, 2.073_873, 2.068_658, 2.063_899,
    2.059_539, 2.055_529, 2.051_831, 2.048_407, 2.045_230, 2.042_272,
];

/// The 97.5 % quantile of Student's t with `df` degrees of freedom (a two-sided
/// 95 % interval): tabulated up to 30, beyond by the Cornish–Fisher expansion
/// around the normal quantile (error below 1e-5 there).
pub fn t_975(df: usize) -> f64 {
    if df == 0 {
        return f64::NAN;
    }
    if df <= T_975.len() {
        return T_975[df - 1];
    }
    let z: f64 = 1.959_963_984_540_054;
    let v = df as f64;
    let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
    z + (z3 + z) / (4.0 * v)
        + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * v * v)
        + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * v * v * v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_of_three_replicates_uses_t_with_two_degrees_of_freedom() {
        let s = Summary::of([1.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.n, 3);
        assert_eq!(s.mean, 2.0);
        // s = 1, so the half width is t(0.975, 2) / sqrt(3).
        let h = s.half_width.unwrap();
        assert!((h - 4.302_653 / 3f64.sqrt()).abs() < 1e-9, "{h}");
        let (lo, hi) = s.interval().unwrap();
        assert!((lo - (2.0 - h)).abs() < 1e-12 && (hi - (2.0 + h)).abs() < 1e-12);
    }

    #[test]
    fn one_replicate_has_a_mean_and_no_interval_and_non_finite_values_are_left_out() {
        let s = Summary::of([5.0, f64::NAN, f64::INFINITY]).unwrap();
        assert_eq!((s.n, s.mean, s.half_width), (1, 5.0, None));
        assert!(Summary::of([]).is_none());
    }

    #[test]
    fn beyond_the_table_the_expansion_gives_the_tabulated_quantiles() {
        // Standard tables: t(0.975, 31) = 2.039513, 40: 2.021075, 60: 2.000298, 120: 1.979930.
        for (df, t) in [
            (31, 2.039_513),
            (40, 2.021_075),
            (60, 2.000_298),
            (120, 1.979_930),
        ] {
            assert!((t_975(df) - t).abs() < 1e-5, "df {df}: {}", t_975(df));
        }
        assert!((t_975(100_000) - 1.959_964).abs() < 1e-4);
        assert!(t_975(0).is_nan());
    }
}
