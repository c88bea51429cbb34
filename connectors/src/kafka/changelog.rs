//! Operator state in compacted changelog topics, written inside the checkpoint's
//! transaction and read back on restore.
//!
//! One topic per stateful operator, `{application.id}-{uid}-changelog`, with as
//! many partitions as the pipeline's widest input topic. A checkpoint writes only
//! what changed since the last committed one, at key-group granularity: each key
//! group's snapshot (and each non-keyed entry) is one item, a head record and
//! its bytes in chunks of at most [`CHUNK`] bytes; an item whose bytes did not
//! change is not written, one that disappeared gets tombstones. Key group `g`
//! goes to partition `g` when key groups are source partitions
//! (`key_by_source_partition`), else to `g % N`; entries go to partition 0.
//!
//! ```text
//! record key:     [1][b'k' | b'e'][id: u32 BE][record: u16 BE]
//! record 0 value: [2][chunks: u16 BE]          the head; null: deleted
//! record i value: chunk i of the item's bytes  (1 <= i <= chunks)
//! ```
//!
//! The chunks are slices of the snapshot the operator wrote, not copies of it.
//! Changelogs written before the head record (value version 1) hold the chunks
//! at records 0..chunks, each value `[1][chunks: u16 BE][chunk]`; restore reads
//! both.
//!
//! Restore reads a partition from its start to its last stable offset with
//! read_committed, keeps the newest value per key, and reassembles the items.
//! The process keeps the non-keyed entries it committed last, and with
//! `strom.state.local.recovery` the key groups too, so a restart inside the
//! process (rebalance, rollback) reads from Kafka only the partitions it did not
//! own before; without it, a restart reads every partition it owns.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use engine::{Checkpoint, CheckpointId, OperatorId, OperatorState};
use kafka_wire::client::ProducerRecord;
use kafka_wire::client::admin::{Admin, OffsetSpec};
use kafka_wire::client::config::IsolationLevel;
use kafka_wire::client::consumer::Consumer;

use super::config::KafkaConfig;
use super::topics;
use crate::error::ConnectorError;
use crate::sync::lock;

/// Largest payload of one changelog record (larger for an item of more than
/// `u16::MAX - 1` such chunks).
pub(crate) const CHUNK: usize = 512 * 1024;
/// The version byte of a record key.
const KEY_VERSION: u8 = 1;
/// The version byte of a head record's value.
const HEAD_VERSION: u8 = 2;
/// The version byte of every value of an item written before head records.
const LEGACY_VERSION: u8 = 1;
/// How long reading a changelog may go without a fetch moving it forward.
const RESTORE_STALL: Duration = Duration::from_secs(300);
/// `fetch.max.wait.ms` of the consumer that reads a changelog back.
const RESTORE_FETCH_WAIT_MS: u64 = 10;

/// One item of an operator's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Item {
    KeyGroup(u16),
    Entry(u32),
}

impl Item {
    fn tag(self) -> (u8, u32) {
        match self {
            Item::KeyGroup(g) => (b'k', u32::from(g)),
            Item::Entry(e) => (b'e', e),
        }
    }
}

fn record_key(item: Item, chunk: u16) -> Bytes {
    let (tag, id) = item.tag();
    let mut k = Vec::with_capacity(8);
    k.push(KEY_VERSION);
    k.push(tag);
    k.extend_from_slice(&id.to_be_bytes());
    k.extend_from_slice(&chunk.to_be_bytes());
    Bytes::from(k)
}

fn parse_key(key: &[u8]) -> Option<(Item, u16)> {
    if key.len() != 8 || key[0] != KEY_VERSION {
        return None;
    }
    let id = u32::from_be_bytes([key[2], key[3], key[4], key[5]]);
    let chunk = u16::from_be_bytes([key[6], key[7]]);
    let item = match key[1] {
        b'k' => Item::KeyGroup(u16::try_from(id).ok()?),
        b'e' => Item::Entry(id),
        _ => return None,
    };
    Some((item, chunk))
}

/// The topic name of an operator uid's changelog (characters Kafka does not
/// allow in names become `_`).
pub(crate) fn topic_for(application_id: &str, uid: &str) -> String {
    let clean: String = uid
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{application_id}-{clean}-changelog")
}

