//! Prepared-transaction bookkeeping as pure functions: transaction ids (gids), the
//! state a checkpoint keeps, and what `open` must commit and roll back.
//!
//! A gid is `strom-{name}-{subtask}-{checkpoint}`. Parsing is strict (the part
//! after `strom-{name}-` must be exactly two decimal numbers), so sinks named `a`
//! and `a-1` never take each other's transactions.

use std::collections::BTreeSet;

/// Prefix of every transaction id this sink prepares.
const PREFIX: &str = "strom-";
/// Longest accepted sink name (a gid has at most 200 bytes).
const MAX_NAME: usize = 100;
/// Version byte of the checkpoint state encoding.
const STATE_V1: u8 = 1;

/// Checks an exactly-once sink name: 1 to 100 of `A-Z a-z 0-9 _ . -`.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "exactly-once name '{name}' must be 1 to {MAX_NAME} characters of A-Z a-z 0-9 _ . -"
        ))
    }
}

/// The id of the transaction holding `subtask`'s rows of `checkpoint`.
pub(crate) fn gid(name: &str, subtask: usize, checkpoint: u64) -> String {
    format!("{PREFIX}{name}-{subtask}-{checkpoint}")
}

/// `(subtask, checkpoint)` of a gid of sink `name`, or `None` when it is not one.
pub(crate) fn parse_gid(name: &str, gid: &str) -> Option<(usize, u64)> {
    let rest = gid
        .strip_prefix(PREFIX)?
        .strip_prefix(name)?
        .strip_prefix('-')?;
    let (subtask, checkpoint) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(subtask) || !digits(checkpoint) {
        return None;
    }
    Some((subtask.parse().ok()?, checkpoint.parse().ok()?))
}

/// The state a checkpoint keeps: the gids prepared and not yet committed when its
/// barrier arrived. Empty bytes for none (the engine then stores nothing).
pub(crate) fn encode_state<'a>(gids: impl IntoIterator<Item = &'a String>) -> Vec<u8> {
    let gids: Vec<&String> = gids.into_iter().collect();
    if gids.is_empty() {
        return Vec::new();
    }
    let mut out = vec![STATE_V1];
    out.extend_from_slice(&(gids.len() as u32).to_be_bytes());
    for g in gids {
        out.extend_from_slice(&(g.len() as u16).to_be_bytes());
        out.extend_from_slice(g.as_bytes());
    }
    out
}

/// The gids in a state written by [`encode_state`].
pub(crate) fn decode_state(bytes: &[u8]) -> Result<Vec<String>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let (&version, mut rest) = bytes.split_first().ok_or("empty state")?;
    if version != STATE_V1 {
        return Err(format!("unknown postgres sink state version {version}"));
    }
    let mut take = |n: usize| -> Result<&[u8], String> {
        if rest.len() < n {
            return Err("postgres sink state is truncated".into());
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let count = u32::from_be_bytes(take(4)?.try_into().map_err(|_| "bad count")?);
    let mut gids = Vec::new();
    for _ in 0..count {
        let len = u16::from_be_bytes(take(2)?.try_into().map_err(|_| "bad length")?);
        let gid = std::str::from_utf8(take(usize::from(len))?)
            .map_err(|_| "a gid in the postgres sink state is not UTF-8")?;
        gids.push(gid.to_string());
    }
    if !rest.is_empty() {
        return Err("postgres sink state has trailing bytes".into());
    }
    Ok(gids)
}

/// What `open` does with the prepared transactions it finds.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Recovery {
    /// Restored gids still prepared: their checkpoint completed; commit them.
    pub commit: Vec<String>,
    /// This subtask's other gids: their checkpoint never completed; roll them back.
    pub rollback: Vec<String>,
    /// Restored gids no longer prepared: committed before the crash.
    pub already_committed: Vec<String>,
}

