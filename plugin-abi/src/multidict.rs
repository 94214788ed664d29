//! An ordered dictionary with repeated keys (mitmproxy's `MultiDict`), the shape of queries,
//! forms and cookies.
//!
//! ```
//! use interpose_plugin_abi::testing;
//!
//! let mut flow = testing::flow();
//! flow.request.set_path("/search?q=rust&page=2");
//! let mut query = flow.request.query();
//! query.set("page", "3");
//! flow.request.set_query(&query);
//! assert_eq!(flow.request.path(), "/search?q=rust&page=3");
//! ```

use std::{borrow::Borrow, fmt};

/// Ordered `(key, value)` pairs where a key may repeat; keys are compared exactly (mitmproxy's
/// `MultiDict`, as used for `request.query`, `urlencoded_form`, `multipart_form` and cookies).
///
/// [`MultiDict::get`] gives a key's first value, [`MultiDict::get_all`] all of them;
/// [`MultiDict::set`] replaces a key's values keeping the position of its first occurrence.
/// Unlike mitmproxy's `len()`, which counts distinct keys, [`MultiDict::len`] counts pairs, as
/// [`MultiDict::iter`] yields them (`keys().count()` counts distinct keys).
///
/// ```
/// use interpose_plugin_abi::MultiDict;
///
/// let mut q: MultiDict<String, String> = [("a", "1"), ("b", "2"), ("a", "3")]
///     .into_iter()
///     .map(|(k, v)| (k.to_string(), v.to_string()))
///     .collect();
/// assert_eq!(q.get("a").map(String::as_str), Some("1"));
/// assert_eq!(q.get_all("a").count(), 2);
/// q.set("a", "x");
/// assert_eq!(q.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(), ["a=x", "b=2"]);
/// q.append("c", "");
/// assert_eq!(q.remove("b"), 1);
/// assert_eq!(q.keys().collect::<Vec<_>>(), ["a", "c"]);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MultiDict<K, V> {
    fields: Vec<(K, V)>,
}

impl<K, V> MultiDict<K, V> {
    /// An empty dictionary; allocates nothing.
    ///
    /// ```
    /// use interpose_plugin_abi::MultiDict;
    ///
    /// let mut d = MultiDict::<String, String>::new();
    /// assert!(d.is_empty());
    /// d.append("tag", "a");
    /// d.append("tag", "b");
    /// assert_eq!((d.len(), d.keys().count()), (2, 1)); // pairs, distinct keys
    /// assert!(d.contains("tag"));
    /// assert_eq!(d.fields()[1], ("tag".to_string(), "b".to_string()));
    /// d.clear();
    /// assert!(d.is_empty());
    /// ```
    pub const fn new() -> Self {
        MultiDict { fields: Vec::new() }
    }

    /// Number of pairs (a repeated key counts once per value).
    ///
    /// See the example on [`MultiDict::new`].
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there is no pair at all.
    ///
    /// See the example on [`MultiDict::new`].
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Every pair in order (mitmproxy's `items(multi=True)`).
    ///
    /// ```
    /// # use interpose_plugin_abi::MultiDict;
    /// let d: MultiDict<&str, i32> = [("a", 1), ("a", 2)].into_iter().collect();
    /// assert_eq!(d.iter().collect::<Vec<_>>(), [(&"a", &1), (&"a", &2)]);
    /// ```
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + ExactSizeIterator {
        self.fields.iter().map(|(k, v)| (k, v))
    }

    /// The pairs as a slice (mitmproxy's `fields`).
    ///
    /// See the example on [`MultiDict::new`].
    pub fn fields(&self) -> &[(K, V)] {
        &self.fields
    }

    /// The pairs, taken out.
    ///
    /// ```
    /// # use interpose_plugin_abi::MultiDict;
    /// let d: MultiDict<&str, i32> = [("a", 1), ("a", 2)].into_iter().collect();
    /// let mut pairs = d.into_fields();
    /// pairs.sort_by_key(|&(_, v)| std::cmp::Reverse(v));
    /// assert_eq!(pairs, [("a", 2), ("a", 1)]);
    /// ```
    pub fn into_fields(self) -> Vec<(K, V)> {
        self.fields
    }

    /// Removes every pair.
    ///
    /// See the example on [`MultiDict::new`].
    pub fn clear(&mut self) {
        self.fields.clear();
    }

    /// Inserts a pair at `index` (clamped to the length), keeping any other value of `key`
    /// (mitmproxy's `insert`).
    ///
    /// ```
    /// # use interpose_plugin_abi::MultiDict;
    /// let mut d: MultiDict<&str, i32> = [("a", 1)].into_iter().collect();
    /// d.insert(0, "z", 0);
    /// assert_eq!(d.fields(), [("z", 0), ("a", 1)]);
    /// ```
    pub fn insert(&mut self, index: usize, key: impl Into<K>, value: impl Into<V>) {
        let index = index.min(self.fields.len());
        self.fields.insert(index, (key.into(), value.into()));
    }

    /// Adds a pair at the end, keeping any other value of `key` (mitmproxy's `add`).
    ///
    /// ```
    /// # use interpose_plugin_abi::MultiDict;
    /// let mut d = MultiDict::<String, String>::new();
    /// d.append("a", "1");
    /// d.append("a", "2");
    /// assert_eq!(d.get_all("a").collect::<Vec<_>>(), ["1", "2"]);
    /// ```
    #[doc(alias = "add")]
    pub fn append(&mut self, key: impl Into<K>, value: impl Into<V>) {
        self.fields.push((key.into(), value.into()));
    }
}

impl<K: Eq, V> MultiDict<K, V> {
    /// The first value of `key` (mitmproxy's `d[key]`, `None` instead of `KeyError`).
    ///
    /// ```
    /// # use interpose_plugin_abi::MultiDict;
    /// let d: MultiDict<String, String> =
    ///     [("k".to_string(), "v".to_string())].into_iter().collect();
    /// assert_eq!(d.get("k").map(String::as_str), Some("v"));
    /// assert_eq!(d.get("K"), None);
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.fields
            .iter()
            .find(|(k, _)| k.borrow() == key)
            .map(|(_, v)| v)
    }

