//! Runtime support for the generated codecs: the [`Codec`] trait every generated struct
//! implements, and bounds-checked readers and writers for strings, bytes, arrays and
//! tagged fields in their classic and compact (flexible) forms.
//!
//! Hostile input: every length is checked against the bytes that remain before anything
//! is allocated, negative lengths are null (or an error where null is not allowed), and
//! tagged-field sections are bounded by their own size prefixes.

use bytes::{Buf, BufMut, Bytes};

use crate::error::{Error, Result};
use crate::protocol::Uuid;
use crate::protocol::primitives::{ensure, uvarint_len};
pub use crate::protocol::primitives::{
    put_uvarint, read_f64, read_i8, read_i16, read_i32, read_i64, read_u16, read_u32, read_uvarint,
};

/// Versioned encoding of a generated struct or of an array element.
///
/// `compact` says whether strings, bytes and arrays use the compact (flexible) form; it
/// matters for primitive array elements only: structs know their own flexibility from
/// the version. Top-level messages wrap this in [`Message`](crate::protocol::Message),
/// which also checks the version.
pub trait Codec: Sized {
    /// Reads one value.
    fn read<B: Buf>(buf: &mut B, version: i16, compact: bool) -> Result<Self>;
    /// Writes one value.
    fn write<B: BufMut>(&self, buf: &mut B, version: i16, compact: bool) -> Result<()>;
    /// The bytes [`Codec::write`] writes (when it succeeds).
    fn size(&self, version: i16, compact: bool) -> usize;
}

/// Fails with [`Error::UnsupportedVersion`] unless `version` is in `valid`.
pub fn check_version(message: &'static str, valid: super::Versions, version: i16) -> Result<()> {
    if valid.contains(version) {
        Ok(())
    } else {
        Err(Error::UnsupportedVersion { message, version })
    }
}

/// Fails unless every byte of `buf` was consumed (tagged field values, whole bodies).
pub fn ensure_consumed<B: Buf>(buf: &B, context: &'static str) -> Result<()> {
    if buf.has_remaining() {
        return Err(Error::InvalidLength {
            context,
            length: buf.remaining() as i64,
        });
    }
    Ok(())
}

/// Converts a count or size to the u32 of an unsigned varint.
pub fn to_u32(n: usize, context: &'static str) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::Encode {
        context,
        message: format!("{n} does not fit in 32 bits"),
    })
}

/// Reads a BOOLEAN (any non-zero byte is true).
pub fn read_bool<B: Buf>(buf: &mut B, context: &'static str) -> Result<bool> {
    Ok(read_i8(buf, context)? != 0)
}

/// Reads a UUID.
pub fn read_uuid<B: Buf>(buf: &mut B, context: &'static str) -> Result<Uuid> {
    ensure(buf, 16, context)?;
    let mut id = [0u8; 16];
    buf.copy_to_slice(&mut id);
    Ok(Uuid(id))
}

/// Bytes an unsigned varint of `value` takes.
pub fn uvarint_size(value: u32) -> usize {
    uvarint_len(value)
}

/// Bytes an unsigned varint of `value` takes (saturating above `u32::MAX`).
pub fn usize_uvarint_size(value: usize) -> usize {
    uvarint_len(u32::try_from(value).unwrap_or(u32::MAX))
}

/// Reads a length prefix: `i16`/`i32` classic or unsigned varint `N + 1` compact.
/// `None` is null (a negative classic length, or compact zero). Checks the length
/// against the bytes that remain, so callers can allocate it.
fn read_len<B: Buf>(
    buf: &mut B,
    compact: bool,
    wide: bool,
    context: &'static str,
) -> Result<Option<usize>> {
    let len: i64 = if compact {
        i64::from(read_uvarint(buf, context)?) - 1
    } else if wide {
        i64::from(read_i32(buf, context)?)
    } else {
        i64::from(read_i16(buf, context)?)
    };
    if len < 0 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| Error::InvalidLength {
        context,
        length: len,
    })?;
    ensure(buf, len, context)?;
    Ok(Some(len))
}

fn write_len<B: BufMut>(
    buf: &mut B,
    len: Option<usize>,
    compact: bool,
    wide: bool,
    context: &'static str,
) -> Result<()> {
    match (len, compact) {
        (None, true) => buf.put_u8(0),
        (None, false) if wide => buf.put_i32(-1),
        (None, false) => buf.put_i16(-1),
        (Some(n), true) => {
            let n = n.checked_add(1).and_then(|n| u32::try_from(n).ok());
            put_uvarint(buf, n.ok_or_else(|| too_long(context))?);
        }
        (Some(n), false) if wide => buf.put_i32(i32::try_from(n).map_err(|_| too_long(context))?),
        (Some(n), false) => buf.put_i16(i16::try_from(n).map_err(|_| too_long(context))?),
    }
    Ok(())
}

