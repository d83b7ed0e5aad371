//! A small, strict JSON reader and the serde `Deserializer` over it that configs are parsed
//! with, plus the string escaping local responses are written with.
//!
//! Why not `serde_json` + `serde_path_to_error`: in a filter's `.wasm` the two cost ~40 KB
//! (their code is monomorphised once per config type and again per wrapper), a quarter of a
//! small filter. This reader is one pass into a [`Value`] tree; the deserializer walks the tree
//! and knows where it is, so every error names its field path (`rules[1].status`) without a
//! wrapper. Config parsing runs once per `on_configure`, so a tree costs nothing that matters.
//!
//! Strict where a proxy config should be: UTF-8 only, no trailing content, no duplicate object
//! keys (JSON leaves them undefined; silently taking one would hide an operator's mistake),
//! nesting limited to [`MAX_DEPTH`], numbers per RFC 8259. Floating-point numbers are kept as
//! their text and parsed only if a field asks for a float.

use serde::de::{self, DeserializeSeed, Expected, IntoDeserializer, Unexpected, Visitor};
use std::fmt::{self, Display};

/// Deepest array/object nesting accepted (a config is a few levels deep; a hostile or broken
/// input must not exhaust the stack).
pub const MAX_DEPTH: usize = 64;

/// A parsed JSON value. Objects keep their keys in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// A number, as written (validated against the JSON grammar).
    Number(String),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The value as compact JSON (numbers as they were written).
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    pub(crate) fn write_json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(true) => out.push_str("true"),
            Value::Bool(false) => out.push_str("false"),
            Value::Number(n) => out.push_str(n),
            Value::String(s) => write_string(out, s),
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_json(out);
                }
                out.push(']');
            }
            Value::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(out, k);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }

    /// The value's kind as serde names it in "invalid type" errors.
    fn unexpected(&self) -> Unexpected<'_> {
        match self {
            Value::Null => Unexpected::Unit,
            Value::Bool(b) => Unexpected::Bool(*b),
            Value::Number(n) => match parse_integer(n) {
                Some(Integer::Unsigned(u)) => Unexpected::Unsigned(u),
                Some(Integer::Signed(i)) => Unexpected::Signed(i),
                None => Unexpected::Other("floating point number"),
            },
            Value::String(s) => Unexpected::Str(s),
            Value::Array(_) => Unexpected::Seq,
            Value::Object(_) => Unexpected::Map,
        }
    }
}

/// Why a document could not be read or deserialized, and where: its [`ErrorDetail`] (read
/// through `Deref`: `e.path`, `e.reason`), boxed so that every `Result<T, Error>` of the
/// config readers is the size of `T` and a pointer (moving the two `String`s through each
/// reader's result was a good part of a filter's config code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(Box<ErrorDetail>);

/// What an [`Error`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDetail {
    /// Field path (`rules[1].status`); empty for the document itself.
    pub path: String,
    /// What is wrong.
    pub reason: String,
    /// Whether `path` was set (errors raised by a visitor get the path on the way up).
    located: bool,
}

impl std::ops::Deref for Error {
    type Target = ErrorDetail;
    fn deref(&self) -> &ErrorDetail {
        &self.0
    }
}

impl Error {
    fn new(reason: impl Display) -> Self {
        Self::with_reason(reason.to_string())
    }

    #[inline(never)]
    fn with_reason(reason: String) -> Self {
        Self(Box::new(ErrorDetail {
            path: String::new(),
            reason,
            located: false,
        }))
    }

    /// An error at `path`.
    pub fn located(path: &Path<'_>, reason: impl Display) -> Self {
        Self::new(reason).at(path)
    }

    /// The path and the reason.
    pub fn into_parts(self) -> (String, String) {
        let d = *self.0;
        (d.path, d.reason)
    }

    /// Sets the path unless an inner (deeper) one was already set.
    fn at(mut self, path: &Path<'_>) -> Self {
        if !self.0.located {
            let mut out = String::new();
            path.write_to(&mut out);
            self.0.path = out;
            self.0.located = true;
        }
        self
    }
}

impl Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.path, self.reason)
        }
    }
}

impl std::error::Error for Error {}

/// serde's messages, written here so that serde's own `Unexpected` formatting (which links
/// float printing) is not needed; the wording is serde's.
impl de::Error for Error {
    fn custom<T: Display>(msg: T) -> Self {
        Self::new(msg)
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Self::new(format_args!(
            "invalid type: {}, expected {exp}",
            Describe(&unexp)
        ))
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Self::new(format_args!(
            "invalid value: {}, expected {exp}",
            Describe(&unexp)
        ))
    }
}

/// `Unexpected` as serde words it, without floats (numbers here are integers or named as
/// "floating point number").
struct Describe<'a>(&'a Unexpected<'a>);

impl Display for Describe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self.0 {
            Unexpected::Bool(b) => write!(f, "boolean `{b}`"),
            Unexpected::Unsigned(u) => write!(f, "integer `{u}`"),
            Unexpected::Signed(i) => write!(f, "integer `{i}`"),
            Unexpected::Float(_) => f.write_str("floating point number"),
            Unexpected::Char(c) => write!(f, "character `{c}`"),
            Unexpected::Str(s) => {
                f.write_str("string ")?;
                f.write_str(&quote(s))
            }
            Unexpected::Bytes(_) => f.write_str("byte array"),
            Unexpected::Unit => f.write_str("null"),
            Unexpected::Option => f.write_str("Option value"),
            Unexpected::NewtypeStruct => f.write_str("newtype struct"),
            Unexpected::Seq => f.write_str("array"),
            Unexpected::Map => f.write_str("map"),
            Unexpected::Enum => f.write_str("enum"),
            Unexpected::UnitVariant => f.write_str("unit variant"),
            Unexpected::NewtypeVariant => f.write_str("newtype variant"),
            Unexpected::TupleVariant => f.write_str("tuple variant"),
            Unexpected::StructVariant => f.write_str("struct variant"),
            Unexpected::Other(other) => f.write_str(other),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading

/// Reads one JSON document (surrounding whitespace allowed, nothing else).
pub fn parse(bytes: &[u8]) -> Result<Value, Error> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let mut out = String::from("not UTF-8 (invalid byte at offset ");
        push_decimal(&mut out, e.valid_up_to() as u64);
        out.push(')');
        Error::new(out)
    })?;
    let mut reader = Reader { text, pos: 0 };
    reader.skip_ws();
    let value = reader.value(0)?;
    reader.skip_ws();
    if reader.pos < text.len() {
        return Err(reader.error("trailing characters"));
    }
    Ok(value)
}

struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// `what` at the current position, as line and column (1-based, columns in bytes).
    fn error(&self, what: &str) -> Error {
        let before = self.text.get(..self.pos).unwrap_or(self.text);
        // Bytes, not `char` patterns: `str`'s char searchers were ~0.7 KB of the module.
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        let column = before.len()
            - before
                .bytes()
                .rposition(|b| b == b'\n')
                .map_or(0, |i| i + 1)
            + 1;
        let mut out = cat(&[what, " at line "]);
        push_decimal(&mut out, line as u64);
        out.push_str(" column ");
        push_decimal(&mut out, column as u64);
        Error::new(out)
    }

    fn consume(&mut self, byte: u8, what: &str) -> Result<(), Error> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else if self.peek().is_none() {
            Err(self.error("EOF while parsing a value"))
        } else {
            Err(self.error(what))
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, Error> {
        if self
            .text
            .get(self.pos..)
            .is_some_and(|t| t.starts_with(word))
        {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("expected value"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, Error> {
        match self.peek() {
            None => Err(self.error("EOF while parsing a value")),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'[') => self.array(depth + 1),
            Some(b'{') => self.object(depth + 1),
            Some(_) => Err(self.error("expected value")),
        }
    }

    fn enter(&self, depth: usize) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            let mut what = String::from("nested deeper than ");
            push_decimal(&mut what, MAX_DEPTH as u64);
            what.push_str(" levels");
            Err(self.error(&what))
        } else {
            Ok(())
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, Error> {
        self.enter(depth)?;
        self.pos += 1; // [
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                None => return Err(self.error("EOF while parsing a list")),
                Some(_) => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, Error> {
        self.enter(depth)?;
        let start = self.pos;
        self.pos += 1; // {
        let mut members: Vec<(String, Value)> = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'"') => {}
                None => return Err(self.error("EOF while parsing an object")),
                Some(_) => return Err(self.error("key must be a string")),
            }
            let key = self.string()?;
            self.skip_ws();
            self.consume(b':', "expected `:`")?;
            self.skip_ws();
            let value = self.value(depth)?;
            members.push((key, value));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return match duplicate_key(&members) {
                        None => Ok(Value::Object(members)),
                        Some(key) => {
                            self.pos = start;
                            Err(self.error(&quoted("duplicate key ", key, " in the object")))
                        }
                    };
                }
                None => return Err(self.error("EOF while parsing an object")),
                Some(_) => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    fn number(&mut self) -> Result<Value, Error> {
        let start = self.pos;
        let digits = |r: &mut Self| {
            let from = r.pos;
            while matches!(r.peek(), Some(b'0'..=b'9')) {
                r.pos += 1;
            }
            r.pos > from
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        if self.peek() == Some(b'0') {
            self.pos += 1;
            if matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("invalid number (leading zero)"));
            }
        } else if !digits(self) {
            return Err(self.error("invalid number"));
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !digits(self) {
                return Err(self.error("invalid number (no digit after `.`)"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !digits(self) {
                return Err(self.error("invalid number (no digit in exponent)"));
            }
        }
        let text = self.text.get(start..self.pos).unwrap_or_default();
        Ok(Value::Number(text.to_string()))
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.error("invalid \\u escape"))?;
        // Four hex digits (checked above), without `from_str_radix`'s generic code.
        let n = digits.bytes().fold(0u32, |n, d| {
            n * 16 + char::from(d).to_digit(16).unwrap_or(0)
        });
        self.pos += 4;
        Ok(n)
    }

    fn string(&mut self) -> Result<String, Error> {
        self.pos += 1; // "
        let mut out = String::new();
        loop {
            let rest = self.text.get(self.pos..).unwrap_or_default();
            let run = rest
                .bytes()
                .position(|b| b == b'"' || b == b'\\' || b < 0x20)
                .ok_or_else(|| {
                    let end = Reader {
                        text: self.text,
                        pos: self.text.len(),
                    };
                    end.error("EOF while parsing a string")
                })?;
            out.push_str(rest.get(..run).unwrap_or_default());
            self.pos += run;
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let escape = self.peek();
                    self.pos += 1;
                    match escape {
                        Some(b'"') => out.push('"'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'/') => out.push('/'),
                        Some(b'b') => out.push('\u{8}'),
                        Some(b'f') => out.push('\u{c}'),
                        Some(b'n') => out.push('\n'),
                        Some(b'r') => out.push('\r'),
                        Some(b't') => out.push('\t'),
                        Some(b'u') => {
                            let first = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&first) {
                                // A high surrogate must be followed by `\u` and a low one.
                                if self.text.get(self.pos..self.pos + 2) != Some("\\u") {
                                    return Err(self.error("lone leading surrogate in hex escape"));
                                }
                                self.pos += 2;
                                let second = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&second) {
                                    return Err(self.error("invalid surrogate pair in hex escape"));
                                }
                                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                            } else {
                                first
                            };
                            let c = char::from_u32(code).ok_or_else(|| {
                                self.error("lone trailing surrogate in hex escape")
                            })?;
                            out.push(c);
                        }
                        _ => return Err(self.error("invalid escape")),
                    }
                }
                _ => {
                    return Err(self
                        .error("control character (\\u0000-\\u001F) found while parsing a string"))
                }
            }
        }
    }
}

/// A key present twice (sorting: O(n log n) however large a hostile object is).
fn duplicate_key(members: &[(String, Value)]) -> Option<&str> {
    let mut keys: Vec<&str> = Vec::with_capacity(members.len());
    for (k, _) in members {
        keys.push(k.as_str());
    }
    keys.sort_unstable();
    keys.windows(2).find_map(|w| match w {
        [a, b] if a == b => Some(*a),
        _ => None,
    })
}

/// `s` as a JSON string literal, quotes included.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_string(&mut out, s);
    out
}

/// `before`, `s` as a JSON string literal, `after`: a message naming a value, such as
/// `quoted("bucket name ", name, " is used twice")`. What `format!` with [`Quoted`] writes,
/// without a formatting call (and its argument setup) at every message.
pub fn quoted(before: &str, s: &str, after: &str) -> String {
    let mut out = String::with_capacity(before.len() + s.len() + after.len() + 2);
    out.push_str(before);
    write_string(&mut out, s);
    out.push_str(after);
    out
}

/// Appends `s` to `out` as a JSON string literal (quotes included, escaped as RFC 8259 asks).
pub fn write_string(out: &mut String, s: &str) {
    // Writing to a String cannot fail.
    let _ = write_quoted(out, s);
}

/// `s` as a JSON string literal, for messages: `format!("{} is bad", Quoted(name))`.
///
/// Use it instead of `{:?}` on strings in filter code: `str`'s `Debug` links the Unicode
/// printable and grapheme tables (several KB of every `.wasm`); this is a byte loop. For the
/// strings a config holds (printable text) both write the same `"..."`.
#[derive(Clone, Copy)]
pub struct Quoted<'a>(pub &'a str);

impl Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_quoted(f, self.0)
    }
}

/// The JSON string literal of `s`: runs of plain bytes copied as they are, `"`, `\` and
/// control bytes escaped (every byte escaped is ASCII, so each run ends on a char boundary).
fn write_quoted<W: fmt::Write + ?Sized>(out: &mut W, s: &str) -> fmt::Result {
    out.write_char('"')?;
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.write_str(s.get(start..i).unwrap_or(""))?;
        if escape.is_empty() {
            out.write_str("\\u00")?;
            for nibble in [b >> 4, b & 0xf] {
                out.write_char(char::from_digit(u32::from(nibble), 16).unwrap_or('0'))?;
            }
        } else {
            out.write_str(escape)?;
        }
        start = i + 1;
    }
    out.write_str(s.get(start..).unwrap_or(""))?;
    out.write_char('"')
}

// ---------------------------------------------------------------------------------------------
// Numbers

pub(crate) enum Integer {
    Unsigned(u64),
    Signed(i64),
}