    /// Every value of `key`, in order (empty when absent).
    ///
    /// ```
    /// # use interpose_plugin_abi::MultiDict;
    /// let d: MultiDict<&str, i32> = [("a", 1), ("b", 2), ("a", 3)].into_iter().collect();
    /// assert_eq!(d.get_all(&"a").collect::<Vec<_>>(), [&1, &3]);
    /// assert_eq!(d.get_all(&"a").next_back(), Some(&3)); // the last value
    /// assert_eq!(d.get_all(&"z").count(), 0);
    /// ```
    pub fn get_all<'a, Q>(&'a self, key: &'a Q) -> impl DoubleEndedIterator<Item = &'a V> + 'a
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.fields
            .iter()
            .filter(move |(k, _)| k.borrow() == key)
            .map(|(_, v)| v)
    }

    /// Whether `key` has at least one value (mitmproxy's `key in d`).
    ///
    /// See the example on [`MultiDict::new`].
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.fields.iter().any(|(k, _)| k.borrow() == key)
    }

    /// The distinct keys, in the order of their first occurrence (mitmproxy's `keys()`).
    ///
    /// See the example on [`MultiDict`].
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.fields
            .iter()
            .enumerate()
            .filter(|(i, (k, _))| !self.fields[..*i].iter().any(|(seen, _)| seen == k))
            .map(|(_, (k, _))| k)
    }

    /// Replaces every value of `key` by `value`, at the position of its first occurrence, or
    /// appends the pair when `key` is absent (mitmproxy's `d[key] = value`).
    ///
    /// ```
    /// # use interpose_plugin_abi::MultiDict;
    /// let mut d: MultiDict<&str, i32> = [("a", 1), ("b", 2), ("a", 3)].into_iter().collect();
    /// d.set("a", 9);
    /// assert_eq!(d.fields(), [("a", 9), ("b", 2)]);
    /// ```
    pub fn set(&mut self, key: impl Into<K>, value: impl Into<V>)
    where
        K: Clone,
    {
        self.set_all(key, [value.into()]);
    }

    /// Replaces the values of `key` by `values` (mitmproxy's `set_all`): the existing pairs of
    /// `key` take the new values in order, in place; existing pairs left over are removed, and
    /// values left over are appended at the end. An empty `values` removes the key.
    ///
    /// ```
    /// # use interpose_plugin_abi::MultiDict;
    /// let mut d: MultiDict<&str, i32> = [("a", 1), ("b", 2)].into_iter().collect();
    /// d.set_all("a", [7, 8]);
    /// assert_eq!(d.fields(), [("a", 7), ("b", 2), ("a", 8)]);
    /// ```
    pub fn set_all(&mut self, key: impl Into<K>, values: impl IntoIterator<Item = V>)
    where
        K: Clone,
    {
        let key = key.into();
        set_all_fields(&mut self.fields, |k| *k == key, || key.clone(), values);
    }

    /// Removes every pair of `key`; returns how many there were (mitmproxy's `del d[key]`).
    ///
    /// See the example on [`MultiDict`].
    pub fn remove<Q>(&mut self, key: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let before = self.fields.len();
        self.fields.retain(|(k, _)| k.borrow() != key);
        before - self.fields.len()
    }
}