/// What the last committed checkpoint holds of one item.
#[derive(Debug, Clone)]
struct Written {
    crc: u32,
    /// Records of the item in its changelog (the head and the chunks).
    records: u16,
    len: usize,
    /// The item's bytes (sharing their buffer with the records that wrote
    /// them), unless the cache does not keep them.
    bytes: Option<Bytes>,
}

impl Written {
    /// An item read back from its changelog, where it has `records` records.
    fn read_back(bytes: Vec<u8>, records: u16) -> Written {
        Written {
            crc: crc32c::crc32c(&bytes),
            records,
            len: bytes.len(),
            bytes: Some(Bytes::from(bytes)),
        }
    }
}

/// The records of an item of `bytes`, head first: the value of each (the
/// chunks are slices of `bytes`).
fn item_values(bytes: &Bytes) -> Vec<Bytes> {
    let most = usize::from(u16::MAX) - 1;
    let size = CHUNK.max(bytes.len().div_ceil(most));
    let chunks = bytes.len().div_ceil(size);
    let mut values = Vec::with_capacity(chunks + 1);
    let mut head = vec![HEAD_VERSION];
    head.extend_from_slice(&(chunks as u16).to_be_bytes());
    values.push(Bytes::from(head));
    for i in 0..chunks {
        values.push(bytes.slice(i * size..((i + 1) * size).min(bytes.len())));
    }
    values
}

/// An item's bytes from its records' values by record number, and how many
/// records it has; either format of the module doc.
fn assemble(
    topic: &str,
    item: Item,
    values: &BTreeMap<u16, Bytes>,
) -> Result<(Vec<u8>, u16), ConnectorError> {
    let unknown = || {
        ConnectorError::Refused(format!(
            "{topic}: changelog record of {item:?} has an unknown format"
        ))
    };
    let missing = |i: u16, n: u16| {
        ConnectorError::Refused(format!("{topic}: chunk {i} of {n} of {item:?} is missing"))
    };
    let first = values.get(&0).ok_or_else(unknown)?;
    if first.len() < 3 {
        return Err(unknown());
    }
    let n = u16::from_be_bytes([first[1], first[2]]);
    let mut bytes = Vec::new();
    match first[0] {
        HEAD_VERSION if first.len() == 3 && n < u16::MAX => {
            let total: usize = (1..=n).filter_map(|i| values.get(&i)).map(Bytes::len).sum();
            bytes.reserve_exact(total);
            for i in 1..=n {
                bytes.extend_from_slice(values.get(&i).ok_or_else(|| missing(i, n))?);
            }
            Ok((bytes, n + 1))
        }
        LEGACY_VERSION => {
            for i in 0..n {
                let c = values
                    .get(&i)
                    .filter(|c| c.len() >= 3 && c[0] == LEGACY_VERSION)
                    .ok_or_else(|| missing(i, n))?;
                bytes.extend_from_slice(&c[3..]);
            }
            Ok((bytes, n))
        }
        _ => Err(unknown()),
    }
}

/// Changes of one checkpoint, applied to the cache once its transaction committed.
pub(crate) struct Pending {
    put: Vec<(String, Item, Written)>,
    removed: Vec<(String, Item)>,
    /// Bytes written (for metrics).
    pub bytes: usize,
}

#[derive(Default)]
struct Cache {
    /// Per operator uid and item: what is committed.
    written: BTreeMap<String, BTreeMap<Item, Written>>,
    /// Key groups whose state the cache holds (owned in the last incarnation).
    owned: BTreeSet<u16>,
    /// Changelog topics known to exist.
    topics: BTreeSet<String>,
    /// State of key groups being adopted, read from the changelogs: it joins
    /// `written` once the checkpoint that adopts them committed.
    staged: BTreeMap<String, BTreeMap<Item, Written>>,
}