/// Whether a number is written with a fraction or an exponent (bytes, not a `char` set:
/// `str`'s multi-char searcher is its own code in the module).
fn is_float(text: &str) -> bool {
    text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'))
}

/// The number as an integer, if it is written as one and fits in 64 bits.
fn parse_integer(text: &str) -> Option<Integer> {
    if is_float(text) {
        return None;
    }
    let (negative, magnitude) = parse_decimal(text)?;
    if negative {
        parse_signed(negative, magnitude).map(Integer::Signed)
    } else {
        Some(Integer::Unsigned(magnitude))
    }
}

/// An optional sign and ASCII digits, as `str::parse::<i64>` / `<u64>` read them: the sign
/// and the magnitude (`None`: empty, another byte, or more than `u64::MAX`). std's generic
/// parsers were ~1 KB of every filter's `.wasm`.
pub(crate) fn parse_decimal(text: &str) -> Option<(bool, u64)> {
    let (negative, digits) = match text.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        all => (false, all),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some((negative, n))
}

/// The `i64` of [`parse_decimal`]'s answer, if in range.
pub(crate) fn parse_signed(negative: bool, magnitude: u64) -> Option<i64> {
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

// ---------------------------------------------------------------------------------------------
// Deserializing

/// Where a value sits in the document; rendered only for errors.
#[derive(Clone, Copy)]
pub enum Path<'a> {
    /// The document itself (`.`).
    Root,
    /// A member of an object, by its key as written.
    Key(&'a Path<'a>, &'a str),
    /// An element of an array.
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    /// Appends the path as [`Display`] writes it (`rules[1].status`), without `fmt`.
    pub fn write_to(&self, out: &mut String) {
        match self {
            Path::Root => out.push('.'),
            Path::Key(Path::Root, key) => out.push_str(key),
            Path::Key(parent, key) => {
                parent.write_to(out);
                out.push('.');
                out.push_str(key);
            }
            Path::Index(parent, i) => {
                if !matches!(parent, Path::Root) {
                    parent.write_to(out);
                }
                out.push('[');
                push_decimal(out, *i as u64);
                out.push(']');
            }
        }
    }
}

/// Appends `n` in decimal (what `{n}` writes), without `fmt`'s integer code.
pub fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut len = 0;
    for d in digits.iter_mut() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
        if n == 0 {
            break;
        }
    }
    for d in digits.iter().take(len).rev() {
        out.push(char::from(*d));
    }
}

/// `parts` joined: the messages of the config reader, built without `format!` (each call
/// site of which is its own argument setup, and links `fmt`'s padding code).
pub fn cat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.push_str(p);
    }
    out
}

impl Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => f.write_str("."),
            Path::Key(Path::Root, key) => f.write_str(key),
            Path::Key(parent, key) => write!(f, "{parent}.{key}"),
            Path::Index(Path::Root, i) => write!(f, "[{i}]"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// Deserializes `T` from a parsed document; errors carry the field path (`.` for the root).
pub fn from_value<'de, T: de::Deserialize<'de>>(value: &'de Value) -> Result<T, Error> {
    T::deserialize(ValueDeserializer {
        value,
        path: &Path::Root,
    })
}

/// Parses and deserializes in one step.
pub fn from_slice<T: de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let value = parse(bytes).map_err(|e| e.at(&Path::Root))?;
    from_value(&value)
}

struct ValueDeserializer<'de, 'p> {
    value: &'de Value,
    path: &'p Path<'p>,
}

impl<'de> ValueDeserializer<'de, '_> {
    fn invalid_type<V: Visitor<'de>>(&self, visitor: &V) -> Error {
        <Error as de::Error>::invalid_type(self.value.unexpected(), visitor).at(self.path)
    }

    fn integer<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Number(n) => match parse_integer(n) {
                Some(Integer::Unsigned(u)) => visitor.visit_u64(u),
                Some(Integer::Signed(i)) => visitor.visit_i64(i),
                None if is_float(n) => Err(self.invalid_type(&visitor)),
                None => Err(Error::new(format_args!("number {n} out of range"))),
            },
            // proto-JSON writes int64 as a string; a visitor that takes strings sees it
            // (serde's integer visitors refuse it exactly as an invalid type).
            Value::String(s) => visitor.visit_borrowed_str(s),
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(self.path))
    }

    fn float<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Number(n) => match n.parse::<f64>() {
                Ok(f) if f.is_finite() => visitor.visit_f64(f),
                _ => Err(Error::new(format_args!("number {n} out of range"))),
            },
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(self.path))
    }
}

macro_rules! integers {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.integer(visitor)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for ValueDeserializer<'de, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let path = self.path;
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) if parse_integer(n).is_some() => return self.integer(visitor),
            Value::Number(_) => return self.float(visitor),
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => visitor.visit_seq(Seq::new(items, path)),
            Value::Object(members) => visitor.visit_map(Map::new(members, path, false)),
        }
        .map_err(|e| e.at(path))
    }

    integers!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
              deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.float(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.float(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Bool(b) => visitor.visit_bool(*b),
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(self.path))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::String(s) => visitor.visit_borrowed_str(s),
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(self.path))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::String(s) => visitor.visit_borrowed_bytes(s.as_bytes()),
            Value::Array(items) => visitor.visit_seq(Seq::new(items, self.path)),
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(self.path))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let path = self.path;
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
        .map_err(|e| e.at(path))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(self.path))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let path = self.path;
        visitor.visit_newtype_struct(self).map_err(|e| e.at(path))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Array(items) => visitor.visit_seq(Seq::new(items, self.path)),
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(self.path))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Object(members) => visitor.visit_map(Map::new(members, self.path, false)),
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(self.path))
    }

    /// A struct's keys may be spelled in lowerCamelCase, as Envoy's proto-JSON accepts for
    /// every field (`localJwks` for `local_jwks`); a map's keys (names the operator chose,
    /// such as provider names) are taken as written.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value {
            Value::Object(members) => visitor.visit_map(Map::new(members, self.path, true)),
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(self.path))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let path = self.path;
        match self.value {
            // A unit variant: "name".
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            // Any other variant: {"name": content}.
            Value::Object(members) => match members.as_slice() {
                [(name, content)] => visitor.visit_enum(Variant {
                    name,
                    content,
                    path,
                }),
                _ => Err(Error::new(
                    "expected an object with exactly one key (the enum variant)",
                )),
            },
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(path))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

struct Seq<'de, 'p> {
    items: std::slice::Iter<'de, Value>,
    index: usize,
    path: &'p Path<'p>,
}

impl<'de, 'p> Seq<'de, 'p> {
    fn new(items: &'de [Value], path: &'p Path<'p>) -> Self {
        Self {
            items: items.iter(),
            index: 0,
            path,
        }
    }
}

