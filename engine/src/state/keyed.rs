//! In-memory keyed state organised by key group, and the typed state handles
//! (`ValueState`, `ListState`, `MapState`) a [`crate::KeyedProcessFunction`] uses.
//!
//! ```text
//! KeyedStateStore<K>
//!   tables[state id] : KeyGroupedMap<K, V>
//!     groups[key group - range.start] : HashMap<K, V>
//! ```
//! A snapshot is one byte string per key group, so state can be restored into a
//! different parallelism by handing each subtask the key groups it now owns.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
use std::marker::PhantomData;

use crate::error::Result;
use crate::state::codec::StateCodec;
use crate::state::key_group::{FastMap, KeyGroup, KeyGroupFn, KeyGroupRange, key_group_by};

/// Bounds every key type satisfies: hashable, comparable, cloneable and serializable.
pub trait Key: Hash + Eq + Clone + Send + Sync + StateCodec + 'static {}
impl<T: Hash + Eq + Clone + Send + Sync + StateCodec + 'static> Key for T {}

/// Bounds every state value satisfies.
pub trait StateValue: Clone + Send + StateCodec + 'static {}
impl<T: Clone + Send + StateCodec + 'static> StateValue for T {}

/// A map from key to value, split into one hash map per owned key group.
pub struct KeyGroupedMap<K, V> {
    range: KeyGroupRange,
    max_parallelism: u16,
    groups: Vec<FastMap<K, V>>,
    /// Key groups from a source partitioner instead of key hashes.
    grouper: Option<KeyGroupFn<K>>,
}

impl<K, V> std::fmt::Debug for KeyGroupedMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyGroupedMap")
            .field("range", &self.range)
            .field("groups", &self.groups.len())
            .finish()
    }
}

impl<K: Hash + Eq, V> KeyGroupedMap<K, V> {
    /// An empty map for the key groups in `range`.
    pub fn new(range: KeyGroupRange, max_parallelism: u16) -> Self {
        let groups = (0..range.len().max(1))
            .map(|_| FastMap::default())
            .collect();
        KeyGroupedMap {
            range,
            max_parallelism,
            groups,
            grouper: None,
        }
    }

    /// An empty map whose key groups come from `grouper` (hashes when `None`).
    pub fn with_grouper(
        range: KeyGroupRange,
        max_parallelism: u16,
        grouper: Option<KeyGroupFn<K>>,
    ) -> Self {
        KeyGroupedMap {
            grouper,
            ..Self::new(range, max_parallelism)
        }
    }

    /// An empty map for the key groups an operator subtask owns, grouping keys as
    /// its keyed stream does.
    pub fn for_init(init: &crate::OperatorInit) -> Self
    where
        K: 'static,
    {
        Self::with_grouper(init.key_groups, init.max_parallelism, init.grouper::<K>())
    }

    /// The key group of `key`.
    #[inline]
    pub fn key_group(&self, key: &K) -> KeyGroup {
        key_group_by(self.grouper.as_ref(), key, self.max_parallelism)
    }

    #[inline]
    fn index(&self, kg: KeyGroup) -> usize {
        // Records are routed by the same hash, so `kg` is always in range; clamping
        // keeps a routing bug from turning into a panic.
        usize::from(kg.0.saturating_sub(self.range.start)).min(self.groups.len() - 1)
    }

    /// The map of one key group.
    #[inline]
    pub fn group_mut(&mut self, kg: KeyGroup) -> &mut FastMap<K, V> {
        let i = self.index(kg);
        &mut self.groups[i]
    }

    /// The map of key group `kg`, if it is in this map's range.
    pub fn group(&self, kg: KeyGroup) -> Option<&FastMap<K, V>> {
        let i = kg.0.checked_sub(self.range.start)?;
        self.groups
            .get(usize::from(i))
            .filter(|_| kg.0 < self.range.end)
    }