/// The state of `written` as a checkpoint with id `id`: operators numbered in
/// uid order, matched to the pipeline's by their uids.
fn checkpoint_of(
    written: &BTreeMap<String, BTreeMap<Item, Written>>,
    id: CheckpointId,
) -> Checkpoint {
    let mut cp = Checkpoint {
        id,
        ..Default::default()
    };
    for (n, (uid, items)) in written.iter().enumerate() {
        if items.is_empty() {
            continue;
        }
        let op = OperatorId(n as u32);
        let mut state = OperatorState::default();
        for (item, w) in items {
            let Some(bytes) = &w.bytes else { continue };
            match item {
                Item::KeyGroup(g) => {
                    state.key_groups.insert(*g, bytes.to_vec());
                }
                Item::Entry(e) => {
                    state.entries.insert(*e, bytes.to_vec());
                }
            }
        }
        cp.operators.insert(op, state);
        cp.uids.insert(op, uid.clone());
    }
    cp
}

/// The changelogs of one pipeline in this process (see the module doc).
pub(crate) struct Changelog {
    config: KafkaConfig,
    /// Partitions of every changelog topic.
    partitions: i32,
    /// Key groups are source partitions.
    aligned: bool,
    /// The cache keeps the key groups' bytes (`strom.state.local.recovery`).
    local_recovery: bool,
    cache: Mutex<Cache>,
}