impl<'de> de::SeqAccess<'de> for Seq<'de, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some(value) = self.items.next() else {
            return Ok(None);
        };
        let path = Path::Index(self.path, self.index);
        self.index += 1;
        seed.deserialize(ValueDeserializer { value, path: &path })
            .map(Some)
            .map_err(|e| e.at(&path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Map<'de, 'p> {
    members: std::slice::Iter<'de, (String, Value)>,
    /// The value of the key last returned.
    pending: Option<(&'de str, &'de Value)>,
    path: &'p Path<'p>,
    /// The object is a struct: lowerCamelCase keys are read as their snake_case field.
    fields: bool,
}

impl<'de, 'p> Map<'de, 'p> {
    fn new(members: &'de [(String, Value)], path: &'p Path<'p>, fields: bool) -> Self {
        Self {
            members: members.iter(),
            pending: None,
            path,
            fields,
        }
    }
}

/// The proto field name of a lowerCamelCase JSON name (`localJwks` → `local_jwks`), as
/// protobuf's JSON mapping defines it; `None` when `key` has no upper-case letter (it is
/// already the field name).
pub fn snake_case(key: &str) -> Option<String> {
    if !key.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    Some(out)
}

impl<'de> de::MapAccess<'de> for Map<'de, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.members.next() else {
            return Ok(None);
        };
        self.pending = Some((key, value));
        let path = Path::Key(self.path, key);
        // An unknown key is reported at the key itself (`rules[0].typo`).
        match self.fields.then(|| snake_case(key)).flatten() {
            Some(field) => seed.deserialize(de::value::StringDeserializer::<Error>::new(field)),
            None => seed.deserialize(BorrowedStr(key)),
        }
        .map(Some)
        .map_err(|e| e.at(&path))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let Some((key, value)) = self.pending.take() else {
            return Err(Error::new("value requested before its key").at(self.path));
        };
        let path = Path::Key(self.path, key);
        seed.deserialize(ValueDeserializer { value, path: &path })
            .map_err(|e| e.at(&path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.members.len())
    }
}

/// A map key or enum variant name.
struct BorrowedStr<'de>(&'de str);

impl<'de> de::Deserializer<'de> for BorrowedStr<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.0)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct Variant<'de, 'p> {
    name: &'de str,
    content: &'de Value,
    path: &'p Path<'p>,
}

impl<'de, 'p> de::EnumAccess<'de> for Variant<'de, 'p> {
    type Error = Error;
    type Variant = VariantContent<'de, 'p>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), Error> {
        let name = seed.deserialize(BorrowedStr(self.name))?;
        Ok((
            name,
            VariantContent {
                name: self.name,
                content: self.content,
                path: self.path,
            },
        ))
    }
}

struct VariantContent<'de, 'p> {
    name: &'de str,
    content: &'de Value,
    path: &'p Path<'p>,
}

impl<'de> VariantContent<'de, '_> {
    fn with<T>(
        self,
        f: impl FnOnce(ValueDeserializer<'de, '_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let path = Path::Key(self.path, self.name);
        f(ValueDeserializer {
            value: self.content,
            path: &path,
        })
        .map_err(|e| e.at(&path))
    }
}

impl<'de> de::VariantAccess<'de> for VariantContent<'de, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        self.with(|d| de::Deserialize::deserialize(d))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        self.with(|d| seed.deserialize(d))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.with(|d| de::Deserializer::deserialize_seq(d, visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.with(|d| de::Deserializer::deserialize_map(d, visitor))
    }
}

// ---------------------------------------------------------------------------------------------
// FromJson: config types read straight from the tree
//
// `#[derive(sdk_ext::FromJson)]` (sdk-ext-macros) writes a `FromJson` impl from the same
// `#[serde(...)]` attributes the type carries for schemars (`rename`, `rename_all`, `default`,
// `deny_unknown_fields`), so the JSON Schema and the parser cannot drift. The generated code
// is a few calls into the non-generic helpers below; serde's derived `Deserialize` (a
// visitor, a field enum and a map loop per type, instantiated for the deserializer) cost a
// filter's `.wasm` several times that. The behaviour is the serde deserializer's above, error
// wording and paths included (the tests below compare the two on the same documents).

/// A type read from a parsed JSON [`Value`]; derive it with `#[derive(sdk_ext::FromJson)]`.
///
/// ```
/// #[derive(sdk_ext::FromJson)]
/// #[serde(deny_unknown_fields)]
/// struct Raw {
///     #[serde(rename = "in")]
///     location: String,
///     #[serde(default)]
///     tags: Vec<String>,
/// }
/// let raw: Raw = sdk_ext::config::parse(br#"{"in": "header"}"#).unwrap();
/// assert_eq!((raw.location.as_str(), raw.tags.len()), ("header", 0));
/// let e = sdk_ext::config::parse::<Raw>(br#"{"in": "x", "tags": [1]}"#).err().unwrap();
/// assert_eq!(e.to_string(), "invalid config at tags[0]: invalid type: integer `1`, expected a string");
/// ```
///
/// `#[from_json(in_place)]` (every field type `Default`) reads the same, with less code: the
/// members are read over a value built from the fields' defaults.
///
/// ```
/// #[derive(sdk_ext::FromJson)]
/// #[from_json(in_place)]
/// #[serde(deny_unknown_fields)]
/// struct Raw {
///     name: String,
///     #[serde(default = "ten")]
///     limit: u32,
///     note: Option<String>,
/// }
/// fn ten() -> u32 {
///     10
/// }
/// let raw: Raw = sdk_ext::config::parse(br#"{"name": "a"}"#).unwrap();
/// assert_eq!((raw.name.as_str(), raw.limit, raw.note), ("a", 10, None));
/// let e = sdk_ext::config::parse::<Raw>(br#"{"limit": 1}"#).err().unwrap();
/// assert_eq!(e.to_string(), "invalid config at name: missing field `name`");
/// ```
///
/// A serde attribute the derive does not implement is refused, not ignored:
///
/// ```compile_fail
/// #[derive(sdk_ext::FromJson)]
/// struct Raw {
///     #[serde(alias = "loc")]
///     location: String,
/// }
/// ```
pub trait FromJson: Sized {
    /// Reads `value`, found at `at`; errors name the deepest path.
    fn from_json(value: &Value, at: &Path<'_>) -> Result<Self, Error>;

    /// The value of a struct field that is absent (no `default`): `None` is "missing field",
    /// as serde (an `Option` is `None`).
    fn absent() -> Option<Self> {
        None
    }

    /// Whether a struct field of this type without `default` must be present: `false` for
    /// the types whose [`absent`](Self::absent) is a value (`Option`).
    #[doc(hidden)]
    const REQUIRED: bool = true;

    /// A struct read from an object without the member named `skip` (which a caller, such
    /// as [`crate::rules::RawRule`], reads itself). Types that are not structs read the
    /// whole value.
    #[doc(hidden)]
    fn from_json_without(value: &Value, at: &Path<'_>, skip: Option<&str>) -> Result<Self, Error> {
        let _ = skip;
        Self::from_json(value, at)
    }
}

/// Reads `T` from a document parsed with [`parse`].
pub fn from_json_value<T: FromJson>(value: &Value) -> Result<T, Error> {
    T::from_json(value, &Path::Root)
}

/// Parses and reads `T` in one step ([`from_slice`] for [`FromJson`] types).
pub fn from_json_slice<T: FromJson>(bytes: &[u8]) -> Result<T, Error> {
    let value = parse(bytes).map_err(|e| e.at(&Path::Root))?;
    from_json_value(&value)
}

/// "invalid type: <what `value` is>, expected <expected>" at `at`, in serde's words.
pub fn invalid_type(value: &Value, at: &Path<'_>, expected: &str) -> Error {
    let mut out = String::from("invalid type: ");
    describe(value, &mut out);
    out.push_str(", expected ");
    out.push_str(expected);
    Error::located(at, out)
}

/// What [`Describe`] writes for `value`'s [`Value::unexpected`], written without `fmt`.
fn describe(value: &Value, out: &mut String) {
    let integer = |out: &mut String, negative: bool, magnitude: u64| {
        out.push_str("integer `");
        if negative {
            out.push('-');
        }
        push_decimal(out, magnitude);
        out.push('`');
    };
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("boolean `true`"),
        Value::Bool(false) => out.push_str("boolean `false`"),
        Value::Number(n) => match parse_integer(n) {
            Some(Integer::Unsigned(u)) => integer(out, false, u),
            Some(Integer::Signed(i)) => integer(out, i < 0, i.unsigned_abs()),
            None => out.push_str("floating point number"),
        },
        Value::String(s) => {
            out.push_str("string ");
            write_string(out, s);
        }
        Value::Array(_) => out.push_str("array"),
        Value::Object(_) => out.push_str("map"),
    }
}

