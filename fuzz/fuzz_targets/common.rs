//! What the targets share: where to split an input.

/// Split points to try for an input of `len` bytes: every one when there are at most
/// `max`, else `max` of them spread evenly (always including 1 and `len - 1`).
pub fn split_points(len: usize, max: usize) -> Vec<usize> {
    if len < 2 {
        return Vec::new();
    }
    let inner = len - 1; // points 1..len
    if inner <= max {
        return (1..len).collect();
    }
    let mut points: Vec<usize> = (0..max).map(|k| 1 + k * (inner - 1) / (max - 1)).collect();
    points.dedup();
    points
}
