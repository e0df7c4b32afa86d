//! Metrics, their internal distance (lower is always better) and the score
//! reported to users, plus vector validation.
//!
//! | metric   | stored vector     | internal distance | reported score (best first)     |
//! |----------|-------------------|-------------------|---------------------------------|
//! | `cosine` | L2-normalised     | `1 - a·b`         | cosine similarity `a·b` (higher)|
//! | `dot`    | as given          | `-a·b`            | dot product (higher)            |
//! | `l2`     | as given          | `‖a-b‖²`          | Euclidean distance (lower)      |

use serde::{Deserialize, Serialize};

use crate::distance;
use crate::{Error, Result};
use naksha_storage::point::PointId;

/// Similarity metric of a collection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Cosine similarity (vectors are normalised on the way in).
    Cosine,
    /// Inner product.
    Dot,
    /// Euclidean distance.
    L2,
}

impl Metric {
    /// Internal distance between two prepared vectors; lower is closer.
    #[inline]
    pub fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::Cosine => 1.0 - distance::dot(a, b),
            Metric::Dot => -distance::dot(a, b),
            Metric::L2 => distance::l2sq(a, b),
        }
    }

    /// Turn an internal distance into the score users see.
    pub fn score(self, distance: f32) -> f32 {
        match self {
            Metric::Cosine => 1.0 - distance,
            Metric::Dot => -distance,
            Metric::L2 => distance.max(0.0).sqrt(),
        }
    }

    /// Whether a higher reported score is better.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::L2)
    }

    /// Check `v` (length, finiteness, non-zero for cosine) and prepare it for
    /// storage or search: cosine vectors are normalised in place.
    pub fn prepare(self, v: &mut [f32], dim: usize, id: Option<&PointId>) -> Result<()> {
        validate(v, dim, id)?;
        if self == Metric::Cosine {
            let norm = distance::dot(v, v).sqrt();
            if !(norm > 0.0 && norm.is_finite()) {
                return Err(Error::ZeroVector { id: Error::point_name(id) });
            }
            v.iter_mut().for_each(|x| *x /= norm);
        }
        Ok(())
    }
}

/// Reject a vector of the wrong dimension or with NaN/infinite elements.
pub fn validate(v: &[f32], dim: usize, id: Option<&PointId>) -> Result<()> {
    if v.len() != dim {
        return Err(Error::WrongDimension { id: Error::point_name(id), expected: dim, got: v.len() });
    }
    if let Some(index) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::NonFinite { id: Error::point_name(id), index });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_point() {
        let id = PointId::Num(7);
        let e = validate(&[1.0, f32::NAN], 2, Some(&id)).unwrap_err().to_string();
        assert!(e.contains("point 7") && e.contains("element 1"), "{e}");
        let e = validate(&[1.0], 2, Some(&id)).unwrap_err().to_string();
        assert!(e.contains("1 dimensions") && e.contains("expects 2"), "{e}");
        let e = Metric::Cosine.prepare(&mut [0.0, 0.0], 2, Some(&"x".into())).unwrap_err().to_string();
        assert!(e.contains("\"x\"") && e.contains("zero vector"), "{e}");
        assert!(validate(&[f32::INFINITY], 1, None).unwrap_err().to_string().contains("query"));
    }

    #[test]
    fn cosine_normalises_and_scores() {
        let mut a = vec![3.0, 4.0];
        Metric::Cosine.prepare(&mut a, 2, None).unwrap();
        assert!((a[0] - 0.6).abs() < 1e-6 && (a[1] - 0.8).abs() < 1e-6);
        let d = Metric::Cosine.distance(&a, &a);
        assert!((Metric::Cosine.score(d) - 1.0).abs() < 1e-6);
        assert_eq!(Metric::L2.score(Metric::L2.distance(&[0.0, 0.0], &[3.0, 4.0])), 5.0);
        assert_eq!(Metric::Dot.score(Metric::Dot.distance(&[1.0, 2.0], &[3.0, 4.0])), 11.0);
    }
}