/// serde's `unknown field` / `unknown variant` message: "unknown <kind> `<name>`, expected
/// `a`" (or "`a` or `b`", "one of `a`, `b`, `c`"; "there are no <plural>" for none).
fn unknown(kind: &str, name: &str, expected: &[&str], plural: &str) -> String {
    let mut out = cat(&["unknown ", kind, " `", name, "`, "]);
    match expected {
        [] => {
            out.push_str("there are no ");
            out.push_str(plural);
        }
        [a] => out.push_str(&cat(&["expected `", a, "`"])),
        [a, b] => out.push_str(&cat(&["expected `", a, "` or `", b, "`"])),
        names => {
            out.push_str("expected one of ");
            for (i, n) in names.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push('`');
                out.push_str(n);
                out.push('`');
            }
        }
    }
    out
}

/// The generated struct reader's loop (one copy for every struct): checks that `value` is
/// an object (else "invalid type ..., expected `expected`"), then reads each member, in
/// document order, into the slot of the field it names (`slots[i]` is `fields[i]`'s). Keys may be lowerCamelCase (proto-JSON) for a snake_case field; a key named
/// twice (in either spelling) is a "duplicate field"; an unknown key is refused at itself when
/// `deny_unknown` and skipped otherwise; the member named `skip` is left out. Then the first
/// field with `required[i]` that no member named is a "missing field" at the struct (where
/// serde reports it; [`crate::config::parse`] names the field).
#[doc(hidden)]
#[allow(clippy::too_many_arguments)] // called only by the derive's generated code
pub fn read_fields(
    value: &Value,
    at: &Path<'_>,
    expected: &str,
    fields: &[&str],
    required: &[bool],
    deny_unknown: bool,
    skip: Option<&str>,
    slots: &mut [&mut dyn Slot],
) -> Result<(), Error> {
    let Value::Object(members) = value else {
        return Err(invalid_type(value, at, expected));
    };
    // A bit per field (the derive refuses structs of more than 64 fields).
    let mut seen = 0u64;
    for (key, member) in members {
        if skip == Some(key.as_str()) {
            continue;
        }
        let path = Path::Key(at, key);
        let snake = snake_case(key);
        let name = snake.as_deref().unwrap_or(key);
        let Some(index) = fields.iter().position(|f| *f == name) else {
            if deny_unknown {
                return Err(Error::located(
                    &path,
                    unknown("field", name, fields, "fields"),
                ));
            }
            continue;
        };
        let bit = 1u64.checked_shl(index as u32).unwrap_or(0);
        if seen & bit != 0 {
            return Err(Error::located(at, cat(&["duplicate field `", name, "`"])));
        }
        seen |= bit;
        // A field past the 64th would have no bit to refuse its second value (and
        // `Slot::read` expects an empty slot): not read.
        if bit == 0 {
            continue;
        }
        if let Some(slot) = slots.get_mut(index) {
            slot.read(member, &path)?;
        }
    }
    // serde's order: after the members, the first required field (in declaration order)
    // that none of them named.
    for (i, (name, required)) in fields.iter().zip(required).enumerate() {
        if *required && seen & 1u64.checked_shl(i as u32).unwrap_or(0) == 0 {
            return Err(Error::located(at, cat(&["missing field `", name, "`"])));
        }
    }
    Ok(())
}

/// A struct field's value while the struct is read: `Option<T>`, behind `dyn` so that each
/// field type's reader is one function however many structs have such a field (inlined into
/// one reader per struct, they were most of a filter's config code).
#[doc(hidden)]
pub trait Slot {
    /// Reads `value` (at `at`) into the slot.
    fn read(&mut self, value: &Value, at: &Path<'_>) -> Result<(), Error>;
}

impl<T: FromJson> Slot for Option<T> {
    fn read(&mut self, value: &Value, at: &Path<'_>) -> Result<(), Error> {
        // The slot is empty ([`read_fields`] refuses a field named twice before reading
        // it), so there is nothing to drop: forgetting the `None` leaves out `T`'s drop.
        std::mem::forget(self.replace(T::from_json(value, at)?));
        Ok(())
    }
}

/// A field of a `#[from_json(in_place)]` struct as its slot: the member is read over the
/// field's default value.
#[doc(hidden)]
pub struct InPlace<'a, T>(pub &'a mut T);

impl<T: FromJson> Slot for InPlace<'_, T> {
    fn read(&mut self, value: &Value, at: &Path<'_>) -> Result<(), Error> {
        *self.0 = T::from_json(value, at)?;
        Ok(())
    }
}

/// The generated reader of an enum of unit variants: the index of the variant `value` names
/// in `variants` (`"name"`, or serde's `{"name": null}`).
#[doc(hidden)]
pub fn read_variant(
    value: &Value,
    at: &Path<'_>,
    expected: &str,
    variants: &[&str],
) -> Result<usize, Error> {
    let find = |name: &str| {
        variants
            .iter()
            .position(|v| *v == name)
            .ok_or_else(|| Error::located(at, unknown("variant", name, variants, "variants")))
    };
    match value {
        Value::String(name) => find(name),
        Value::Object(members) => match members.as_slice() {
            [(name, content)] => {
                let index = find(name)?;
                match content {
                    Value::Null => Ok(index),
                    other => Err(invalid_type(other, &Path::Key(at, name), "unit")),
                }
            }
            _ => Err(Error::located(
                at,
                "expected an object with exactly one key (the enum variant)",
            )),
        },
        _ => Err(invalid_type(value, at, expected)),
    }
}

impl FromJson for bool {
    fn from_json(value: &Value, at: &Path<'_>) -> Result<Self, Error> {
        match value {
            Value::Bool(b) => Ok(*b),
            _ => Err(invalid_type(value, at, "a boolean")),
        }
    }
}

impl FromJson for String {
    fn from_json(value: &Value, at: &Path<'_>) -> Result<Self, Error> {
        match value {
            Value::String(s) => Ok(s.clone()),
            _ => Err(invalid_type(value, at, "a string")),
        }
    }
}

/// An integer number, for the integer impls: what serde's deserializer above hands its
/// integer visitors, with its errors for the rest.
pub(crate) fn integer(value: &Value, at: &Path<'_>, expected: &str) -> Result<Integer, Error> {
    match value {
        Value::Number(n) => match parse_integer(n) {
            Some(i) => Ok(i),
            None if is_float(n) => Err(invalid_type(value, at, expected)),
            None => Err(Error::located(at, cat(&["number ", n, " out of range"]))),
        },
        _ => Err(invalid_type(value, at, expected)),
    }
}