fn too_long(context: &'static str) -> Error {
    Error::Encode {
        context,
        message: "too long for its length prefix".into(),
    }
}

fn len_size(len: Option<usize>, compact: bool, wide: bool) -> usize {
    match (len, compact) {
        (None, true) => 1,
        (Some(n), true) => usize_uvarint_size(n.saturating_add(1)),
        (_, false) if wide => 4,
        (_, false) => 2,
    }
}

fn null_error(field: &'static str, version: i16) -> Error {
    Error::NullNotAllowed { field, version }
}

fn read_utf8<B: Buf>(buf: &mut B, len: usize, context: &'static str) -> Result<String> {
    // `len` was checked against the remaining bytes by `read_len`.
    let mut v = vec![0u8; len];
    buf.copy_to_slice(&mut v);
    String::from_utf8(v).map_err(|_| Error::InvalidUtf8 { context })
}

/// Reads a non-null STRING / COMPACT_STRING.
pub fn read_string<B: Buf>(
    buf: &mut B,
    compact: bool,
    field: &'static str,
    version: i16,
) -> Result<String> {
    match read_len(buf, compact, false, field)? {
        Some(len) => read_utf8(buf, len, field),
        None => Err(null_error(field, version)),
    }
}

/// Reads a NULLABLE_STRING / COMPACT_NULLABLE_STRING; null is an error unless `nullable`.
pub fn read_nullable_string<B: Buf>(
    buf: &mut B,
    compact: bool,
    nullable: bool,
    field: &'static str,
    version: i16,
) -> Result<Option<String>> {
    match read_len(buf, compact, false, field)? {
        Some(len) => Ok(Some(read_utf8(buf, len, field)?)),
        None if nullable => Ok(None),
        None => Err(null_error(field, version)),
    }
}

/// Writes a STRING / COMPACT_STRING.
pub fn write_string<B: BufMut>(
    buf: &mut B,
    s: &str,
    compact: bool,
    field: &'static str,
) -> Result<()> {
    write_len(buf, Some(s.len()), compact, false, field)?;
    buf.put_slice(s.as_bytes());
    Ok(())
}

/// Writes a nullable string; `None` is an error unless `nullable`.
pub fn write_nullable_string<B: BufMut>(
    buf: &mut B,
    s: Option<&str>,
    compact: bool,
    nullable: bool,
    field: &'static str,
    version: i16,
) -> Result<()> {
    match s {
        Some(s) => write_string(buf, s, compact, field),
        None if nullable => write_len(buf, None, compact, false, field),
        None => Err(null_error(field, version)),
    }
}

/// Encoded size of a string.
pub fn string_size(s: &str, compact: bool) -> usize {
    len_size(Some(s.len()), compact, false) + s.len()
}

/// Encoded size of a nullable string.
pub fn nullable_string_size(s: Option<&str>, compact: bool) -> usize {
    len_size(s.map(str::len), compact, false) + s.map_or(0, str::len)
}

/// Reads non-null BYTES / COMPACT_BYTES (zero-copy when `buf` is [`Bytes`]).
pub fn read_bytes<B: Buf>(
    buf: &mut B,
    compact: bool,
    field: &'static str,
    version: i16,
) -> Result<Bytes> {
    match read_len(buf, compact, true, field)? {
        Some(len) => Ok(buf.copy_to_bytes(len)),
        None => Err(null_error(field, version)),
    }
}

/// Reads nullable bytes (or records); null is an error unless `nullable`.
pub fn read_nullable_bytes<B: Buf>(
    buf: &mut B,
    compact: bool,
    nullable: bool,
    field: &'static str,
    version: i16,
) -> Result<Option<Bytes>> {
    match read_len(buf, compact, true, field)? {
        Some(len) => Ok(Some(buf.copy_to_bytes(len))),
        None if nullable => Ok(None),
        None => Err(null_error(field, version)),
    }
}

/// Writes BYTES / COMPACT_BYTES.
pub fn write_bytes<B: BufMut>(
    buf: &mut B,
    b: &Bytes,
    compact: bool,
    field: &'static str,
) -> Result<()> {
    write_len(buf, Some(b.len()), compact, true, field)?;
    buf.put_slice(b);
    Ok(())
}

/// Writes nullable bytes (or records); `None` is an error unless `nullable`.
pub fn write_nullable_bytes<B: BufMut>(
    buf: &mut B,
    b: Option<&Bytes>,
    compact: bool,
    nullable: bool,
    field: &'static str,
    version: i16,
) -> Result<()> {
    match b {
        Some(b) => write_bytes(buf, b, compact, field),
        None if nullable => write_len(buf, None, compact, true, field),
        None => Err(null_error(field, version)),
    }
}

