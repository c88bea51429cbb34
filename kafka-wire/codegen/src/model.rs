//! The spec turned into what the emitter needs: resolved types, version ranges,
//! Rust names, and one flat list of structs per message.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::spec::{Field, Range, Spec};

/// What a spec describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Response,
    Header,
    Data,
}

/// A field type.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    Bool,
    I8,
    I16,
    U16,
    I32,
    U32,
    I64,
    F64,
    Str,
    Bytes,
    Records,
    Uuid,
    Array(Box<Ty>),
    Struct(String),
}

impl Ty {
    fn primitive(s: &str) -> Option<Ty> {
        Some(match s {
            "bool" => Ty::Bool,
            "int8" => Ty::I8,
            "int16" => Ty::I16,
            "uint16" => Ty::U16,
            "int32" => Ty::I32,
            "uint32" => Ty::U32,
            "int64" => Ty::I64,
            "float64" => Ty::F64,
            "string" => Ty::Str,
            "bytes" => Ty::Bytes,
            "records" => Ty::Records,
            "uuid" => Ty::Uuid,
            _ => return None,
        })
    }

    /// The Rust type, without the `Option` of a nullable field.
    pub fn rust(&self) -> String {
        match self {
            Ty::Bool => "bool".into(),
            Ty::I8 => "i8".into(),
            Ty::I16 => "i16".into(),
            Ty::U16 => "u16".into(),
            Ty::I32 => "i32".into(),
            Ty::U32 => "u32".into(),
            Ty::I64 => "i64".into(),
            Ty::F64 => "f64".into(),
            Ty::Str => "String".into(),
            Ty::Bytes | Ty::Records => "Bytes".into(),
            Ty::Uuid => "Uuid".into(),
            Ty::Array(t) => format!("Vec<{}>", t.rust()),
            Ty::Struct(n) => n.clone(),
        }
    }

    pub fn can_be_null(&self) -> bool {
        matches!(
            self,
            Ty::Str | Ty::Bytes | Ty::Records | Ty::Uuid | Ty::Array(_) | Ty::Struct(_)
        )
    }
}

/// A resolved field.
#[derive(Debug, Clone)]
pub struct FieldModel {
    pub json_name: String,
    pub rust_name: String,
    pub ty: Ty,
    /// Whether the Rust type is wrapped in `Option`.
    pub optional: bool,
    pub versions: Range,
    pub nullable: Range,
    /// Versions in which the field is written as a plain (untagged) field.
    pub regular: Range,
    /// Tag and the versions in which the field is tagged.
    pub tagged: Option<(u32, Range)>,
    /// Versions in which strings/bytes/arrays of this field are compact.
    pub compact: Range,
    pub ignorable: bool,
    pub default: String,
    /// A Rust expression (over `{v}`) that is true when the value is not the default.
    pub non_default: String,
    pub about: Option<String>,
    pub map_key: bool,
    pub entity_type: Option<String>,
}

/// A struct: the message itself, a nested struct or a common struct.
#[derive(Debug, Clone)]
pub struct StructModel {
    pub name: String,
    /// The versions in which the struct can appear (what its code must handle).
    pub within: Range,
    pub json_name: String,
    pub about: String,
    pub fields: Vec<FieldModel>,
}

/// One message spec, resolved.
#[derive(Debug, Clone)]
pub struct Msg {
    pub name: String,
    pub module: String,
    pub kind: Kind,
    pub api_key: Option<i16>,
    /// Valid versions offered (an unstable latest version removed).
    pub valid: Range,
    /// The unstable latest version that was removed, if any.
    pub unstable: Option<i16>,
    /// Versions the spec declares (what the struct code handles).
    pub declared: Range,
    pub flexible: Range,
    pub deprecated: Option<Range>,
    pub listeners: Vec<String>,
    /// The message struct first, then nested and common structs.
    pub structs: Vec<StructModel>,
}

impl Msg {
    /// Whether any declared version is flexible (structs then carry tagged fields).
    pub fn has_tags(&self) -> bool {
        !self.flexible.intersect(self.declared).is_empty()
    }
}

/// Names a generated module may not use for a struct, because the generated code
/// refers to them unqualified.
const RESERVED: &[&str] = &[
    "Buf", "BufMut", "Bytes", "Uuid", "Result", "Error", "Message", "Request", "Response", "Codec",
    "Versions", "ApiKey", "Option", "String", "Vec", "Default", "Self", "Some", "None", "Ok",
    "Err", "Box",
];

