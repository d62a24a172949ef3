//! One check for the tables of `(key, value)` pairs that config sections hold
//! against a single range: quotas that must be at least 1, durations that must
//! stay under a ceiling. Each caller turns the result into its own error, which
//! names the key and the value.

use std::ops::RangeBounds;

/// The first entry of a table outside its range: the key and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfRange<T> {
    pub key: &'static str,
    pub value: T,
}

/// Checks every `(key, value)` of `table`, in order, against `valid`.
pub fn check_range<T: PartialOrd>(
    table: impl IntoIterator<Item = (&'static str, T)>,
    valid: impl RangeBounds<T>,
) -> Result<(), OutOfRange<T>> {
    match table.into_iter().find(|(_, v)| !valid.contains(v)) {
        Some((key, value)) => Err(OutOfRange { key, value }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_entry_outside_the_range_is_named() {
        let table = [("a", 1), ("b", 0), ("c", 0)];
        assert_eq!(
            check_range(table, 1..),
            Err(OutOfRange { key: "b", value: 0 })
        );
    }

    #[test]
    fn a_table_inside_the_range_passes() {
        assert_eq!(check_range([("a", 5), ("b", 10)], ..=10), Ok(()));
        assert_eq!(check_range(Vec::<(&str, u8)>::new(), 1..), Ok(()));
    }
}