/// Encoded size of bytes.
pub fn bytes_size(b: &Bytes, compact: bool) -> usize {
    len_size(Some(b.len()), compact, true) + b.len()
}

/// Encoded size of nullable bytes.
pub fn nullable_bytes_size(b: Option<&Bytes>, compact: bool) -> usize {
    len_size(b.map(Bytes::len), compact, true) + b.map_or(0, Bytes::len)
}

/// Most elements preallocated for an array, whatever its length prefix says; the rest
/// grow as elements actually decode (each takes at least one byte of input).
const MAX_PREALLOC: usize = 1024;

fn read_elems<B: Buf, T: Codec>(
    buf: &mut B,
    len: usize,
    version: i16,
    compact: bool,
) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(len.min(MAX_PREALLOC));
    for _ in 0..len {
        out.push(T::read(buf, version, compact)?);
    }
    Ok(out)
}

/// Reads a non-null ARRAY / COMPACT_ARRAY.
pub fn read_array<B: Buf, T: Codec>(
    buf: &mut B,
    version: i16,
    compact: bool,
    field: &'static str,
) -> Result<Vec<T>> {
    match read_len(buf, compact, true, field)? {
        Some(len) => read_elems(buf, len, version, compact),
        None => Err(null_error(field, version)),
    }
}

/// Reads a nullable array; null is an error unless `nullable`.
pub fn read_nullable_array<B: Buf, T: Codec>(
    buf: &mut B,
    version: i16,
    compact: bool,
    nullable: bool,
    field: &'static str,
) -> Result<Option<Vec<T>>> {
    match read_len(buf, compact, true, field)? {
        Some(len) => Ok(Some(read_elems(buf, len, version, compact)?)),
        None if nullable => Ok(None),
        None => Err(null_error(field, version)),
    }
}

/// Writes an array.
pub fn write_array<B: BufMut, T: Codec>(
    buf: &mut B,
    items: &[T],
    version: i16,
    compact: bool,
    field: &'static str,
) -> Result<()> {
    write_len(buf, Some(items.len()), compact, true, field)?;
    for item in items {
        item.write(buf, version, compact)?;
    }
    Ok(())
}

/// Writes a nullable array; `None` is an error unless `nullable`.
pub fn write_nullable_array<B: BufMut, T: Codec>(
    buf: &mut B,
    items: Option<&[T]>,
    version: i16,
    compact: bool,
    nullable: bool,
    field: &'static str,
) -> Result<()> {
    match items {
        Some(items) => write_array(buf, items, version, compact, field),
        None if nullable => write_len(buf, None, compact, true, field),
        None => Err(null_error(field, version)),
    }
}

/// Encoded size of an array.
pub fn array_size<T: Codec>(items: &[T], version: i16, compact: bool) -> usize {
    len_size(Some(items.len()), compact, true)
        + items
            .iter()
            .map(|i| i.size(version, compact))
            .sum::<usize>()
}

/// Encoded size of a nullable array.
pub fn nullable_array_size<T: Codec>(items: Option<&[T]>, version: i16, compact: bool) -> usize {
    match items {
        Some(items) => array_size(items, version, compact),
        None => len_size(None, compact, true),
    }
}

/// Reads a nullable struct: an INT8 marker (-1 null, 1 present) then the struct.
pub fn read_nullable_struct<B: Buf, T: Codec>(
    buf: &mut B,
    version: i16,
    nullable: bool,
    field: &'static str,
) -> Result<Option<T>> {
    if read_i8(buf, field)? < 0 {
        if nullable {
            return Ok(None);
        }
        return Err(null_error(field, version));
    }
    Ok(Some(T::read(buf, version, false)?))
}

/// Writes a nullable struct with its INT8 presence marker.
pub fn write_nullable_struct<B: BufMut, T: Codec>(
    buf: &mut B,
    value: Option<&T>,
    version: i16,
    nullable: bool,
    field: &'static str,
) -> Result<()> {
    match value {
        Some(v) => {
            buf.put_i8(1);
            v.write(buf, version, false)
        }
        None if nullable => {
            buf.put_i8(-1);
            Ok(())
        }
        None => Err(null_error(field, version)),
    }
}

/// Encoded size of a nullable struct.
pub fn nullable_struct_size<T: Codec>(value: Option<&T>, version: i16) -> usize {
    1 + value.map_or(0, |v| v.size(version, false))
}