const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// `ThrottleTimeMs` -> `throttle_time_ms`, `ZkMigrationReady` -> `zk_migration_ready`.
pub fn snake(name: &str) -> String {
    // Kafka's own spelling of its consensus protocol reads as one word.
    let name = name.replace("KRaft", "Kraft");
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// A field identifier, raw when it is a keyword.
pub fn field_ident(name: &str) -> String {
    let s = snake(name);
    if KEYWORDS.contains(&s.as_str()) {
        format!("r#{s}")
    } else {
        s
    }
}

struct Builder<'a> {
    msg_name: &'a str,
    declared: Range,
    flexible: Range,
    common: BTreeMap<String, &'a [Field]>,
    structs: Vec<StructModel>,
    defined: BTreeSet<String>,
}

/// Resolves a parsed spec. `unstable_latest` drops the latest declared version (set for
/// specs marked `latestVersionUnstable` and for the responses of such requests).
pub fn build(spec: &Spec, unstable_latest: bool) -> Result<Msg> {
    let kind = match spec.kind.as_str() {
        "request" => Kind::Request,
        "response" => Kind::Response,
        "header" => Kind::Header,
        "data" => Kind::Data,
        other => bail!("unknown spec type {other:?}"),
    };
    if matches!(kind, Kind::Request | Kind::Response) != spec.api_key.is_some() {
        bail!("apiKey must be given exactly for requests and responses");
    }
    let declared = Range::parse(&spec.valid_versions)?;
    if declared.is_empty() || declared.min < 0 {
        bail!("bad validVersions {}", spec.valid_versions);
    }
    let (valid, unstable) = if unstable_latest {
        let v = Range {
            min: declared.min,
            max: declared.max - 1,
        };
        (
            if v.is_empty() { Range::NONE } else { v },
            Some(declared.max),
        )
    } else {
        (declared, None)
    };
    let flexible = Range::parse(&spec.flexible_versions)?;
    if !flexible.is_empty() && flexible.max != i16::MAX {
        bail!("flexibleVersions must be open-ended");
    }
    let deprecated = spec
        .deprecated_versions
        .as_deref()
        .map(Range::parse)
        .transpose()?;
    let mut b = Builder {
        msg_name: &spec.name,
        declared,
        flexible,
        common: BTreeMap::new(),
        structs: Vec::new(),
        defined: BTreeSet::new(),
    };
    for c in &spec.common_structs {
        Range::parse(&c.versions)?;
        if b.common.insert(c.name.clone(), &c.fields).is_some() {
            bail!("common struct {} defined twice", c.name);
        }
    }
    let about = match kind {
        Kind::Request | Kind::Response => format!(
            "`{}`: api key {} ({}), versions {}, flexible {}.",
            spec.name,
            spec.api_key.unwrap_or(-1),
            api_name(&spec.name),
            valid.human(),
            flexible.human()
        ),
        Kind::Header | Kind::Data => format!(
            "`{}` ({} spec), versions {}, flexible {}.",
            spec.name,
            spec.kind,
            valid.human(),
            flexible.human()
        ),
    };
    b.defined.insert(spec.name.clone());
    let top = b.build_struct(&spec.name, spec.name.clone(), about, &spec.fields, declared)?;
    b.structs.insert(0, top);
    // Common structs nobody referenced are still generated (Kafka generates them too).
    let names: Vec<String> = b.common.keys().cloned().collect();
    for name in names {
        if !b.defined.contains(&name) && !b.defined.contains(&prefixed(&spec.name, &name)) {
            b.define_common(&name)?;
        }
    }
    Ok(Msg {
        name: spec.name.clone(),
        module: snake(&spec.name),
        kind,
        api_key: spec.api_key,
        valid,
        unstable,
        declared,
        flexible,
        deprecated,
        listeners: spec.listeners.clone(),
        structs: b.structs,
    })
}

/// `MetadataRequest` -> `Metadata`.
pub fn api_name(spec_name: &str) -> &str {
    spec_name
        .strip_suffix("Request")
        .or_else(|| spec_name.strip_suffix("Response"))
        .unwrap_or(spec_name)
}

fn prefixed(msg: &str, name: &str) -> String {
    format!("{msg}{name}")
}