impl Changelog {
    pub(crate) fn new(config: KafkaConfig, partitions: i32, aligned: bool) -> Changelog {
        Changelog {
            local_recovery: config.local_recovery(),
            config,
            partitions: partitions.max(1),
            aligned,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// `w` as the cache keeps it: the bytes of an entry always (other
    /// processes may write entries of the same number), of a key group only
    /// with local recovery.
    fn cached(&self, item: Item, w: &mut Written) {
        if matches!(item, Item::KeyGroup(_)) && !self.local_recovery {
            w.bytes = None;
        }
    }

    /// Every item of `written` as the cache keeps it.
    fn cached_all(&self, written: &mut BTreeMap<String, BTreeMap<Item, Written>>) {
        for (item, w) in written.values_mut().flat_map(|items| items.iter_mut()) {
            self.cached(*item, w);
        }
    }

    /// The changelog topic of operator `uid`.
    pub(crate) fn topic(&self, uid: &str) -> String {
        topic_for(self.config.application_id(), uid)
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        lock(&self.cache)
    }

    fn partition_of(&self, item: Item) -> i32 {
        match item {
            Item::KeyGroup(g) if self.aligned => i32::from(g),
            Item::KeyGroup(g) => i32::from(g) % self.partitions,
            Item::Entry(_) => 0,
        }
    }

    /// Whether this process owns `item` now (only owned items are written or
    /// deleted: the others belong to other processes).
    fn owns(owned: &BTreeSet<u16>, aligned: bool, item: Item) -> bool {
        match item {
            Item::KeyGroup(g) => !aligned || owned.contains(&g),
            Item::Entry(_) => true,
        }
    }

    /// The records that bring the changelogs from the last committed checkpoint to
    /// `cp`, and the cache update to apply once they committed. Takes the state
    /// out of `cp`: the records and the cache share its bytes.
    pub(crate) fn diff(&self, cp: &mut Checkpoint) -> (Vec<ProducerRecord>, Pending) {
        let cache = self.lock();
        let app = self.config.application_id();
        let mut records = Vec::new();
        let mut pending = Pending {
            put: Vec::new(),
            removed: Vec::new(),
            bytes: 0,
        };
        let empty = BTreeMap::new();
        // An operator whose state became empty is left out of the checkpoint: its
        // items written before must go too.
        for (op, uid) in &cp.uids {
            let state = cp
                .operators
                .get_mut(op)
                .map(std::mem::take)
                .unwrap_or_default();
            if state.is_empty() && !cache.written.contains_key(uid) {
                continue;
            }
            let topic = topic_for(app, uid);
            let before = cache.written.get(uid).unwrap_or(&empty);
            let items = state
                .key_groups
                .into_iter()
                .map(|(g, b)| (Item::KeyGroup(g), b))
                .chain(state.entries.into_iter().map(|(e, b)| (Item::Entry(e), b)));
            let mut now = BTreeSet::new();
            for (item, bytes) in items {
                if !Self::owns(&cache.owned, self.aligned, item) {
                    // Another process's now (released): writing it would
                    // overwrite that process's state.
                    tracing::warn!(
                        uid,
                        ?item,
                        "state of a key group this process does not own; not written"
                    );
                    continue;
                }
                now.insert(item);
                let crc = crc32c::crc32c(&bytes);
                let old = before.get(&item);
                if old.is_some_and(|w| w.crc == crc && w.len == bytes.len()) {
                    continue;
                }
                let bytes = Bytes::from(bytes);
                let values = item_values(&bytes);
                let n = values.len() as u16;
                for (i, v) in values.into_iter().enumerate() {
                    pending.bytes += v.len();
                    records.push(self.record(&topic, item, i as u16, Some(v)));
                }
                for i in n..old.map_or(0, |w| w.records) {
                    records.push(self.record(&topic, item, i, None));
                }
                pending.put.push((
                    uid.clone(),
                    item,
                    Written {
                        crc,
                        records: n,
                        len: bytes.len(),
                        bytes: Some(bytes),
                    },
                ));
            }
            for (item, w) in before {
                if now.contains(item) || !Self::owns(&cache.owned, self.aligned, *item) {
                    continue;
                }
                for i in 0..w.records {
                    records.push(self.record(&topic, *item, i, None));
                }
                pending.removed.push((uid.clone(), *item));
            }
        }
        (records, pending)
    }

    fn record(&self, topic: &str, item: Item, chunk: u16, value: Option<Bytes>) -> ProducerRecord {
        ProducerRecord {
            topic: topic.to_string(),
            partition: Some(self.partition_of(item)),
            key: Some(record_key(item, chunk)),
            value,
            ..Default::default()
        }
    }

    /// Key groups this process gave up at a committed checkpoint: it no longer
    /// writes or deletes their items, and the cache forgets them.
    pub(crate) fn release(&self, groups: &BTreeSet<u16>) {
        if !self.aligned {
            return;
        }
        let mut cache = self.lock();
        cache.owned.retain(|g| !groups.contains(g));
        for items in cache.written.values_mut() {
            items.retain(|item, _| !matches!(item, Item::KeyGroup(g) if groups.contains(g)));
        }
    }

    /// Applies a committed checkpoint's changes to the cache.
    pub(crate) fn committed(&self, pending: Pending) {
        let mut cache = self.lock();
        for (uid, item, mut w) in pending.put {
            self.cached(item, &mut w);
            cache.written.entry(uid).or_default().insert(item, w);
        }
        for (uid, item) in pending.removed {
            if let Some(m) = cache.written.get_mut(&uid) {
                m.remove(&item);
            }
        }
    }

    /// Creates the changelog topics of `uids` that do not exist (compacted, with
    /// this pipeline's partition count), and checks those that do.
    pub(crate) async fn ensure_topics(
        &self,
        admin: &Admin,
        uids: impl Iterator<Item = &String>,
    ) -> Result<(), ConnectorError> {
        let app = self.config.application_id().to_string();
        let wanted: Vec<String> = {
            let cache = self.lock();
            uids.map(|u| topic_for(&app, u))
                .filter(|t| !cache.topics.contains(t))
                .collect()
        };
        topics::ensure_compacted_all(admin, &self.config, &wanted, self.partitions).await?;
        self.lock().topics.extend(wanted);
        Ok(())
    }

    /// The committed state of the key groups `owned` (every key group when key
    /// groups are not source partitions) for the operators `uids`, as a
    /// checkpoint with id `id`: from the cache where this process owned them
    /// before, else read from the changelogs. Sets the cache to exactly that.
    pub(crate) async fn restore(
        &self,
        admin: &Admin,
        uids: &BTreeMap<OperatorId, String>,
        owned: &BTreeSet<u16>,
        id: CheckpointId,
    ) -> Result<(Checkpoint, Duration, usize), ConnectorError> {
        let started = Instant::now();
        let app = self.config.application_id().to_string();
        let (cached_groups, mut written) = {
            let cache = self.lock();
            (cache.owned.clone(), cache.written.clone())
        };
        // Key groups this process no longer owns leave the cache; their state is
        // another process's now. Those whose bytes it did not keep are read again.
        for items in written.values_mut() {
            items.retain(|item, w| Self::owns(owned, self.aligned, *item) && w.bytes.is_some());
        }
        let missing: BTreeSet<u16> = if self.aligned {
            owned.difference(&cached_groups).copied().collect()
        } else {
            BTreeSet::new()
        };
        let first = !self.local_recovery || (cached_groups.is_empty() && written.is_empty());
        let mut bytes_read = 0usize;
        for uid in uids.values() {
            let topic = topic_for(&app, uid);
            if !topics::exists(admin, &topic).await? {
                continue;
            }
            let partitions: Vec<i32> = if first {
                (0..self.partitions).collect()
            } else {
                missing.iter().map(|g| i32::from(*g)).collect()
            };
            let partitions: Vec<i32> = if self.aligned {
                let mut p: Vec<i32> = partitions
                    .into_iter()
                    .filter(|p| owned.contains(&(*p as u16)))
                    .collect();
                p.sort();
                p.dedup();
                p
            } else {
                partitions
            };
            if partitions.is_empty() {
                continue;
            }
            let (items, read) = self.read(admin, &topic, &partitions).await?;
            bytes_read += read;
            let target = written.entry(uid.clone()).or_default();
            for (item, (bytes, records)) in items {
                if !Self::owns(owned, self.aligned, item) {
                    continue;
                }
                // Entries already cached are this process's newer view.
                if matches!(item, Item::Entry(_)) && target.contains_key(&item) {
                    continue;
                }
                target.insert(item, Written::read_back(bytes, records));
            }
        }
        let cp = checkpoint_of(&written, id);
        self.cached_all(&mut written);
        let mut cache = self.lock();
        cache.written = written;
        cache.owned = owned.clone();
        cache.staged.clear();
        Ok((cp, started.elapsed(), bytes_read))
    }

    /// The committed state of the key groups `groups`, which this process takes
    /// on while its job runs (partition-aligned only), as a checkpoint for
    /// [`engine::JobController::adopt`]; the cache holds it apart until
    /// [`Changelog::adopted`].
    pub(crate) async fn read_adopted(
        &self,
        admin: &Admin,
        uids: &BTreeMap<OperatorId, String>,
        groups: &BTreeSet<u16>,
    ) -> Result<(Checkpoint, Duration, usize), ConnectorError> {
        let started = Instant::now();
        if !self.aligned {
            return Err(ConnectorError::Refused(
                "key groups are not source partitions: no partition's state can be adopted".into(),
            ));
        }
        let app = self.config.application_id().to_string();
        let partitions: Vec<i32> = groups.iter().map(|g| i32::from(*g)).collect();
        let mut staged: BTreeMap<String, BTreeMap<Item, Written>> = BTreeMap::new();
        let mut bytes_read = 0usize;
        for uid in uids.values() {
            let topic = topic_for(&app, uid);
            if !topics::exists(admin, &topic).await? {
                continue;
            }
            let (items, read) = self.read(admin, &topic, &partitions).await?;
            bytes_read += read;
            let target = staged.entry(uid.clone()).or_default();
            for (item, (bytes, records)) in items {
                if !matches!(item, Item::KeyGroup(g) if groups.contains(&g)) {
                    continue;
                }
                target.insert(item, Written::read_back(bytes, records));
            }
        }
        let cp = checkpoint_of(&staged, CheckpointId(0));
        self.lock().staged = staged;
        Ok((cp, started.elapsed(), bytes_read))
    }

    /// Key groups adopted at a committed checkpoint: this process writes them
    /// from now on, starting from the state read for them.
    pub(crate) fn adopted(&self, groups: &BTreeSet<u16>) {
        let mut cache = self.lock();
        cache.owned.extend(groups.iter().copied());
        let staged = std::mem::take(&mut cache.staged);
        for (uid, items) in staged {
            let target = cache.written.entry(uid).or_default();
            for (item, mut w) in items {
                if matches!(item, Item::KeyGroup(g) if groups.contains(&g)) {
                    self.cached(item, &mut w);
                    target.insert(item, w);
                }
            }
        }
    }

    /// Every item of `partitions` of `topic`, read with read_committed up to the
    /// last stable offset, newest value per key, chunks reassembled.
    async fn read(
        &self,
        admin: &Admin,
        topic: &str,
        partitions: &[i32],
    ) -> Result<(BTreeMap<Item, (Vec<u8>, u16)>, usize), ConnectorError> {
        let ends = settled_ends(admin, topic, partitions).await?;
        let starts = admin
            .list_offsets(
                topic,
                partitions,
                OffsetSpec::Earliest,
                IsolationLevel::ReadCommitted,
            )
            .await
            .map_err(|e| ConnectorError::kafka(format!("start offsets of {topic}"), e))?;
        let mut todo: BTreeMap<i32, (i64, i64)> = partitions
            .iter()
            .filter_map(|p| {
                let end = ends.get(p)?.offset;
                let start = starts.get(p).map_or(0, |o| o.offset.max(0));
                (end > start).then_some((*p, (start, end)))
            })
            .collect();
        let mut latest: HashMap<(Item, u16), Option<Bytes>> = HashMap::new();
        let mut bytes_read = 0usize;
        if !todo.is_empty() {
            let config = self.config.consumer_config(&[
                ("isolation.level", "read_committed".into()),
                ("group.id", String::new()),
                ("enable.auto.commit", "false".into()),
                ("auto.offset.reset", "earliest".into()),
                // Every partition ends in a transaction marker, which the last
                // fetch only passes after waiting for more records: a restore
                // reads what is there and stops.
                ("fetch.max.wait.ms", RESTORE_FETCH_WAIT_MS.to_string()),
            ])?;
            let mut consumer = Consumer::new(config)
                .await
                .map_err(|e| ConnectorError::kafka("restore consumer", e))?;
            consumer.assign(todo.keys().map(|p| (topic.to_string(), *p)));
            for (p, (start, _)) in &todo {
                consumer.seek(topic, *p, *start);
            }
            // However large the state, reading goes on while it moves forward.
            let mut last_progress = Instant::now();
            while !todo.is_empty() {
                if last_progress.elapsed() > RESTORE_STALL {
                    return Err(ConnectorError::Refused(format!(
                        "restoring {topic}: partitions {:?} did not move towards their end for {} s",
                        todo.keys().collect::<Vec<_>>(),
                        RESTORE_STALL.as_secs()
                    )));
                }
                let batches = tokio::time::timeout(Duration::from_secs(1), consumer.poll_batches())
                    .await
                    .unwrap_or(Ok(Vec::new()))
                    .map_err(|e| ConnectorError::kafka(format!("reading {topic}"), e))?;
                for b in batches {
                    let Some((_, end)) = todo.get(&b.partition).copied() else {
                        continue;
                    };
                    last_progress = Instant::now();
                    for r in b.records {
                        if r.offset >= end {
                            break;
                        }
                        let Some(key) = r.key.as_deref().and_then(parse_key) else {
                            continue;
                        };
                        bytes_read += r.value.as_ref().map_or(0, Bytes::len);
                        latest.insert(key, r.value);
                    }
                    if b.next_offset >= end {
                        todo.remove(&b.partition);
                    }
                }
            }
            consumer.close().await;
        }
        let mut parts: BTreeMap<Item, BTreeMap<u16, Bytes>> = BTreeMap::new();
        for ((item, chunk), value) in latest {
            if let Some(v) = value {
                parts.entry(item).or_default().insert(chunk, v);
            }
        }
        let mut items = BTreeMap::new();
        for (item, values) in parts {
            if !values.contains_key(&0) {
                // Chunks whose head was deleted: the item is gone.
                continue;
            }
            items.insert(item, assemble(topic, item, &values)?);
        }
        Ok((items, bytes_read))
    }
}

/// The end offsets of `partitions` once no transaction is open on them: the
/// previous owner's last commit may still be writing its markers here (the
/// offsets it committed are already stable), or its unfinished transaction may
/// not be aborted yet. Only this process writes these partitions now, so the
/// wait ends with the previous owner's transaction (at most its timeout).
async fn settled_ends(
    admin: &Admin,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, kafka_wire::client::admin::ListedOffset>, ConnectorError> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let committed = admin
            .list_offsets(
                topic,
                partitions,
                OffsetSpec::Latest,
                IsolationLevel::ReadCommitted,
            )
            .await
            .map_err(|e| ConnectorError::kafka(format!("end offsets of {topic}"), e))?;
        let written = admin
            .list_offsets(
                topic,
                partitions,
                OffsetSpec::Latest,
                IsolationLevel::ReadUncommitted,
            )
            .await
            .map_err(|e| ConnectorError::kafka(format!("end offsets of {topic}"), e))?;
        let open: Vec<i32> = partitions
            .iter()
            .copied()
            .filter(|p| committed.get(p).map(|o| o.offset) != written.get(p).map(|o| o.offset))
            .collect();
        if open.is_empty() {
            return Ok(committed);
        }
        if Instant::now() > deadline {
            return Err(ConnectorError::Refused(format!(
                "restoring {topic}: partitions {open:?} still have an open transaction after 120 s"
            )));
        }
        tracing::debug!(
            topic,
            ?open,
            "waiting for an open transaction on the changelog to end"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(groups: &[(u16, Vec<u8>)]) -> Checkpoint {
        let mut state = OperatorState::default();
        for (g, b) in groups {
            state.key_groups.insert(*g, b.clone());
        }
        Checkpoint {
            id: CheckpointId(1),
            operators: [(OperatorId(3), state)].into(),
            uids: [(OperatorId(3), "window".to_string())].into(),
            released: Default::default(),
            adopted: Default::default(),
            ..Default::default()
        }
    }

    #[test]
    fn only_changed_items_are_written_and_vanished_ones_get_tombstones() {
        let c = Changelog::new(KafkaConfig::new("127.0.0.1:9092", "app"), 4, false);
        let (records, pending) = c.diff(&mut checkpoint(&[(1, vec![1; 10]), (6, vec![2; 10])]));
        assert_eq!(records.len(), 4, "a head and a chunk each");
        assert_eq!(records[0].topic, "app-window-changelog");
        assert_eq!(records[3].partition, Some(2), "key group 6 of 4 partitions");
        c.committed(pending);
        let (records, pending) = c.diff(&mut checkpoint(&[(1, vec![1; 10])]));
        assert_eq!(records.len(), 2, "group 1 unchanged, group 6 deleted");
        assert!(records.iter().all(|r| r.value.is_none()));
        assert_eq!(
            parse_key(records[0].key.as_deref().unwrap()),
            Some((Item::KeyGroup(6), 0))
        );
        c.committed(pending);
        let (records, _) = c.diff(&mut checkpoint(&[(1, vec![1; 10])]));
        assert!(records.is_empty());
    }

    #[test]
    fn an_operator_whose_state_emptied_gets_tombstones() {
        let c = Changelog::new(KafkaConfig::new("127.0.0.1:9092", "app"), 4, false);
        let (_, pending) = c.diff(&mut checkpoint(&[(1, vec![1; 10])]));
        c.committed(pending);
        let mut empty = checkpoint(&[]);
        empty.operators.clear();
        let (records, _) = c.diff(&mut empty);
        assert_eq!(records.len(), 2, "{records:?}");
        assert!(records.iter().all(|r| r.value.is_none()));
    }

    #[test]
    fn a_large_item_is_chunked_and_shrinking_deletes_the_extra_chunks() {
        let c = Changelog::new(KafkaConfig::new("127.0.0.1:9092", "app"), 1, false);
        let (records, pending) = c.diff(&mut checkpoint(&[(0, vec![7; CHUNK * 2 + 1])]));
        assert_eq!(records.len(), 4, "a head and three chunks");
        c.committed(pending);
        let (records, _) = c.diff(&mut checkpoint(&[(0, vec![8; 5])]));
        assert_eq!(records.len(), 4);
        assert!(records[0].value.is_some() && records[1].value.is_some());
        assert!(records[2].value.is_none() && records[3].value.is_none());
    }

    /// The values of `records` by record number, as restore keeps them.
    fn values(records: &[ProducerRecord]) -> BTreeMap<u16, Bytes> {
        records
            .iter()
            .filter_map(|r| {
                let (_, i) = parse_key(r.key.as_deref()?)?;
                Some((i, r.value.clone()?))
            })
            .collect()
    }

    #[test]
    fn an_item_reassembles_from_its_records_and_its_chunks_share_the_snapshot() {
        let c = Changelog::new(KafkaConfig::new("127.0.0.1:9092", "app"), 1, false);
        let item: Vec<u8> = (0..CHUNK * 2 + 7).map(|i| (i % 251) as u8).collect();
        let mut cp = checkpoint(&[(0, item.clone())]);
        let (records, pending) = c.diff(&mut cp);
        assert!(cp.operators.values().all(OperatorState::is_empty));
        let written = &pending.put[0].2;
        let chunk = records[1].value.as_ref().unwrap();
        let kept = written.bytes.as_ref().unwrap();
        assert_eq!(chunk.as_ptr(), kept.as_ptr(), "not a copy");
        let (bytes, n) = assemble("t", Item::KeyGroup(0), &values(&records)).unwrap();
        assert_eq!((bytes, n), (item, 4));
        let (records, _) = c.diff(&mut checkpoint(&[(1, Vec::new())]));
        let (bytes, n) = assemble("t", Item::KeyGroup(1), &values(&records)).unwrap();
        assert_eq!((bytes.len(), n), (0, 1), "an empty item is its head");
    }

    #[test]
    fn changelogs_written_before_head_records_still_read_back() {
        let legacy = |n: u16, chunk: &[u8]| {
            let mut v = vec![LEGACY_VERSION];
            v.extend_from_slice(&n.to_be_bytes());
            v.extend_from_slice(chunk);
            Bytes::from(v)
        };
        let values: BTreeMap<u16, Bytes> = [(0, legacy(2, b"abc")), (1, legacy(2, b"de"))].into();
        let (bytes, n) = assemble("t", Item::Entry(0), &values).unwrap();
        assert_eq!((bytes.as_slice(), n), (&b"abcde"[..], 2));
        let torn: BTreeMap<u16, Bytes> = [(0, legacy(2, b"abc"))].into();
        let e = assemble("t", Item::Entry(0), &torn).unwrap_err();
        assert!(e.to_string().contains("chunk 1 of 2"), "{e}");
        let odd: BTreeMap<u16, Bytes> = [(0, Bytes::from_static(&[9, 0, 0]))].into();
        assert!(assemble("t", Item::Entry(0), &odd).is_err());
    }

    #[test]
    fn the_cache_keeps_key_groups_bytes_only_with_local_recovery() {
        for local in [false, true] {
            let config = KafkaConfig::new("127.0.0.1:9092", "app")
                .set("strom.state.local.recovery", local.to_string());
            let c = Changelog::new(config, 4, false);
            let mut cp = checkpoint(&[(1, vec![1; 10])]);
            cp.operators
                .get_mut(&OperatorId(3))
                .unwrap()
                .entries
                .insert(0, vec![5; 4]);
            let (_, pending) = c.diff(&mut cp);
            c.committed(pending);
            {
                let cache = c.lock();
                let items = &cache.written["window"];
                assert_eq!(items[&Item::KeyGroup(1)].bytes.is_some(), local);
                assert!(items[&Item::Entry(0)].bytes.is_some(), "entries always");
            }
            let (records, _) = c.diff(&mut checkpoint(&[(1, vec![1; 10])]));
            assert_eq!(records.len(), 2, "only the entry's tombstones: {records:?}");
            assert!(records.iter().all(|r| r.value.is_none()));
        }
    }

    #[test]
    fn key_groups_of_other_processes_are_never_deleted() {
        let c = Changelog::new(KafkaConfig::new("127.0.0.1:9092", "app"), 4, true);
        c.lock().owned = [0, 1].into();
        let (_, pending) = c.diff(&mut checkpoint(&[(0, vec![1]), (1, vec![2])]));
        c.committed(pending);
        // Partition 1 moved away: the cache is narrowed on the next restore; until
        // then an unowned group is left alone.
        c.lock().owned = [0].into();
        let (records, _) = c.diff(&mut checkpoint(&[(0, vec![1])]));
        assert!(records.is_empty(), "{records:?}");
    }

    #[test]
    fn uids_become_valid_topic_names() {
        assert_eq!(
            topic_for("app", "count by url"),
            "app-count_by_url-changelog"
        );
    }
}
