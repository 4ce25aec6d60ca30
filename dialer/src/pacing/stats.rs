//! Online, recency-weighted statistics the predictive policy learns per campaign.
//!
//! Every sample's weight decays geometrically with the samples that follow it (a half-life
//! counted in samples), so the estimates follow drift during the day without a retuning.
//! Distributions are histograms; their CDF tables are rebuilt lazily after new samples.

/// A probability estimated from weighted yes/no samples, seeded with a prior.
#[derive(Debug, Clone)]
pub struct DecayingRate {
    yes: f64,
    total: f64,
    decay: f64,
}

impl DecayingRate {
    /// `prior` counts as `prior_weight` samples; `half_life` is in samples.
    pub fn new(prior: f64, prior_weight: f64, half_life: f64) -> DecayingRate {
        DecayingRate { yes: prior * prior_weight, total: prior_weight, decay: 0.5f64.powf(1.0 / half_life) }
    }

    pub fn add(&mut self, yes: bool) {
        self.yes = self.yes * self.decay + if yes { 1.0 } else { 0.0 };
        self.total = self.total * self.decay + 1.0;
    }

    /// A sample whose answer is not known: it counts as `yes` yes (a probability) and
    /// `1 − yes` no, so a censored observation moves the rate towards its posterior.
    pub fn add_share(&mut self, yes: f64) {
        self.yes = self.yes * self.decay + yes.clamp(0.0, 1.0);
        self.total = self.total * self.decay + 1.0;
    }

    pub fn value(&self) -> f64 {
        if self.total > 0.0 { self.yes / self.total } else { 0.0 }
    }
}

/// A histogram of durations with geometric decay and a cached CDF.
#[derive(Debug, Clone)]
pub struct DecayingHistogram {
    bin: f64,
    weights: Vec<f64>,
    /// Weight of the next sample; grows instead of shrinking every bin.
    inc: f64,
    decay: f64,
    total: f64,
    sum: f64,
    cdf: Vec<f64>,
    dirty: usize,
    samples: u64,
}

impl DecayingHistogram {
    /// Bins of `bin` seconds up to `max` seconds (longer samples land in the last bin).
    pub fn new(bin: f64, max: f64, half_life: f64) -> DecayingHistogram {
        let n = (max / bin).ceil() as usize + 1;
        DecayingHistogram {
            bin,
            weights: vec![0.0; n],
            inc: 1.0,
            decay: 0.5f64.powf(1.0 / half_life),
            total: 0.0,
            sum: 0.0,
            cdf: vec![0.0; n + 1],
            dirty: 1,
            samples: 0,
        }
    }

    /// Seed the histogram with `weight` samples drawn from `cdf` (a prior).
    pub fn with_prior(mut self, weight: f64, cdf: impl Fn(f64) -> f64) -> DecayingHistogram {
        let n = self.weights.len();
        for i in 0..n {
            let lo = cdf(i as f64 * self.bin);
            let hi = if i + 1 == n { 1.0 } else { cdf((i + 1) as f64 * self.bin) };
            let w = (hi - lo).max(0.0) * weight;
            self.weights[i] += w;
            self.total += w;
            self.sum += w * (i as f64 + 0.5) * self.bin;
        }
        self.dirty = 1;
        self
    }

    pub fn add(&mut self, x: f64) {
        let i = ((x.max(0.0) / self.bin) as usize).min(self.weights.len() - 1);
        self.inc /= self.decay;
        self.weights[i] += self.inc;
        self.total += self.inc;
        self.sum += self.inc * x.max(0.0);
        self.samples += 1;
        self.dirty += 1;
        if self.inc > 1e150 {
            let s = 1.0 / self.inc;
            self.weights.iter_mut().for_each(|w| *w *= s);
            self.total *= s;
            self.sum *= s;
            self.inc = 1.0;
        }
    }

    /// Samples seen (not counting the prior).
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Recency-weighted mean.
    pub fn mean(&self) -> f64 {
        if self.total > 0.0 { self.sum / self.total } else { 0.0 }
    }

    /// Rebuild the CDF table if samples arrived since the last rebuild.
    pub fn refresh(&mut self) {
        if self.dirty == 0 || self.total <= 0.0 {
            return;
        }
        let mut acc = 0.0;
        self.cdf[0] = 0.0;
        for (i, w) in self.weights.iter().enumerate() {
            acc += w;
            self.cdf[i + 1] = acc / self.total;
        }
        self.dirty = 0;
    }

    /// P(X ≤ x), linear within a bin. Call [`refresh`](Self::refresh) first.
    pub fn cdf(&self, x: f64) -> f64 {
        if x <= 0.0 {
            return 0.0;
        }
        let pos = x / self.bin;
        let i = pos as usize;
        if i + 1 >= self.cdf.len() {
            return 1.0;
        }
        let frac = pos - i as f64;
        self.cdf[i] + (self.cdf[i + 1] - self.cdf[i]) * frac
    }

    /// P(X > x).
    pub fn survival(&self, x: f64) -> f64 {
        1.0 - self.cdf(x)
    }

    /// P(X ≤ e + t | X > e): the chance something already `e` long ends within `t` more.
    /// Past the table's end, the residual is taken as exponential with the mean's scale.
    pub fn ends_within(&self, e: f64, t: f64) -> f64 {
        let s = self.survival(e);
        if s < 1e-6 {
            let scale = self.mean().max(1.0);
            return 1.0 - (-t / scale).exp();
        }
        ((self.cdf(e + t) - self.cdf(e)) / s).clamp(0.0, 1.0)
    }
}

/// The lognormal CDF, for priors.
pub fn lognormal_cdf(mean: f64, sd: f64) -> impl Fn(f64) -> f64 {
    let sigma2 = (1.0 + (sd / mean).powi(2)).ln();
    let mu = mean.ln() - sigma2 / 2.0;
    let sigma = sigma2.sqrt();
    move |x: f64| if x <= 0.0 { 0.0 } else { normal_cdf((x.ln() - mu) / sigma) }
}

/// Φ(z), the standard normal CDF.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_follows_drift() {
        let mut r = DecayingRate::new(0.5, 10.0, 100.0);
        for i in 0..2000 {
            r.add(i % 4 == 0);
        }
        assert!((r.value() - 0.25).abs() < 0.03, "{}", r.value());
        for i in 0..2000 {
            r.add(i % 10 == 0);
        }
        assert!((r.value() - 0.10).abs() < 0.03, "{}", r.value());
    }

    #[test]
    fn histogram_cdf_and_residuals() {
        let mut h = DecayingHistogram::new(1.0, 100.0, 1e9);
        for x in 0..100 {
            h.add(x as f64 + 0.5);
        }
        h.refresh();
        assert!((h.cdf(50.0) - 0.5).abs() < 0.02);
        assert!((h.ends_within(50.0, 25.0) - 0.5).abs() < 0.03);
        assert!((h.mean() - 50.0).abs() < 0.5);
        assert_eq!(h.cdf(-1.0), 0.0);
        assert_eq!(h.cdf(1000.0), 1.0);
    }

    #[test]
    fn prior_shapes_an_empty_histogram() {
        let mut h = DecayingHistogram::new(0.5, 60.0, 200.0).with_prior(10.0, lognormal_cdf(8.0, 4.0));
        h.refresh();
        assert!((h.mean() - 8.0).abs() < 0.6, "{}", h.mean());
        assert!(h.cdf(8.0) > 0.4 && h.cdf(8.0) < 0.7);
    }
}