impl<K, V> Default for MultiDict<K, V> {
    fn default() -> Self {
        MultiDict::new()
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for MultiDict<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.fields.iter()).finish()
    }
}

impl<K, V> FromIterator<(K, V)> for MultiDict<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        MultiDict {
            fields: iter.into_iter().collect(),
        }
    }
}

impl<K, V> From<Vec<(K, V)>> for MultiDict<K, V> {
    fn from(fields: Vec<(K, V)>) -> Self {
        MultiDict { fields }
    }
}

impl<K, V> Extend<(K, V)> for MultiDict<K, V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        self.fields.extend(iter);
    }
}

impl<K, V> IntoIterator for MultiDict<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.fields.into_iter()
    }
}

impl<'a, K, V> IntoIterator for &'a MultiDict<K, V> {
    type Item = &'a (K, V);
    type IntoIter = std::slice::Iter<'a, (K, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.fields.iter()
    }
}

/// mitmproxy's `set_all` on a list of pairs: the pairs whose key `is_key` take `values` in
/// order, in place; pairs left over are removed, values left over appended with `key()`.
pub(crate) fn set_all_fields<K, V>(
    fields: &mut Vec<(K, V)>,
    is_key: impl Fn(&K) -> bool,
    key: impl Fn() -> K,
    values: impl IntoIterator<Item = V>,
) {
    let mut values = values.into_iter();
    let mut i = 0;
    while i < fields.len() {
        if is_key(&fields[i].0) {
            match values.next() {
                Some(value) => {
                    fields[i].1 = value;
                    i += 1;
                }
                None => {
                    fields.remove(i);
                }
            }
        } else {
            i += 1;
        }
    }
    fields.extend(values.map(|value| (key(), value)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict(pairs: &[(&'static str, i32)]) -> MultiDict<&'static str, i32> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn set_all_follows_mitmproxy() {
        // Fewer values than occurrences: the extra occurrences go.
        let mut d = dict(&[("a", 1), ("b", 2), ("a", 3), ("a", 4)]);
        d.set_all("a", [7, 8]);
        assert_eq!(d.fields(), [("a", 7), ("b", 2), ("a", 8)]);
        // More values: the rest are appended.
        d.set_all("b", [5, 6]);
        assert_eq!(d.fields(), [("a", 7), ("b", 5), ("a", 8), ("b", 6)]);
        // None: the key goes.
        d.set_all("a", []);
        assert_eq!(d.fields(), [("b", 5), ("b", 6)]);
        // Absent key: appended.
        d.set("c", 0);
        assert_eq!(d.fields(), [("b", 5), ("b", 6), ("c", 0)]);
    }

    #[test]
    fn lookups_are_exact_and_ordered() {
        let mut d: MultiDict<String, String> = MultiDict::new();
        d.append("Key", "1");
        d.append("key", "2");
        d.append("Key", "3");
        assert_eq!(d.get("Key").map(String::as_str), Some("1"));
        assert_eq!(d.get_all("Key").collect::<Vec<_>>(), ["1", "3"]);
        assert_eq!(d.get_all("KEY").count(), 0);
        assert!(d.contains("key") && !d.contains("KEY"));
        assert_eq!(d.keys().collect::<Vec<_>>(), ["Key", "key"]);
        assert_eq!((d.len(), d.is_empty()), (3, false));
        d.insert(99, "last", "4");
        assert_eq!(
            d.iter().next_back(),
            Some((&"last".to_string(), &"4".to_string()))
        );
        assert_eq!(d.remove("Key"), 2);
        assert_eq!(d.remove("Key"), 0);
        let mut other = MultiDict::from(vec![("key".to_string(), "2".to_string())]);
        other.extend([("last".to_string(), "4".to_string())]);
        assert_eq!(d, other);
        assert_eq!(format!("{d:?}"), r#"[("key", "2"), ("last", "4")]"#);
        assert_eq!(d.into_iter().count(), 2);
    }

    #[test]
    fn bytes_keys() {
        let mut d = MultiDict::<Vec<u8>, Vec<u8>>::new();
        d.append(&b"k"[..], &b"v"[..]);
        d.set("k", "w");
        assert_eq!(d.get(&b"k"[..]).map(Vec::as_slice), Some(&b"w"[..]));
    }
}