/// Decides recovery for `subtask` of `parallelism` from the gids restored from the
/// checkpoint (`restored`) and those prepared on the server (`prepared`, any sink).
///
/// The engine hands the state of old subtask `t` to new subtask `t % parallelism`;
/// gids are split the same way, so after a change of parallelism each old
/// subtask's transactions are handled by exactly one new subtask, the one that
/// restores that old subtask's state.
pub(crate) fn plan_recovery(
    name: &str,
    subtask: usize,
    parallelism: usize,
    restored: &[String],
    prepared: &[String],
) -> Recovery {
    let restored_set: BTreeSet<&str> = restored.iter().map(String::as_str).collect();
    let prepared_set: BTreeSet<&str> = prepared.iter().map(String::as_str).collect();
    let mut plan = Recovery::default();
    for g in restored {
        if prepared_set.contains(g.as_str()) {
            plan.commit.push(g.clone());
        } else {
            plan.already_committed.push(g.clone());
        }
    }
    for g in prepared {
        if restored_set.contains(g.as_str()) {
            continue;
        }
        if let Some((t, _)) = parse_gid(name, g) {
            if t % parallelism.max(1) == subtask {
                plan.rollback.push(g.clone());
            }
        }
    }
    // Oldest checkpoint first, so a partial recovery leaves a prefix done.
    let order = |g: &String| parse_gid(name, g).map(|(t, c)| (c, t));
    plan.commit.sort_by_key(order);
    plan.rollback.sort_by_key(order);
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gids_round_trip_and_other_sinks_gids_are_not_ours() {
        let g = gid("orders", 3, 42);
        assert_eq!(g, "strom-orders-3-42");
        assert_eq!(parse_gid("orders", &g), Some((3, 42)));
        // Sink "a-1" subtask 0 versus sink "a" subtask 1: told apart.
        assert_eq!(parse_gid("a", &gid("a-1", 0, 5)), None);
        assert_eq!(parse_gid("a-1", &gid("a", 1, 5)), None);
        assert_eq!(parse_gid("a", "strom-a-1-"), None);
        assert_eq!(parse_gid("a", "strom-a-x-1"), None);
        assert_eq!(parse_gid("a", "other"), None);
    }

    #[test]
    fn names_are_limited_to_safe_characters() {
        assert!(check_name("orders_v2.eu-1").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("it's").is_err());
        assert!(check_name("%").is_err());
        assert!(check_name(&"x".repeat(101)).is_err());
    }

    #[test]
    fn state_round_trips_and_bad_bytes_are_errors() {
        let gids = vec![gid("s", 0, 1), gid("s", 0, 2)];
        let bytes = encode_state(&gids);
        assert_eq!(decode_state(&bytes), Ok(gids));
        assert!(encode_state(&[]).is_empty());
        assert_eq!(decode_state(&[]), Ok(vec![]));
        assert!(decode_state(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_state(&[9, 0, 0, 0, 0]).is_err());
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode_state(&trailing).is_err());
    }

    #[test]
    fn recovery_commits_restored_and_rolls_back_the_rest_of_this_subtask() {
        let prepared = vec![
            gid("s", 0, 2),
            gid("s", 0, 1),
            gid("s", 1, 2),     // another subtask's
            gid("other", 0, 2), // another sink's
            "foreign".to_string(),
        ];
        let restored = vec![gid("s", 0, 1), gid("s", 0, 0)];
        let plan = plan_recovery("s", 0, 2, &restored, &prepared);
        assert_eq!(plan.commit, vec![gid("s", 0, 1)]);
        assert_eq!(plan.rollback, vec![gid("s", 0, 2)]);
        assert_eq!(plan.already_committed, vec![gid("s", 0, 0)]);
    }

    #[test]
    fn after_scaling_in_a_subtask_handles_the_gids_of_the_old_subtasks_it_restores() {
        // Parallelism 4 -> 2: new subtask 1 restores old subtasks 1 and 3.
        let prepared = vec![
            gid("s", 1, 5),
            gid("s", 3, 5),
            gid("s", 3, 6),
            gid("s", 2, 6),
        ];
        let restored = vec![gid("s", 1, 5), gid("s", 3, 5)];
        let plan = plan_recovery("s", 1, 2, &restored, &prepared);
        assert_eq!(plan.commit, vec![gid("s", 1, 5), gid("s", 3, 5)]);
        assert_eq!(plan.rollback, vec![gid("s", 3, 6)]);
    }
}