    /// Value for `key`, if any.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.groups[self.index(self.key_group(key))].get(key)
    }

    /// Drops every key of the key groups in `groups` (those outside this map's
    /// range are not here).
    pub fn release(&mut self, groups: &BTreeSet<u16>) {
        for &g in groups {
            if self.range.contains(KeyGroup(g)) {
                let i = self.index(KeyGroup(g));
                self.groups[i] = FastMap::default();
            }
        }
    }

    /// Mutable value for `key`, if any.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let kg = self.key_group(key);
        self.group_mut(kg).get_mut(key)
    }

    /// Inserts or replaces the value for `key`.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let kg = self.key_group(&key);
        self.group_mut(kg).insert(key, value)
    }

    /// Removes the value for `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let kg = self.key_group(key);
        self.group_mut(kg).remove(key)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|g| g.len()).sum()
    }

    /// Whether no key has a value.
    pub fn is_empty(&self) -> bool {
        self.groups.iter().all(|g| g.is_empty())
    }

    /// All entries.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.groups.iter().flat_map(|g| g.iter())
    }

    /// All entries with their key group.
    pub fn iter_with_groups(&self) -> impl Iterator<Item = (KeyGroup, &K, &V)> {
        let start = self.range.start;
        self.groups.iter().enumerate().flat_map(move |(i, g)| {
            g.iter()
                .map(move |(k, v)| (KeyGroup(start + i as u16), k, v))
        })
    }

    /// All entries, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.groups.iter_mut().flat_map(|g| g.iter_mut())
    }

    /// Applies `f` to the value of `key`, if any, and removes the key when `f`
    /// returns false: one lookup where `get_mut` then `remove` take two.
    pub fn update_or_remove(&mut self, key: K, f: impl FnOnce(&mut V) -> bool) {
        let kg = self.key_group(&key);
        if let std::collections::hash_map::Entry::Occupied(mut e) = self.group_mut(kg).entry(key)
            && !f(e.get_mut())
        {
            e.remove();
        }
    }

    /// Keeps the entries for which `f` returns true.
    pub fn retain(&mut self, mut f: impl FnMut(&K, &mut V) -> bool) {
        for g in &mut self.groups {
            g.retain(|k, v| f(k, v));
        }
    }

    /// Reserves room for about `total` keys spread over the key groups.
    pub fn reserve_total(&mut self, total: usize) {
        let per = total / self.groups.len().max(1) + 1;
        for g in &mut self.groups {
            g.reserve(per);
        }
    }

    /// Consumes the map, yielding every entry.
    pub fn into_groups(self) -> impl Iterator<Item = (K, V)> {
        self.groups.into_iter().flatten()
    }

    /// The key groups this map covers.
    pub fn range(&self) -> KeyGroupRange {
        self.range
    }
}

impl<K: Key, V: StateCodec> KeyGroupedMap<K, V> {
    /// One encoded byte string per non-empty key group.
    pub fn snapshot(&self) -> BTreeMap<u16, Vec<u8>> {
        let mut out = BTreeMap::new();
        for kg in self.non_empty_groups() {
            let mut buf = Vec::new();
            self.encode_group(kg, &mut buf);
            out.insert(kg, buf);
        }
        out
    }

    /// The owned key groups that hold an entry, in order.
    pub fn non_empty_groups(&self) -> impl Iterator<Item = u16> + '_ {
        let start = self.range.start;
        self.groups
            .iter()
            .enumerate()
            .filter(|(_, g)| !g.is_empty())
            .map(move |(i, _)| start + i as u16)
    }

    /// Appends key group `kg` as [`KeyGroupedMap::snapshot`] encodes it (an
    /// entry count, then the entries) to `buf`; nothing for a key group that
    /// holds no entry or that this map does not own.
    pub fn encode_group(&self, kg: u16, buf: &mut Vec<u8>) {
        if !self.range.contains(KeyGroup(kg)) {
            return;
        }
        let g = &self.groups[self.index(KeyGroup(kg))];
        if g.is_empty() {
            return;
        }
        (g.len() as u32).encode(buf);
        for (k, v) in g {
            k.encode(buf);
            v.encode(buf);
        }
    }

    /// The map of an operator subtask as [`KeyGroupedMap::for_init`], holding
    /// every key group of the subtask's restored state (each written by
    /// [`KeyGroupedMap::snapshot`]).
    pub fn restored(init: &crate::OperatorInit) -> Result<Self> {
        let mut map = Self::for_init(init);
        if let Some(state) = &init.restored {
            for bytes in state.key_groups.values() {
                map.restore_group(bytes)?;
            }
        }
        Ok(map)
    }

    /// Restores the entries of one key group from [`KeyGroupedMap::snapshot`] bytes.
    pub fn restore_group(&mut self, bytes: &[u8]) -> Result<()> {
        self.restore_group_keys(bytes).map(drop)
    }

    /// [`KeyGroupedMap::restore_group`], returning the keys restored.
    pub fn restore_group_keys(&mut self, mut bytes: &[u8]) -> Result<Vec<K>>
    where
        K: Clone,
    {
        let n = u32::decode(&mut bytes)?;
        let mut keys = Vec::new();
        for _ in 0..n {
            let k = K::decode(&mut bytes)?;
            let v = V::decode(&mut bytes)?;
            keys.push(k.clone());
            self.insert(k, v);
        }
        Ok(keys)
    }
}

