//! The abandon risk of the next call, from supply and demand forecasts.
//!
//! Supply (agents free by a time) and demand (people waiting by a time) are sums of
//! independent Bernoulli variables, one per agent and per call in flight. For a small team
//! the difference is computed exactly (Poisson-binomial convolution): with a handful of
//! agents, the normal approximation misjudges exactly the tail that decides an abandon.
//! For a large team the normal approximation is accurate and much cheaper.

use super::stats::normal_cdf;

/// Above this total variance the normal approximation is used.
pub const EXACT_MAX_VARIANCE: f64 = 16.0;

/// Distribution of a sum of independent Bernoulli(p) variables: `pmf[i] = P(sum = i)`.
pub fn poisson_binomial(ps: impl Iterator<Item = f64>, pmf: &mut Vec<f64>) {
    pmf.clear();
    pmf.push(1.0);
    for p in ps {
        if p <= 1e-9 {
            continue;
        }
        let p = p.min(1.0);
        pmf.push(0.0);
        for i in (1..pmf.len()).rev() {
            pmf[i] = pmf[i] * (1.0 - p) + pmf[i - 1] * p;
        }
        pmf[0] *= 1.0 - p;
        // Drop a negligible upper tail so long sums of small probabilities stay short.
        while pmf.len() > 1 && *pmf.last().unwrap() < 1e-12 {
            pmf.pop();
        }
    }
}

/// Add an independent Poisson(`mean`) count to the variable whose pmf is `pmf`.
pub fn add_poisson(mean: f64, pmf: &mut Vec<f64>, tmp: &mut Vec<f64>) {
    if mean <= 1e-9 {
        return;
    }
    let mut pois = Vec::new();
    let mut v = (-mean).exp();
    let mut acc = v;
    pois.push(v);
    while 1.0 - acc > 1e-10 && pois.len() < 200 {
        v *= mean / pois.len() as f64;
        acc += v;
        pois.push(v);
    }
    tmp.clear();
    tmp.resize(pmf.len() + pois.len() - 1, 0.0);
    for (i, a) in pmf.iter().enumerate() {
        for (k, b) in pois.iter().enumerate() {
            tmp[i + k] += a * b;
        }
    }
    std::mem::swap(pmf, tmp);
}

/// CDF of `S − D` for independent `S`, `D` with the given pmfs: `cdf[i] = P(S − D ≤ i − offset)`
/// where `offset = len(pmf_d) − 1`.
pub fn difference_cdf(pmf_s: &[f64], pmf_d: &[f64], cdf: &mut Vec<f64>) -> i64 {
    let offset = pmf_d.len() as i64 - 1;
    cdf.clear();
    cdf.resize(pmf_s.len() + pmf_d.len() - 1, 0.0);
    for (s, ps) in pmf_s.iter().enumerate() {
        for (d, pd) in pmf_d.iter().enumerate() {
            cdf[(s as i64 - d as i64 + offset) as usize] += ps * pd;
        }
    }
    let mut acc = 0.0;
    for c in cdf.iter_mut() {
        acc += *c;
        *c = acc;
    }
    offset
}

/// `P(Y ≤ x)` from a CDF table built by [`difference_cdf`].
pub fn cdf_at(cdf: &[f64], offset: i64, x: i64) -> f64 {
    let i = x + offset;
    if i < 0 {
        0.0
    } else if i as usize >= cdf.len() {
        1.0
    } else {
        cdf[i as usize]
    }
}

/// Binomial(k, p) pmf into `out`.
pub fn binomial(k: u32, p: f64, out: &mut Vec<f64>) {
    out.clear();
    if p <= 0.0 || k == 0 {
        out.push(1.0);
        return;
    }
    let p = p.min(1.0 - 1e-12);
    let mut v = (1.0 - p).powi(k as i32);
    out.push(v);
    for b in 0..k {
        v *= f64::from(k - b) / f64::from(b + 1) * p / (1.0 - p);
        out.push(v);
    }
}

/// Normal-approximation risk that `margin + noise ≤ 0` (continuity-corrected).
pub fn normal_risk(margin: f64, variance: f64) -> f64 {
    normal_cdf((0.5 - margin) / (variance + 0.05).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_binomial_matches_a_binomial() {
        let mut pmf = Vec::new();
        poisson_binomial(std::iter::repeat_n(0.25, 4), &mut pmf);
        let mut b = Vec::new();
        binomial(4, 0.25, &mut b);
        for (x, y) in pmf.iter().zip(&b) {
            assert!((x - y).abs() < 1e-12);
        }
        assert!((pmf[0] - 0.316_406_25).abs() < 1e-9);
    }

    #[test]
    fn difference_of_two_coins() {
        let (mut s, mut d, mut cdf) = (Vec::new(), Vec::new(), Vec::new());
        poisson_binomial([0.5].into_iter(), &mut s);
        poisson_binomial([0.5].into_iter(), &mut d);
        let off = difference_cdf(&s, &d, &mut cdf);
        assert!((cdf_at(&cdf, off, -1) - 0.25).abs() < 1e-12);
        assert!((cdf_at(&cdf, off, 0) - 0.75).abs() < 1e-12);
        assert_eq!(cdf_at(&cdf, off, 5), 1.0);
        assert_eq!(cdf_at(&cdf, off, -5), 0.0);
    }
}