impl Builder<'_> {
    fn rust_struct_name(&self, json: &str) -> String {
        if RESERVED.contains(&json) || json == self.msg_name {
            prefixed(self.msg_name, json)
        } else {
            json.to_string()
        }
    }

    /// A common struct can be used from several fields: its code handles every version.
    fn define_common(&mut self, name: &str) -> Result<String> {
        let within = self.declared;
        let rust = self.rust_struct_name(name);
        if self.defined.contains(&rust) {
            return Ok(rust);
        }
        let fields = *self
            .common
            .get(name)
            .with_context(|| format!("no struct {name}"))?;
        self.defined.insert(rust.clone());
        let s = self.build_struct(
            name,
            rust.clone(),
            format!("The common struct `{name}`."),
            fields,
            within,
        )?;
        self.structs.push(s);
        Ok(rust)
    }

    fn resolve(&mut self, f: &Field, ty: &str, within: Range) -> Result<Ty> {
        if let Some(elem) = ty.strip_prefix("[]") {
            if let Some(p) = Ty::primitive(elem) {
                if f.fields.is_some() {
                    bail!("{}: array of primitives has fields", f.name);
                }
                if matches!(p, Ty::Records | Ty::Bytes) {
                    bail!("{}: arrays of {elem} are not supported", f.name);
                }
                return Ok(Ty::Array(Box::new(p)));
            }
            return Ok(Ty::Array(Box::new(self.resolve_struct(f, elem, within)?)));
        }
        if let Some(p) = Ty::primitive(ty) {
            if f.fields.is_some() {
                bail!("{}: primitive field has fields", f.name);
            }
            return Ok(p);
        }
        self.resolve_struct(f, ty, within)
    }

    fn resolve_struct(&mut self, f: &Field, name: &str, within: Range) -> Result<Ty> {
        if !name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            || !name.chars().all(|c| c.is_ascii_alphanumeric())
        {
            bail!("{}: unknown type {name:?}", f.name);
        }
        match &f.fields {
            Some(fields) => {
                if self.common.contains_key(name) {
                    bail!("{}: struct {name} shadows a common struct", f.name);
                }
                let rust = self.rust_struct_name(name);
                if !self.defined.insert(rust.clone()) {
                    bail!("struct {name} defined twice");
                }
                let about = format!("The `{name}` struct of `{}`.", self.msg_name);
                let s = self.build_struct(name, rust.clone(), about, fields, within)?;
                self.structs.push(s);
                Ok(Ty::Struct(rust))
            }
            None => Ok(Ty::Struct(self.define_common(name)?)),
        }
    }

    fn build_struct(
        &mut self,
        json: &str,
        rust: String,
        about: String,
        fields: &[Field],
        within: Range,
    ) -> Result<StructModel> {
        let mut out = Vec::new();
        let mut tags = BTreeSet::new();
        let mut names = BTreeSet::new();
        for f in fields {
            let m = self
                .field(f, within)
                .with_context(|| format!("field {} of {json}", f.name))?;
            if !names.insert(m.rust_name.clone()) || m.rust_name == "unknown_tagged_fields" {
                bail!("duplicate field name {}", m.rust_name);
            }
            if let Some((t, _)) = m.tagged {
                if !tags.insert(t) {
                    bail!("duplicate tag {t} in {json}");
                }
            }
            out.push(m);
        }
        Ok(StructModel {
            name: rust,
            within,
            json_name: json.to_string(),
            about,
            fields: out,
        })
    }

    fn field(&mut self, f: &Field, within: Range) -> Result<FieldModel> {
        let versions = Range::parse(&f.versions)?;
        let ty = self.resolve(f, &f.ty, within.intersect(versions))?;
        let nullable = match &f.nullable_versions {
            Some(s) => Range::parse(s)?,
            None => Range::NONE,
        };
        if !nullable.is_empty() && !ty.can_be_null() {
            bail!("type {} cannot be nullable", f.ty);
        }
        let optional = !nullable.is_empty() || ty == Ty::Records;
        let tag = match &f.tag {
            Some(v) => {
                let t = parse_int(v)?;
                Some(u32::try_from(t).with_context(|| format!("bad tag {t}"))?)
            }
            None => None,
        };
        let tagged = match (tag, &f.tagged_versions) {
            (Some(t), Some(tv)) => {
                let tv = Range::parse(tv)?;
                if tv.max != i16::MAX {
                    bail!("taggedVersions must be open-ended");
                }
                if tv.intersect(self.flexible) != tv {
                    bail!("taggedVersions outside flexibleVersions");
                }
                Some((t, tv))
            }
            (None, None) => None,
            _ => bail!("tag and taggedVersions must come together"),
        };
        let regular = match tagged {
            Some((_, tv)) => {
                let r = Range {
                    min: versions.min,
                    max: versions.max.min(tv.min - 1),
                };
                if r.is_empty() { Range::NONE } else { r }
            }
            None => versions,
        };
        let compact = match &f.flexible_versions {
            Some(s) => Range::parse(s)?,
            None => self.flexible,
        };
        let (default, non_default) =
            default_of(&ty, optional, nullable, versions, f.default.as_ref())?;
        if f.zero_copy && !matches!(ty, Ty::Bytes) {
            bail!("zeroCopy on a non-bytes field");
        }
        Ok(FieldModel {
            json_name: f.name.clone(),
            rust_name: field_ident(&f.name),
            ty,
            optional,
            versions,
            nullable,
            regular,
            tagged,
            compact,
            ignorable: f.ignorable,
            default,
            non_default,
            about: f.about.clone(),
            map_key: f.map_key,
            entity_type: f.entity_type.clone(),
        })
    }
}