impl<K: StateCodec + Ord, V: StateCodec> StateCodec for BTreeMap<K, V> {
    fn encode(&self, buf: &mut Vec<u8>) {
        (self.len() as u32).encode(buf);
        for (k, v) in self {
            k.encode(buf);
            v.encode(buf);
        }
    }
    fn decode(buf: &mut &[u8]) -> Result<Self> {
        let n = u32::decode(buf)?;
        let mut m = BTreeMap::new();
        for _ in 0..n {
            let k = K::decode(buf)?;
            m.insert(k, V::decode(buf)?);
        }
        Ok(m)
    }
}

impl<K: StateCodec + Hash + Eq, V: StateCodec> StateCodec for HashMap<K, V> {
    fn encode(&self, buf: &mut Vec<u8>) {
        (self.len() as u32).encode(buf);
        for (k, v) in self {
            k.encode(buf);
            v.encode(buf);
        }
    }
    fn decode(buf: &mut &[u8]) -> Result<Self> {
        let n = u32::decode(buf)?;
        let mut m = HashMap::new();
        for _ in 0..n {
            let k = K::decode(buf)?;
            m.insert(k, V::decode(buf)?);
        }
        Ok(m)
    }
}

/// Handle to a single value per key. Obtain it from [`StateRegistry::value`].
pub struct ValueState<V> {
    id: usize,
    _v: PhantomData<fn() -> V>,
}
/// Handle to a list of values per key. Obtain it from [`StateRegistry::list`].
pub struct ListState<V> {
    id: usize,
    _v: PhantomData<fn() -> V>,
}
/// Handle to a map per key. Obtain it from [`StateRegistry::map`].
pub struct MapState<UK, UV> {
    id: usize,
    _v: PhantomData<fn() -> (UK, UV)>,
}

macro_rules! copy_handle {
    ($t:ident < $($p:ident),+ >) => {
        impl<$($p),+> Clone for $t<$($p),+> {
            fn clone(&self) -> Self { *self }
        }
        impl<$($p),+> Copy for $t<$($p),+> {}
    };
}
copy_handle!(ValueState<V>);
copy_handle!(ListState<V>);
copy_handle!(MapState<UK, UV>);

trait StateTable<K>: Send {
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn snapshot(&self) -> BTreeMap<u16, Vec<u8>>;
    fn restore_group(&mut self, bytes: &[u8]) -> Result<()>;
    fn release(&mut self, groups: &BTreeSet<u16>);
}

impl<K: Key, V: StateValue> StateTable<K> for KeyGroupedMap<K, V> {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn snapshot(&self) -> BTreeMap<u16, Vec<u8>> {
        KeyGroupedMap::snapshot(self)
    }
    fn restore_group(&mut self, bytes: &[u8]) -> Result<()> {
        KeyGroupedMap::restore_group(self, bytes)
    }
    fn release(&mut self, groups: &BTreeSet<u16>) {
        KeyGroupedMap::release(self, groups)
    }
}

/// Declares the states of a keyed function in [`crate::KeyedProcessFunction::open`].
pub struct StateRegistry<'a, K> {
    store: &'a mut KeyedStateStore<K>,
}

impl<K: Key> StateRegistry<'_, K> {
    fn add<V: StateValue>(&mut self) -> usize {
        let range = self.store.range;
        let max = self.store.max_parallelism;
        let grouper = self.store.grouper.clone();
        self.store
            .tables
            .push(Box::new(KeyGroupedMap::<K, V>::with_grouper(
                range, max, grouper,
            )));
        self.store.tables.len() - 1
    }
    /// Declares a [`ValueState`].
    pub fn value<V: StateValue>(&mut self) -> ValueState<V> {
        ValueState {
            id: self.add::<V>(),
            _v: PhantomData,
        }
    }
    /// Declares a [`ListState`].
    pub fn list<V: StateValue>(&mut self) -> ListState<V> {
        ListState {
            id: self.add::<Vec<V>>(),
            _v: PhantomData,
        }
    }
    /// Declares a [`MapState`].
    pub fn map<UK: StateValue + Ord, UV: StateValue>(&mut self) -> MapState<UK, UV> {
        MapState {
            id: self.add::<BTreeMap<UK, UV>>(),
            _v: PhantomData,
        }
    }
}