/// Reads one tagged field's tag and value bytes (the size prefix checked against the
/// bytes that remain).
pub fn read_tagged_field<B: Buf>(buf: &mut B) -> Result<(u32, Bytes)> {
    let tag = read_uvarint(buf, "tagged field tag")?;
    let size = read_uvarint(buf, "tagged field size")? as usize;
    ensure(buf, size, "tagged field value")?;
    Ok((tag, buf.copy_to_bytes(size)))
}

/// Reads a tagged-field section of a struct that knows no tags.
pub fn read_unknown_tagged_fields<B: Buf>(buf: &mut B, out: &mut Vec<(u32, Bytes)>) -> Result<()> {
    let count = read_uvarint(buf, "tagged field count")?;
    for _ in 0..count {
        out.push(read_tagged_field(buf)?);
    }
    Ok(())
}

fn write_raw_tagged<B: BufMut>(buf: &mut B, tag: u32, data: &Bytes) -> Result<()> {
    put_uvarint(buf, tag);
    put_uvarint(buf, to_u32(data.len(), "tagged field size")?);
    buf.put_slice(data);
    Ok(())
}

/// Writes a whole tagged-field section made of unknown fields only.
pub fn write_unknown_tagged_fields<B: BufMut>(buf: &mut B, fields: &[(u32, Bytes)]) -> Result<()> {
    put_uvarint(buf, to_u32(fields.len(), "tagged field count")?);
    for (tag, data) in fields {
        write_raw_tagged(buf, *tag, data)?;
    }
    Ok(())
}

/// Writes the unknown tagged fields from index `next` whose tag is below `tag` (all of
/// them for `u32::MAX`), so known and unknown fields come out in tag order. Returns the
/// index of the first field not written.
pub fn write_unknown_tagged_until<B: BufMut>(
    buf: &mut B,
    fields: &[(u32, Bytes)],
    mut next: usize,
    tag: u32,
) -> Result<usize> {
    while let Some((t, data)) = fields.get(next) {
        if *t >= tag && tag != u32::MAX {
            break;
        }
        write_raw_tagged(buf, *t, data)?;
        next += 1;
    }
    Ok(next)
}

/// Encoded size of unknown tagged fields (without the count).
pub fn unknown_tagged_fields_size(fields: &[(u32, Bytes)]) -> usize {
    fields
        .iter()
        .map(|(t, d)| uvarint_len(*t) + usize_uvarint_size(d.len()) + d.len())
        .sum()
}

macro_rules! fixed_codec {
    ($($ty:ty, $read:ident, $put:ident, $n:expr;)*) => {$(
        impl Codec for $ty {
            fn read<B: Buf>(buf: &mut B, _version: i16, _compact: bool) -> Result<Self> {
                $read(buf, "array element")
            }
            fn write<B: BufMut>(&self, buf: &mut B, _version: i16, _compact: bool) -> Result<()> {
                buf.$put(*self);
                Ok(())
            }
            fn size(&self, _version: i16, _compact: bool) -> usize {
                $n
            }
        }
    )*};
}

fixed_codec! {
    i8, read_i8, put_i8, 1;
    i16, read_i16, put_i16, 2;
    u16, read_u16, put_u16, 2;
    i32, read_i32, put_i32, 4;
    u32, read_u32, put_u32, 4;
    i64, read_i64, put_i64, 8;
    f64, read_f64, put_f64, 8;
}

impl Codec for bool {
    fn read<B: Buf>(buf: &mut B, _version: i16, _compact: bool) -> Result<Self> {
        read_bool(buf, "array element")
    }
    fn write<B: BufMut>(&self, buf: &mut B, _version: i16, _compact: bool) -> Result<()> {
        buf.put_u8(u8::from(*self));
        Ok(())
    }
    fn size(&self, _version: i16, _compact: bool) -> usize {
        1
    }
}

impl Codec for Uuid {
    fn read<B: Buf>(buf: &mut B, _version: i16, _compact: bool) -> Result<Self> {
        read_uuid(buf, "array element")
    }
    fn write<B: BufMut>(&self, buf: &mut B, _version: i16, _compact: bool) -> Result<()> {
        buf.put_slice(&self.0);
        Ok(())
    }
    fn size(&self, _version: i16, _compact: bool) -> usize {
        16
    }
}

impl Codec for String {
    fn read<B: Buf>(buf: &mut B, version: i16, compact: bool) -> Result<Self> {
        read_string(buf, compact, "array element", version)
    }
    fn write<B: BufMut>(&self, buf: &mut B, _version: i16, compact: bool) -> Result<()> {
        write_string(buf, self, compact, "array element")
    }
    fn size(&self, _version: i16, compact: bool) -> usize {
        string_size(self, compact)
    }
}
