//! What the row trigger decides, free of pgrx so that `cargo test` checks it without a database:
//! which segments an UPDATE must re-evaluate, which memberships change, and what a statement's
//! collected changes amount to.
use std::collections::BTreeMap;

/// The segments (indexes into `seg_atts`, each the attribute numbers one segment reads) that an
/// UPDATE changing the columns `changed` must re-evaluate: those reading a changed column, and
/// every segment when the key changed (the member itself is another one).
pub fn affected(seg_atts: &[Vec<i16>], changed: &[i16], key_changed: bool) -> Vec<usize> {
    seg_atts
        .iter()
        .enumerate()
        .filter(|(_, atts)| key_changed || atts.iter().any(|a| changed.contains(a)))
        .map(|(i, _)| i)
        .collect()
}

/// The memberships that change: for each evaluated segment, whether the member was in it before
/// and whether it is now. Returns (segment id, enters?) for the ones that differ.
pub fn transitions(ids: &[i64], before: &[bool], after: &[bool]) -> Vec<(i64, bool)> {
    ids.iter()
        .zip(before.iter().zip(after))
        .filter(|(_, (b, a))| b != a)
        .map(|(id, (_, a))| (*id, *a))
        .collect()
}

/// A decision of the row trigger about one (segment, member).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub segment: i64,
    pub member: String,
    pub enters: bool,
    /// A member key a row left (a key change): it leaves every segment, unless a row that took that
    /// key in the same statement decided otherwise.
    pub vacated: bool,
}

/// The changes a statement collected, in the order they were decided, as the list to apply
/// (segment, member, enters?): for each (segment, member) the last decision wins, and a decision
/// about a member always wins over its key being vacated by another row; ordered as the change log
/// is (segment, exits first, member). Applying a decision is idempotent: an enter of a member already
/// in is skipped, an exit of one not in removes nothing, and neither is logged.
pub fn net(items: impl IntoIterator<Item = Decision>) -> Vec<(i64, String, bool)> {
    let mut last: BTreeMap<(i64, String), (bool, bool)> = BTreeMap::new();
    for d in items {
        let e = last.entry((d.segment, d.member)).or_insert((d.vacated, d.enters));
        if !d.vacated || e.0 {
            *e = (d.vacated, d.enters);
        }
    }
    let mut out: Vec<(i64, String, bool)> = last.into_iter().map(|((s, m), (_, e))| (s, m, e)).collect();
    out.sort_by(|a, b| (a.0, a.2, &a.1).cmp(&(b.0, b.2, &b.1)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affected_by_columns_and_key() {
        let segs = vec![vec![3], vec![4, 5], vec![], vec![3, 5]];
        assert_eq!(affected(&segs, &[3], false), vec![0, 3]);
        assert_eq!(affected(&segs, &[5], false), vec![1, 3]);
        assert_eq!(affected(&segs, &[7], false), Vec::<usize>::new());
        // a segment reading nothing ({"all":[]}) changes only with the key
        assert_eq!(affected(&segs, &[1], true), vec![0, 1, 2, 3]);
    }

    #[test]
    fn transitions_only_where_membership_differs() {
        assert_eq!(
            transitions(&[10, 11, 12, 13], &[false, true, true, false], &[true, false, true, false]),
            vec![(10, true), (11, false)]
        );
    }

    fn d(segment: i64, member: &str, enters: bool, vacated: bool) -> Decision {
        Decision { segment, member: member.to_string(), enters, vacated }
    }

    #[test]
    fn net_keeps_the_last_decision_and_log_order() {
        let items = vec![
            d(2, "b", true, false),
            d(1, "z", true, false),
            d(1, "a", true, false),
            d(2, "b", false, false),
            d(1, "c", false, false),
        ];
        assert_eq!(
            net(items),
            vec![
                (1, "c".to_string(), false),
                (1, "a".to_string(), true),
                (1, "z".to_string(), true),
                (2, "b".to_string(), false),
            ]
        );
    }

    #[test]
    fn a_vacated_key_never_overrides_the_row_that_took_it() {
        // row A moves 1 -> 2 (vacates 1, decides 2); row B moves 2 -> 3 (vacates 2, decides 3)
        let a_first = vec![d(7, "1", false, true), d(7, "2", true, false), d(7, "2", false, true), d(7, "3", false, false)];
        let b_first = vec![d(7, "2", false, true), d(7, "3", false, false), d(7, "1", false, true), d(7, "2", true, false)];
        let expect = vec![(7, "1".to_string(), false), (7, "3".to_string(), false), (7, "2".to_string(), true)];
        assert_eq!(net(a_first), expect);
        assert_eq!(net(b_first), expect);
    }
}