/// All keyed state of one operator subtask.
pub struct KeyedStateStore<K> {
    range: KeyGroupRange,
    max_parallelism: u16,
    tables: Vec<Box<dyn StateTable<K>>>,
    grouper: Option<KeyGroupFn<K>>,
}

impl<K: Key> KeyedStateStore<K> {
    /// An empty store for the key groups in `range`.
    pub fn new(range: KeyGroupRange, max_parallelism: u16) -> Self {
        KeyedStateStore {
            range,
            max_parallelism,
            tables: Vec::new(),
            grouper: None,
        }
    }

    /// An empty store for an operator subtask, grouping keys as its keyed stream does.
    pub fn for_init(init: &crate::OperatorInit) -> Self {
        KeyedStateStore {
            grouper: init.grouper::<K>(),
            ..Self::new(init.key_groups, init.max_parallelism)
        }
    }

    /// A registry to declare states with.
    pub fn registry(&mut self) -> StateRegistry<'_, K> {
        StateRegistry { store: self }
    }

    fn table<V: StateValue>(&self, id: usize) -> Option<&KeyGroupedMap<K, V>> {
        self.tables.get(id)?.as_any().downcast_ref()
    }

    fn table_mut<V: StateValue>(&mut self, id: usize) -> Option<&mut KeyGroupedMap<K, V>> {
        self.tables.get_mut(id)?.as_any_mut().downcast_mut()
    }

    /// Snapshot of every table: `(table index, key group, bytes)`.
    pub fn snapshot(&self) -> BTreeMap<u16, Vec<u8>> {
        // One byte string per key group holding every table's entries for that group.
        let mut per_group: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
        for (t, table) in self.tables.iter().enumerate() {
            for (kg, bytes) in table.snapshot() {
                let buf = per_group.entry(kg).or_default();
                (t as u32).encode(buf);
                bytes.encode(buf);
            }
        }
        per_group
    }

    /// Drops every table's keys of the key groups in `groups`.
    pub fn release(&mut self, groups: &BTreeSet<u16>) {
        for table in &mut self.tables {
            table.release(groups);
        }
    }

    /// The key group of `key`, as the tables group it.
    pub fn key_group(&self, key: &K) -> KeyGroup {
        key_group_by(self.grouper.as_ref(), key, self.max_parallelism)
    }

    /// Restores one key group written by [`KeyedStateStore::snapshot`].
    pub fn restore_group(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let t = u32::decode(&mut bytes)? as usize;
            let table_bytes = Vec::<u8>::decode(&mut bytes)?;
            match self.tables.get_mut(t) {
                Some(table) => table.restore_group(&table_bytes)?,
                None => {
                    return Err(crate::EngineError::Codec(format!(
                        "snapshot has state #{t}, the function declares {}",
                        self.tables.len()
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Access to the state of the current key inside a keyed function.
pub struct KeyedState<'a, K> {
    pub(crate) store: &'a mut KeyedStateStore<K>,
    pub(crate) key: &'a K,
}

impl<K: Key> KeyedState<'_, K> {
    /// The current key.
    pub fn key(&self) -> &K {
        self.key
    }
    /// Current value of `state` for the current key.
    pub fn get<V: StateValue>(&self, state: ValueState<V>) -> Option<&V> {
        self.store.table::<V>(state.id)?.get(self.key)
    }
    /// Sets `state` for the current key.
    pub fn set<V: StateValue>(&mut self, state: ValueState<V>, value: V) {
        let key = self.key.clone();
        if let Some(t) = self.store.table_mut::<V>(state.id) {
            t.insert(key, value);
        }
    }
    /// Removes the value of `state` for the current key and returns it (to
    /// change it without a copy, then [`KeyedState::set`] it again).
    pub fn take<V: StateValue>(&mut self, state: ValueState<V>) -> Option<V> {
        self.store.table_mut::<V>(state.id)?.remove(self.key)
    }
    /// Clears `state` for the current key.
    pub fn clear<V: StateValue>(&mut self, state: ValueState<V>) {
        if let Some(t) = self.store.table_mut::<V>(state.id) {
            t.remove(self.key);
        }
    }
    /// The list of the current key (empty if none).
    pub fn list<V: StateValue>(&self, state: ListState<V>) -> &[V] {
        self.store
            .table::<Vec<V>>(state.id)
            .and_then(|t| t.get(self.key))
            .map_or(&[], |v| v)
    }
    /// Appends to the list of the current key.
    pub fn add<V: StateValue>(&mut self, state: ListState<V>, value: V) {
        let key = self.key.clone();
        if let Some(t) = self.store.table_mut::<Vec<V>>(state.id) {
            let kg = t.key_group(&key);
            t.group_mut(kg).entry(key).or_default().push(value);
        }
    }
    /// Removes the list of the current key and returns it.
    pub fn take_list<V: StateValue>(&mut self, state: ListState<V>) -> Vec<V> {
        self.store
            .table_mut::<Vec<V>>(state.id)
            .and_then(|t| t.remove(self.key))
            .unwrap_or_default()
    }
    /// Value under `user_key` in the map of the current key.
    pub fn map_get<UK: StateValue + Ord, UV: StateValue>(
        &self,
        state: MapState<UK, UV>,
        user_key: &UK,
    ) -> Option<&UV> {
        self.store
            .table::<BTreeMap<UK, UV>>(state.id)?
            .get(self.key)?
            .get(user_key)
    }
    /// Puts `user_key -> value` in the map of the current key.
    pub fn map_put<UK: StateValue + Ord, UV: StateValue>(
        &mut self,
        state: MapState<UK, UV>,
        user_key: UK,
        value: UV,
    ) {
        let key = self.key.clone();
        if let Some(t) = self.store.table_mut::<BTreeMap<UK, UV>>(state.id) {
            let kg = t.key_group(&key);
            t.group_mut(kg)
                .entry(key)
                .or_default()
                .insert(user_key, value);
        }
    }
    /// Removes `user_key` from the map of the current key.
    pub fn map_remove<UK: StateValue + Ord, UV: StateValue>(
        &mut self,
        state: MapState<UK, UV>,
        user_key: &UK,
    ) -> Option<UV> {
        let t = self.store.table_mut::<BTreeMap<UK, UV>>(state.id)?;
        let m = t.get_mut(self.key)?;
        let v = m.remove(user_key);
        if m.is_empty() {
            t.remove(self.key);
        }
        v
    }
    /// The whole map of the current key, if any.
    pub fn map_entries<UK: StateValue + Ord, UV: StateValue>(
        &self,
        state: MapState<UK, UV>,
    ) -> Option<&BTreeMap<UK, UV>> {
        self.store
            .table::<BTreeMap<UK, UV>>(state.id)?
            .get(self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::key_group::key_group_of;

    #[test]
    fn snapshot_per_key_group_restores_into_other_parallelism() {
        let full = KeyGroupRange::for_subtask(0, 1, 16);
        let mut store = KeyedStateStore::<u64>::new(full, 16);
        let count = store.registry().value::<u64>();
        let seen = store.registry().list::<String>();
        for k in 0..100u64 {
            let mut s = KeyedState {
                store: &mut store,
                key: &k,
            };
            s.set(count, k * 2);
            s.add(seen, format!("v{k}"));
        }
        let snap = store.snapshot();
        // Restore into two subtasks, each taking only its key groups.
        let mut total = 0;
        for sub in 0..2 {
            let range = KeyGroupRange::for_subtask(sub, 2, 16);
            let mut s2 = KeyedStateStore::<u64>::new(range, 16);
            let c2 = s2.registry().value::<u64>();
            let l2 = s2.registry().list::<String>();
            for (kg, bytes) in &snap {
                if range.contains(KeyGroup(*kg)) {
                    s2.restore_group(bytes).unwrap();
                }
            }
            for k in 0..100u64 {
                let st = KeyedState {
                    store: &mut s2,
                    key: &k,
                };
                if range.contains(key_group_of(&k, 16)) {
                    assert_eq!(st.get(c2), Some(&(k * 2)));
                    assert_eq!(st.list(l2), &[format!("v{k}")]);
                    total += 1;
                } else {
                    assert_eq!(st.get(c2), None);
                }
            }
        }
        assert_eq!(total, 100);
    }

    #[test]
    fn a_taken_value_is_gone_until_set_again_and_left_out_of_snapshots() {
        let mut store = KeyedStateStore::<u64>::new(KeyGroupRange::for_subtask(0, 1, 4), 4);
        let v = store.registry().value::<String>();
        let mut s = KeyedState {
            store: &mut store,
            key: &7,
        };
        assert_eq!(s.take(v), None);
        s.set(v, "a".to_string());
        assert_eq!(s.take(v), Some("a".to_string()));
        assert_eq!(s.get(v), None);
        assert!(store.snapshot().is_empty());
    }
}