/// serde's "invalid value: integer `n`, expected <ty>".
fn out_of_range(negative: bool, magnitude: u64, at: &Path<'_>, expected: &str) -> Error {
    let mut out = String::from("invalid value: integer `");
    if negative {
        out.push('-');
    }
    push_decimal(&mut out, magnitude);
    out.push_str("`, expected ");
    out.push_str(expected);
    Error::located(at, out)
}

macro_rules! integers {
    ($($ty:ident)*) => {$(
        impl FromJson for $ty {
            fn from_json(value: &Value, at: &Path<'_>) -> Result<Self, Error> {
                match integer(value, at, stringify!($ty))? {
                    Integer::Unsigned(n) => {
                        $ty::try_from(n).map_err(|_| out_of_range(false, n, at, stringify!($ty)))
                    }
                    Integer::Signed(n) => {
                        $ty::try_from(n)
                            .map_err(|_| out_of_range(n < 0, n.unsigned_abs(), at, stringify!($ty)))
                    }
                }
            }
        }
    )*};
}

integers!(u8 u16 u32 u64 usize i8 i16 i32 i64);

impl FromJson for f64 {
    fn from_json(value: &Value, at: &Path<'_>) -> Result<Self, Error> {
        match value {
            Value::Number(n) => match n.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(f),
                _ => Err(Error::located(at, cat(&["number ", n, " out of range"]))),
            },
            _ => Err(invalid_type(value, at, "f64")),
        }
    }
}

impl<T: FromJson> FromJson for Option<T> {
    // Inlined into the field slot's reader (its only caller for most types): one function
    // per optional field type instead of two.
    #[inline]
    fn from_json(value: &Value, at: &Path<'_>) -> Result<Self, Error> {
        match value {
            Value::Null => Ok(None),
            _ => T::from_json(value, at).map(Some),
        }
    }

    fn absent() -> Option<Self> {
        Some(None)
    }

    const REQUIRED: bool = false;
}

impl<T: FromJson> FromJson for Vec<T> {
    fn from_json(value: &Value, at: &Path<'_>) -> Result<Self, Error> {
        let Value::Array(items) = value else {
            return Err(invalid_type(value, at, "a sequence"));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(T::from_json(item, &Path::Index(at, i))?);
        }
        Ok(out)
    }
}

/// Map keys (names the operator chose) are taken as written.
impl<T: FromJson> FromJson for std::collections::BTreeMap<String, T> {
    fn from_json(value: &Value, at: &Path<'_>) -> Result<Self, Error> {
        let Value::Object(members) = value else {
            return Err(invalid_type(value, at, "a map"));
        };
        let mut out = Self::new();
        for (key, member) in members {
            out.insert(key.clone(), T::from_json(member, &Path::Key(at, key))?);
        }
        Ok(out)
    }
}

impl<T: FromJson> FromJson for Box<T> {
    fn from_json(value: &Value, at: &Path<'_>) -> Result<Self, Error> {
        T::from_json(value, at).map(Box::new)
    }
}