fn parse_int(v: &Value) -> Result<i128> {
    let s = match v {
        Value::Number(n) => return n.as_i64().map(i128::from).context("integer default"),
        Value::String(s) => s.trim(),
        _ => bail!("bad integer default {v}"),
    };
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    let n = if let Some(h) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i128::from_str_radix(h, 16)?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i128::from_str_radix(&digits[1..], 8)?
    } else {
        digits.parse::<i128>()?
    };
    Ok(if neg { -n } else { n })
}

fn is_null_default(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::String(s)) if s == "null") || matches!(v, Some(Value::Null))
}

/// The default value expression and the "is not the default" expression over `{v}`.
fn default_of(
    ty: &Ty,
    optional: bool,
    nullable: Range,
    versions: Range,
    default: Option<&Value>,
) -> Result<(String, String)> {
    let ne = |d: &str| format!("{{v}} != {d}");
    let null = is_null_default(default);
    if null && (!optional || nullable.intersect(versions) != versions) {
        bail!("null default on a field that is not nullable in all its versions");
    }
    let int = |min: i128, max: i128| -> Result<(String, String)> {
        let n = match default {
            Some(v) => parse_int(v)?,
            None => 0,
        };
        if n < min || n > max {
            bail!("default {n} out of range");
        }
        Ok((n.to_string(), ne(&n.to_string())))
    };
    match ty {
        Ty::Bool => {
            let b = match default {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) if s == "true" => true,
                Some(Value::String(s)) if s == "false" => false,
                Some(v) => bail!("bad bool default {v}"),
            };
            Ok((b.to_string(), if b { "!{v}".into() } else { "{v}".into() }))
        }
        Ty::I8 => int(i8::MIN.into(), i8::MAX.into()),
        Ty::I16 => int(i16::MIN.into(), i16::MAX.into()),
        Ty::U16 => int(0, u16::MAX.into()),
        Ty::I32 => int(i32::MIN.into(), i32::MAX.into()),
        Ty::U32 => int(0, u32::MAX.into()),
        Ty::I64 => int(i64::MIN.into(), i64::MAX.into()),
        Ty::F64 => {
            let f: f64 = match default {
                None => 0.0,
                Some(Value::Number(n)) => n.as_f64().context("float default")?,
                Some(Value::String(s)) => s.trim().parse()?,
                Some(v) => bail!("bad float default {v}"),
            };
            let lit = format!("{f:?}");
            Ok((lit.clone(), ne(&lit)))
        }
        Ty::Str => {
            let s = match default {
                None => String::new(),
                Some(Value::String(s)) if s != "null" => s.clone(),
                Some(_) if null => String::new(),
                Some(v) => bail!("bad string default {v}"),
            };
            let value = if s.is_empty() {
                "String::new()".to_string()
            } else {
                format!("String::from({s:?})")
            };
            match (optional, null) {
                (true, true) => Ok(("None".into(), "{v}.is_some()".into())),
                (true, false) if s.is_empty() => Ok((
                    "Some(String::new())".into(),
                    "{v}.as_deref() != Some(\"\")".into(),
                )),
                (true, false) => Ok((
                    format!("Some({value})"),
                    format!("{{v}}.as_deref() != Some({s:?})"),
                )),
                (false, _) if s.is_empty() => Ok((value, "!{v}.is_empty()".into())),
                (false, _) => Ok((value, format!("{{v}} != {s:?}"))),
            }
        }
        Ty::Bytes | Ty::Records | Ty::Uuid | Ty::Array(_) | Ty::Struct(_) => {
            if default.is_some() && !null {
                bail!("custom default on a {ty:?} field");
            }
            let (value, empty_check) = match ty {
                Ty::Bytes | Ty::Records => ("Bytes::new()".to_string(), Some("is_empty")),
                Ty::Uuid => ("Uuid::ZERO".to_string(), None),
                Ty::Array(_) => ("Vec::new()".to_string(), Some("is_empty")),
                Ty::Struct(n) => (format!("{n}::default()"), None),
                _ => unreachable!(),
            };
            match (optional, null) {
                (true, true) => Ok(("None".into(), "{v}.is_some()".into())),
                (true, false) => Ok((
                    format!("Some({value})"),
                    match empty_check {
                        Some(m) => format!("{{v}}.as_ref().is_none_or(|x| !x.{m}())"),
                        None => format!("{{v}} != Some({value})"),
                    },
                )),
                (false, _) => Ok((
                    value.clone(),
                    match empty_check {
                        Some(m) => format!("!{{v}}.{m}()"),
                        None => format!("{{v}} != {value}"),
                    },
                )),
            }
        }
    }
}
