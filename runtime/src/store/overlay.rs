//! The write overlay a batch runs against: reads see the batch's own writes
//! first, then the changes of earlier batches not committed yet, and fall
//! through to the committed state; nothing touches redb until a commit, so a
//! failed batch is discarded by dropping its overlay.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::iter::Peekable;
use std::ops::Bound;
use std::sync::Arc;

use super::{Entries, StateReader, StoreError, scan_lower_bound};

/// Changes by key, in key order: `None` marks a deletion.
pub type Changes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// The changes of one batch, over the uncommitted changes of earlier ones.
#[derive(Debug, Default, Clone)]
pub struct Overlay {
    changes: Changes,
    /// Earlier batches' changes, coalesced until they commit together: read
    /// through, never written, so a failed batch leaves them intact.
    below: Arc<Changes>,
    /// Changes being committed by another thread right now: read through
    /// until the committed state has them.
    committing: Arc<Changes>,
}

impl Overlay {
    /// An empty batch over `below`, earlier batches' uncommitted changes,
    /// over `committing`, changes on their way into the committed state.
    pub fn over(below: Arc<Changes>, committing: Arc<Changes>) -> Self {
        Self {
            changes: Changes::new(),
            below,
            committing,
        }
    }

    /// Coalesced changes shared with readers, as one overlay to commit.
    pub fn from_shared(changes: Arc<Changes>) -> Self {
        Self {
            changes: Changes::new(),
            below: changes,
            committing: Arc::default(),
        }
    }

    /// This batch's own changes, without the ones it was laid over.
    pub fn into_batch_changes(self) -> Changes {
        self.changes
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.changes.insert(key, Some(value));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.changes.insert(key, None);
    }

    /// The value under `key`: the overlay's if it has one, else the base's.
    pub fn get(&self, base: &StateReader, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let change = self
            .changes
            .get(key)
            .or_else(|| self.below.get(key))
            .or_else(|| self.committing.get(key));
        match change {
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
        if self.is_empty() {
            return base.scan(prefix, start_after, limit);
        }
        let mut merged = Vec::new();
        let mut cursor: Option<Vec<u8>> = start_after.map(<[u8]>::to_vec);
        let mut pending = self
            .changes_from(scan_lower_bound(prefix, start_after))
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

    /// Every change, this batch's over the earlier ones, in ascending key
    /// order.
    pub fn changes(&self) -> impl Iterator<Item = (&Vec<u8>, &Option<Vec<u8>>)> {
        self.changes_from(Bound::Unbounded)
    }

    fn changes_from<'a>(
        &'a self,
        lower: Bound<&'a [u8]>,
    ) -> impl Iterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)> {
        let range = (lower, Bound::Unbounded);
        let layer = |changes: &'a Changes| changes.range::<[u8], _>(range).peekable();
        Layered {
            top: layer(&self.changes),
            below: Layered {
                top: layer(&self.below),
                below: layer(&self.committing),
            }
            .peekable(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.below.is_empty() && self.committing.is_empty()
    }
}

/// Two sorted change iterators merged into one, `top` winning on equal keys.
struct Layered<A: Iterator, B: Iterator> {
    top: Peekable<A>,
    below: Peekable<B>,
}

impl<'a, A, B> Iterator for Layered<A, B>
where
    A: Iterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)>,
    B: Iterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)>,
{
    type Item = (&'a Vec<u8>, &'a Option<Vec<u8>>);

    fn next(&mut self) -> Option<Self::Item> {
        let order = match (self.top.peek(), self.below.peek()) {
            (Some((top, _)), Some((below, _))) => top.cmp(below),
            (Some(_), None) => Ordering::Less,
            (None, _) => return self.below.next(),
        };
        match order {
            Ordering::Less => self.top.next(),
            Ordering::Greater => self.below.next(),
            Ordering::Equal => {
                self.below.next();
                self.top.next()
            }
        }
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

    #[test]
    fn a_batch_over_earlier_changes_reads_and_lists_both_layers() {
        let (_dir, store) = store_with(&["a", "b", "c"]);
        let base = store.reader().unwrap();
        let mut earlier = Overlay::default();
        earlier.put(b"b".to_vec(), b"earlier".to_vec());
        earlier.delete(b"c".to_vec());
        earlier.put(b"d".to_vec(), b"earlier".to_vec());
        let below = Arc::new(earlier.into_batch_changes());
        let mut in_commit = Overlay::default();
        in_commit.put(b"a".to_vec(), b"committing".to_vec());
        in_commit.put(b"b".to_vec(), b"committing".to_vec());
        in_commit.put(b"f".to_vec(), b"committing".to_vec());
        let committing = Arc::new(in_commit.into_batch_changes());

        let mut batch = Overlay::over(below.clone(), committing);
        assert_eq!(batch.get(&base, b"b").unwrap(), Some(b"earlier".to_vec()));
        assert_eq!(batch.get(&base, b"c").unwrap(), None);
        batch.put(b"c".to_vec(), b"batch".to_vec());
        batch.delete(b"d".to_vec());
        batch.put(b"e".to_vec(), b"batch".to_vec());
        let all = batch.scan(&base, b"", None, 10).unwrap();
        assert_eq!(keys(&all), ["a", "b", "c", "e", "f"]);
        assert_eq!(all[0].1, b"committing".to_vec());
        assert_eq!(all[1].1, b"earlier".to_vec());
        assert_eq!(all[2].1, b"batch".to_vec());
        let listed: Vec<_> = batch
            .changes()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(
            listed,
            [
                (b"a".to_vec(), Some(b"committing".to_vec())),
                (b"b".to_vec(), Some(b"earlier".to_vec())),
                (b"c".to_vec(), Some(b"batch".to_vec())),
                (b"d".to_vec(), None),
                (b"e".to_vec(), Some(b"batch".to_vec())),
                (b"f".to_vec(), Some(b"committing".to_vec())),
            ]
        );
        // The batch's own changes leave the earlier ones untouched.
        let own = batch.into_batch_changes();
        assert_eq!(own.len(), 3);
        assert_eq!(below.get(b"d".as_slice()), Some(&Some(b"earlier".to_vec())));
    }
}