/// Any JSON, kept as the tree.
impl FromJson for Value {
    fn from_json(value: &Value, _: &Path<'_>) -> Result<Self, Error> {
        Ok(value.clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// The messages written without `fmt` say exactly what the `fmt` forms say.
    #[test]
    fn messages_without_fmt_match_fmt() {
        for text in [
            "null",
            "true",
            "false",
            "0",
            "-0",
            "7",
            "-7",
            "18446744073709551615",
            "-9223372036854775808",
            "1.5",
            "1e3",
            "99999999999999999999",
            "\"a\\\"b\"",
            "[]",
            "{}",
        ] {
            let value = parse(text.as_bytes()).unwrap();
            let mut ours = String::new();
            describe(&value, &mut ours);
            assert_eq!(ours, Describe(&value.unexpected()).to_string(), "{text}");
        }
        let root = Path::Root;
        let rules = Path::Key(&root, "rules");
        let first = Path::Index(&rules, 10);
        let top = Path::Index(&root, 3);
        let under = Path::Key(&top, "x");
        for path in [root, rules, first, Path::Key(&first, "status"), top, under] {
            let mut ours = String::new();
            path.write_to(&mut ours);
            assert_eq!(ours, path.to_string());
        }
        for n in [0u64, 9, 10, 12345, u64::MAX] {
            let mut ours = String::new();
            push_decimal(&mut ours, n);
            assert_eq!(ours, n.to_string());
        }
        assert_eq!(
            unknown("field", "x", &[], "fields"),
            "unknown field `x`, there are no fields"
        );
        assert_eq!(
            unknown("field", "x", &["a"], "fields"),
            "unknown field `x`, expected `a`"
        );
        assert_eq!(
            unknown("variant", "x", &["a", "b"], "variants"),
            "unknown variant `x`, expected `a` or `b`"
        );
        assert_eq!(
            unknown("field", "x", &["a", "b", "c"], "fields"),
            "unknown field `x`, expected one of `a`, `b`, `c`"
        );
        let e = parse(b"[1, ").unwrap_err();
        assert_eq!(e.reason, "EOF while parsing a value at line 1 column 5");
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert!(parse(deep.as_bytes())
            .unwrap_err()
            .reason
            .starts_with(&format!("nested deeper than {MAX_DEPTH} levels")));
        assert_eq!(
            parse(b"\"\xff\"").unwrap_err().reason,
            "not UTF-8 (invalid byte at offset 1)"
        );
        let e = from_json_value::<u8>(&parse(b"-3").unwrap()).unwrap_err();
        assert_eq!(e.reason, "invalid value: integer `-3`, expected u8");
        let e = from_json_value::<u8>(&parse(b"300").unwrap()).unwrap_err();
        assert_eq!(e.reason, "invalid value: integer `300`, expected u8");
    }

    #[test]
    fn quoted_writes_what_format_with_quoted_writes() {
        for (before, v, after) in [
            ("", "x", " is not a header name"),
            ("bucket name ", "a\"b\n", " is used twice"),
            ("duplicate rule name ", "日本", ""),
            ("", "", ""),
        ] {
            assert_eq!(
                quoted(before, v, after),
                format!("{before}{}{after}", Quoted(v))
            );
        }
    }

    #[test]
    fn quoted_matches_debug_for_printable_text_and_escapes_control_bytes() {
        for s in [
            "",
            "abc",
            "a\"b",
            "back\\slash",
            "a b/c?d=é",
            "日本",
            "x\ny\tz\r",
        ] {
            assert_eq!(Quoted(s).to_string(), format!("{s:?}"), "{s:?}");
        }
        assert_eq!(Quoted("a\u{1}b\u{1f}").to_string(), r#""a\u0001b\u001f""#);
        assert_eq!(Quoted("\u{7f}").to_string(), "\"\u{7f}\"");
        assert_eq!(quote("q\"\u{0}"), r#""q\"\u0000""#);
    }
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[test]
    fn struct_fields_accept_proto_json_lower_camel_case() {
        #[derive(Deserialize, Debug, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct Provider {
            local_jwks: String,
            #[serde(default)]
            clock_skew_seconds: u64,
        }
        #[derive(Deserialize, Debug, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct Cfg {
            providers: BTreeMap<String, Provider>,
        }
        let c: Cfg = from_slice(
            br#"{"providers": {"myIdp": {"localJwks": "k", "clockSkewSeconds": 5}, "b": {"local_jwks": "j"}}}"#,
        )
        .unwrap();
        // Field names in either spelling; map keys (names the operator chose) as written.
        assert_eq!(c.providers["myIdp"].local_jwks, "k");
        assert_eq!(c.providers["myIdp"].clock_skew_seconds, 5);
        assert_eq!(c.providers["b"].local_jwks, "j");
        // Both spellings of one field: a duplicate, refused.
        let e =
            from_slice::<Cfg>(br#"{"providers": {"p": {"localJwks": "k", "local_jwks": "j"}}}"#)
                .unwrap_err();
        assert!(e.reason.contains("duplicate field"), "{}", e.reason);
        // An unknown camelCase key is still unknown, reported at the key as written.
        let e = from_slice::<Cfg>(br#"{"providers": {"p": {"localJwks": "k", "nopeField": 1}}}"#)
            .unwrap_err();
        assert_eq!(e.path, "providers.p.nopeField");
        assert_eq!(
            snake_case("pathSeparatedPrefix").as_deref(),
            Some("path_separated_prefix")
        );
        assert_eq!(snake_case("prefix"), None);
    }

    #[test]
    fn reads_every_kind() {
        let v = parse(
            br#" {"a": [1, -2, 3.5e2, true, false, null, "x\"\u00e9\ud83d\ude00\n"], "b": {}} "#,
        )
        .unwrap();
        let Value::Object(m) = v else { panic!() };
        assert_eq!(m[0].0, "a");
        assert_eq!(
            m[0].1,
            Value::Array(vec![
                Value::Number("1".into()),
                Value::Number("-2".into()),
                Value::Number("3.5e2".into()),
                Value::Bool(true),
                Value::Bool(false),
                Value::Null,
                Value::String("x\"é😀\n".into()),
            ])
        );
        assert_eq!(m[1], ("b".into(), Value::Object(vec![])));
    }

    #[test]
    fn refuses_what_json_does_not_allow() {
        for (bad, why) in [
            (&b"{not json"[..], "key must be a string at line 1 column 2"),
            (b"[1,]", "expected value"),
            (b"[1 2]", "expected `,` or `]`"),
            (b"{\"a\" 1}", "expected `:`"),
            (b"{\"a\":1,}", "key must be a string"),
            (b"01", "leading zero"),
            (b"1.", "no digit after"),
            (b"1e", "no digit in exponent"),
            (b"-", "invalid number"),
            (b"\"a", "EOF while parsing a string"),
            (b"\"\\x\"", "invalid escape"),
            (b"\"\\ud800\"", "lone leading surrogate"),
            (b"\"\\udc00\"", "lone trailing surrogate"),
            (b"\"\\u12\"", "invalid \\u escape"),
            (b"\"a\nb\"", "control character"),
            (b"{} x", "trailing characters"),
            (b"tru", "expected value"),
            (b"", "EOF while parsing a value"),
            (b"\xff", "not UTF-8"),
            (
                b"[1,\n {\"a\":1,\"b\":{},\"a\":2}]",
                "duplicate key \"a\" in the object at line 2 column 2",
            ),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(
                e.reason.contains(why),
                "{:?}: {e}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(deep.as_bytes()).is_ok());
        let deeper = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        let e = parse(deeper.as_bytes()).unwrap_err();
        assert!(e.reason.contains("nested deeper than 64"), "{e}");
        // Far deeper input fails the same way instead of exhausting the stack.
        let hostile = "[".repeat(100_000);
        assert!(parse(hostile.as_bytes()).is_err());
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        #[serde(default)]
        rules: Vec<Rule>,
        #[serde(default)]
        named: BTreeMap<String, Rule>,
        ratio: Option<f64>,
        kind: Option<Kind>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Rule {
        status: u16,
        #[serde(default)]
        tags: Vec<String>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Plain,
        Limited(u32),
        Shaped { burst: u8 },
    }

    fn err(json: &str) -> Error {
        from_slice::<Cfg>(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn deserializes_structs_maps_options_enums() {
        let c: Cfg = from_slice(
            br#"{"rules":[{"status":200,"tags":["a"]}],"named":{"x":{"status":404}},
                "ratio":0.25,"kind":{"shaped":{"burst":3}}}"#,
        )
        .unwrap();
        assert_eq!(c.rules[0].status, 200);
        assert_eq!(c.rules[0].tags, ["a"]);
        assert_eq!(c.named["x"].status, 404);
        assert_eq!(c.ratio, Some(0.25));
        assert_eq!(c.kind, Some(Kind::Shaped { burst: 3 }));
        let c: Cfg = from_slice(br#"{"kind":"plain","ratio":null}"#).unwrap();
        assert_eq!((c.kind, c.ratio), (Some(Kind::Plain), None));
        let c: Cfg = from_slice(br#"{"kind":{"limited":7}}"#).unwrap();
        assert_eq!(c.kind, Some(Kind::Limited(7)));
    }

    #[test]
    fn errors_name_the_deepest_field() {
        let e = err(r#"{"rules":[{"status":200},{"status":"x"}]}"#);
        assert_eq!(e.path, "rules[1].status");
        assert_eq!(e.reason, "invalid type: string \"x\", expected u16");
        let e = err(r#"{"rules":[{"status":70000}]}"#);
        assert_eq!(e.path, "rules[0].status");
        assert_eq!(e.reason, "invalid value: integer `70000`, expected u16");
        let e = err(r#"{"rules":[{"status":2.5}]}"#);
        assert_eq!(
            e.reason,
            "invalid type: floating point number, expected u16"
        );
        let e = err(r#"{"rules":[{"status":-1}]}"#);
        assert_eq!(e.reason, "invalid value: integer `-1`, expected u16");
        let e = err(r#"{"rules":[{"status":1, "tags":[1]}]}"#);
        assert_eq!(e.path, "rules[0].tags[0]");
        let e = err(r#"{"named":{"x":{"status":true}}}"#);
        assert_eq!(e.path, "named.x.status");
        assert_eq!(e.reason, "invalid type: boolean `true`, expected u16");
        let e = err(r#"{"rules":{}}"#);
        assert_eq!(
            (e.path.as_str(), e.reason.as_str()),
            ("rules", "invalid type: map, expected a sequence")
        );
        let e = err(r#"{"kind":{"shaped":{"burst":1000}}}"#);
        assert_eq!(e.path, "kind.shaped.burst");
        let e = err(r#"{"kind":"loud"}"#);
        assert_eq!(e.path, "kind");
        assert!(e.reason.starts_with("unknown variant `loud`"), "{e}");
        let e = err(r#"{"ratio":1e999}"#);
        assert_eq!(
            (e.path.as_str(), e.reason.as_str()),
            ("ratio", "number 1e999 out of range")
        );
    }

    #[test]
    fn missing_and_unknown_fields() {
        // serde raises "missing field" in the struct's visitor: reported at the struct.
        let e = err(r#"{"rules":[{}]}"#);
        assert_eq!(
            (e.path.as_str(), e.reason.as_str()),
            ("rules[0]", "missing field `status`")
        );
        let e = err(r#"{"rules":[{"status":1,"statuz":2}]}"#);
        assert_eq!(e.path, "rules[0].statuz");
        assert!(
            e.reason.starts_with("unknown field `statuz`, expected"),
            "{e}"
        );
        let e = err(r#"[]"#);
        assert_eq!(
            (e.path.as_str(), e.reason.as_str()),
            (".", "invalid type: array, expected struct Cfg")
        );
    }

    // FromJson and the serde deserializer read the same documents the same way: values,
    // error paths and wording.
    #[allow(dead_code)] // read through Debug
    #[derive(Deserialize, crate::FromJson, Debug)]
    #[serde(deny_unknown_fields)]
    struct Both {
        #[serde(default)]
        rules: Vec<crate::rules::RawRule<BothRule>>,
        name: Option<String>,
        #[serde(rename = "in")]
        location: Option<Mode>,
        #[serde(default = "seven")]
        n: u32,
        big: Option<u64>,
        small: Option<i8>,
        #[serde(default)]
        named: BTreeMap<String, u16>,
        #[serde(default)]
        on: bool,
        ratio: Option<f64>,
        every: Option<crate::duration::ProtoDuration>,
        range: Option<crate::matching::RangeSpec>,
    }

    fn seven() -> u32 {
        7
    }

    #[allow(dead_code)] // read through Debug
    #[derive(Deserialize, crate::FromJson, Debug)]
    #[serde(deny_unknown_fields)]
    struct BothRule {
        status: u16,
        #[serde(default)]
        tags: Vec<String>,
        header_name: Option<String>,
    }

    #[allow(dead_code)] // read through Debug
    #[derive(Deserialize, crate::FromJson, Debug)]
    struct Open {
        #[serde(default)]
        a: u8,
    }

    #[derive(Deserialize, crate::FromJson, Debug)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    enum Mode {
        Off,
        MostSpecific,
        #[serde(rename = "x")]
        Other,
    }

    /// The decimal reader answers as std's `i64` / `u64` parsers.
    #[test]
    fn decimals_parse_as_std_does() {
        let mut cases: Vec<String> = [
            "",
            "+",
            "-",
            "0",
            "-0",
            "+0",
            "007",
            "-007",
            "+-1",
            "-+1",
            "1 ",
            " 1",
            "1a",
            "\u{661}",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let digits = (x % 22) as usize;
            let mut s = match x % 5 {
                0 => "-".to_string(),
                1 => "+".to_string(),
                _ => String::new(),
            };
            for i in 0..digits {
                s.push(char::from(b'0' + ((x >> (i * 2)) % 10) as u8));
            }
            cases.push(s);
        }
        for s in &cases {
            let ours = parse_decimal(s);
            let signed = ours.and_then(|(neg, n)| parse_signed(neg, n));
            assert_eq!(signed, s.parse::<i64>().ok(), "{s:?}");
            if !s.starts_with('-') {
                assert_eq!(ours.map(|(_, n)| n), s.parse::<u64>().ok(), "{s:?}");
            }
        }
    }

    #[test]
    fn from_json_reads_as_serde_does() {
        let docs = [
            r#"{}"#,
            r#""#,
            r#"[]"#,
            r#"null"#,
            r#"{"n": 3, "big": 18446744073709551615, "small": -128, "on": true}"#,
            r#"{"n": -1}"#,
            r#"{"n": 4294967296}"#,
            r#"{"n": 1.5}"#,
            r#"{"n": 1e3}"#,
            r#"{"n": "5"}"#,
            r#"{"n": null}"#,
            r#"{"n": 123456789012345678901234567890}"#,
            r#"{"small": 128}"#,
            r#"{"small": -129}"#,
            r#"{"big": -1}"#,
            r#"{"on": 1}"#,
            r#"{"name": 5}"#,
            r#"{"name": null}"#,
            r#"{"name": "x", "nope": 1}"#,
            r#"{"headerName": 1}"#,
            r#"{"in": "OFF"}"#,
            r#"{"in": "MOST_SPECIFIC"}"#,
            r#"{"in": "x"}"#,
            r#"{"in": "Off"}"#,
            r#"{"in": {"OFF": null}}"#,
            r#"{"in": {"OFF": 1}}"#,
            r#"{"in": {"OFF": null, "x": null}}"#,
            r#"{"in": 3}"#,
            r#"{"location": "OFF"}"#,
            r#"{"named": {"a": 1, "bB": 2}}"#,
            r#"{"named": {"a": "x"}}"#,
            r#"{"named": []}"#,
            r#"{"rules": {}}"#,
            r#"{"rules": [{"status": 200}, {"status": "x"}]}"#,
            r#"{"rules": [{"status": 200, "tags": ["a", 1]}]}"#,
            r#"{"rules": [{}]}"#,
            r#"{"rules": [{"match": {"prefix": "/a"}}]}"#,
            r#"{"rules": [{"match": {"prefix": "/a"}, "status": 1, "headerName": "h"}]}"#,
            r#"{"rules": [{"status": 1, "match": {"prefx": "/a"}}]}"#,
            r#"{"rules": [{"status": 1, "match": {"headers": [{"name": 1}]}}]}"#,
            r#"{"rules": [{"status": 1, "match": 5}]}"#,
            r#"{"rules": [{"status": 1, "statuz": 2}]}"#,
            r#"{"rules": [{"status": 1, "header_name": "a", "headerName": "b"}]}"#,
            r#"{"rules": ["x"]}"#,
            r#"{"ratio": 0.25}"#,
            r#"{"ratio": 1e999}"#,
            r#"{"ratio": "x"}"#,
            r#"{"every": "1.5s"}"#,
            r#"{"every": "1.5"}"#,
            r#"{"every": 1}"#,
            r#"{"range": {"start": "-5", "end": 10}}"#,
            r#"{"range": {"start": "x"}}"#,
            r#"{"range": {"start": 9223372036854775808}}"#,
            r#"{"range": {"start": 1.5}}"#,
            r#"{"range": {"start": true}}"#,
            r#"{"range": {"start": -1e400}}"#,
            r#"{"range": {"end": 99999999999999999999}}"#,
            r#"{not json"#,
        ];
        for doc in docs {
            let serde = crate::config::parse_serde::<Both>(doc.as_bytes());
            let ours = crate::config::parse::<Both>(doc.as_bytes());
            assert_eq!(format!("{serde:?}"), format!("{ours:?}"), "{doc}");
        }
        for doc in [
            r#"{"a": 1, "b": 2}"#,
            r#"{"a": 300}"#,
            r#"{"A": 1}"#,
            r#"{"a": 1, "a": 1}"#,
        ] {
            let serde = crate::config::parse_serde::<Open>(doc.as_bytes());
            let ours = crate::config::parse::<Open>(doc.as_bytes());
            assert_eq!(format!("{serde:?}"), format!("{ours:?}"), "{doc}");
        }
    }

    #[test]
    fn escaping_round_trips() {
        let s = "a\"b\\c\nd\u{1}é😀";
        let quoted = quote(s);
        assert_eq!(quoted, "\"a\\\"b\\\\c\\nd\\u0001é😀\"");
        assert_eq!(parse(quoted.as_bytes()).unwrap(), Value::String(s.into()));
    }
}
