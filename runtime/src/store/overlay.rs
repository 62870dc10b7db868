//! The write overlay a batch runs against: reads see the batch's own writes
//! first and fall through to the committed state; nothing touches redb until
//! the batch commits, so a failed batch is discarded by dropping the overlay.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::{Entries, StateReader, StoreError, scan_lower_bound};

/// Pending changes of one batch: `None` marks a deletion.
#[derive(Debug, Default, Clone)]
pub struct Overlay {
    changes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Overlay {
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.changes.insert(key, Some(value));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.changes.insert(key, None);
    }

    /// The value under `key`: the overlay's if it has one, else the base's.
    pub fn get(&self, base: &StateReader, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.changes.get(key) {
            Some(change) => Ok(change.clone()),
            None => base.get(key),
        }
    }

    /// A prefix scan over the base merged with the overlay.
    pub fn scan(
        &self,
        base: &StateReader,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        if self.changes.is_empty() {
            return base.scan(prefix, start_after, limit);
        }
        let mut merged = Vec::new();
        let mut cursor: Option<Vec<u8>> = start_after.map(<[u8]>::to_vec);
        let mut pending = self
            .changes
            .range::<[u8], _>((scan_lower_bound(prefix, start_after), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .peekable();
        // Read the base in pages: deletions in the overlay may hide entries,
        // so one page of `limit` might not be enough.
        'pages: loop {
            let page = base.scan(prefix, cursor.as_deref(), limit.max(16))?;
            let exhausted = page.len() < limit.max(16);
            for (key, value) in page {
                while let Some((pk, pv)) = pending.next_if(|(pk, _)| pk.as_slice() < key.as_slice())
                {
                    if let Some(v) = pv {
                        merged.push((pk.clone(), v.clone()));
                        if merged.len() >= limit {
                            break 'pages;
                        }
                    }
                }
                cursor = Some(key.clone());
                match pending.next_if(|(pk, _)| pk.as_slice() == key.as_slice()) {
                    Some((_, Some(v))) => merged.push((key, v.clone())),
                    Some((_, None)) => {}
                    None => merged.push((key, value)),
                }
                if merged.len() >= limit {
                    break 'pages;
                }
            }
            if exhausted {
                for (pk, pv) in pending.by_ref() {
                    if merged.len() >= limit {
                        break;
                    }
                    if let Some(v) = pv {
                        merged.push((pk.clone(), v.clone()));
                    }
                }
                break;
            }
        }
        Ok(merged)
    }

    /// Every change, in ascending key order.
    pub fn changes(&self) -> impl Iterator<Item = (&Vec<u8>, &Option<Vec<u8>>)> {
        self.changes.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn clear(&mut self) {
        self.changes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::super::{CommitPositions, StateStore};
    use super::*;
    use crate::event::Offsets;

    fn store_with(keys: &[&str]) -> (tempfile::TempDir, StateStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("s.redb")).unwrap();
        let mut overlay = Overlay::default();
        for key in keys {
            overlay.put(key.as_bytes().to_vec(), b"base".to_vec());
        }
        store
            .commit(
                &overlay,
                CommitPositions {
                    offsets: &Offsets::default(),
                    events_applied: 0,
                },
                false,
            )
            .unwrap();
        (dir, store)
    }

    fn keys(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<String> {
        entries
            .iter()
            .map(|(k, _)| String::from_utf8(k.clone()).unwrap())
            .collect()
    }

    #[test]
    fn reads_see_overlay_first() {
        let (_dir, store) = store_with(&["a", "b"]);
        let base = store.reader().unwrap();
        let mut overlay = Overlay::default();
        overlay.put(b"a".to_vec(), b"new".to_vec());
        overlay.delete(b"b".to_vec());
        assert_eq!(overlay.get(&base, b"a").unwrap(), Some(b"new".to_vec()));
        assert_eq!(overlay.get(&base, b"b").unwrap(), None);
    }

    #[test]
    fn scan_merges_inserts_updates_and_deletes_in_order() {
        let base_keys: Vec<String> = (0..40).map(|i| format!("k/{i:02}")).collect();
        let base_refs: Vec<&str> = base_keys.iter().map(String::as_str).collect();
        let (_dir, store) = store_with(&base_refs);
        let base = store.reader().unwrap();
        let mut overlay = Overlay::default();
        // Delete most of the first page so the merge must read further.
        for i in 0..30 {
            overlay.delete(format!("k/{i:02}").into_bytes());
        }
        overlay.put(b"k/05a".to_vec(), b"new".to_vec());
        overlay.put(b"k/31".to_vec(), b"upd".to_vec());
        overlay.put(b"k/99".to_vec(), b"new".to_vec());
        overlay.put(b"z".to_vec(), b"other prefix".to_vec());

        let all = overlay.scan(&base, b"k/", None, 100).unwrap();
        let mut expected = vec!["k/05a".to_string()];
        expected.extend((30..40).map(|i| format!("k/{i:02}")));
        expected.push("k/99".into());
        assert_eq!(keys(&all), expected);
        assert_eq!(all[2].1, b"upd".to_vec());

        let page = overlay.scan(&base, b"k/", Some(b"k/05a"), 2).unwrap();
        assert_eq!(keys(&page), ["k/30", "k/31"]);
        let tail = overlay.scan(&base, b"k/", Some(b"k/39"), 5).unwrap();
        assert_eq!(keys(&tail), ["k/99"]);
    }
}
